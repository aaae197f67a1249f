// Install without a compiler: `npm pack` the package, install the tarball into a fresh prefix with a PATH that holds
// node, npm and basic tools but no compiler, make or python, then serve from that install. The native helper must be
// the prebuilt N-API build packed in prebuilds/ (the server maps it), under the fork, prefork and exec paths.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, echoOnce, eventually } from '../helpers.js';

/** Everything a PATH needs for npm and its scripts to run; deliberately no cc, gcc, g++, make or python. */
const TOOLS = ['node', 'npm', 'sh', 'env', 'cat', 'ls', 'mkdir', 'rm', 'cp', 'mv', 'ln', 'chmod', 'sed', 'grep', 'uname', 'dirname', 'basename', 'readlink', 'id', 'true', 'false'];
const COMPILERS = ['cc', 'gcc', 'g++', 'c++', 'clang', 'make', 'python', 'python3'];

/** Where `which` would find `name` on the current PATH, or undefined. */
function which(name: string, searchPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of searchPath.split(':')) {
    const p = path.join(dir || '.', name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The environment of this test minus npm's own `npm_*` variables (set when run under `npm test`), with `PATH`. */
function cleanEnv(PATH: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, PATH };
}

/** Run a command to completion (bounded), capturing both streams. */
function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(cmd, args, { ...opts, encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

interface Served {
  proc: ChildProcess;
  port: number;
  log(): string;
  stop(): Promise<void>;
}

/** Start the installed `tcpkit serve ARGS` on 127.0.0.1 port 0 and wait for its port. */
async function serveFrom(bin: string, env: NodeJS.ProcessEnv, args: string[]): Promise<Served> {
  // The installed bin is a `#!/usr/bin/env node` script: started as it is, so PATH must find node.
  const proc = spawn(bin, ['serve', '--host', '127.0.0.1', '--port', '0', '--print-port', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const m = await eventually(() => /^(\d+)\n/.exec(out) ?? (proc.exitCode !== null ? 'exited' : null), {
    timeoutMs: 20_000,
    message: `installed tcpkit printing its port; stderr:\n${err}`,
  });
  assert.notEqual(m, 'exited', `installed tcpkit exited ${proc.exitCode}; stderr:\n${err}`);
  return {
    proc,
    port: Number((m as RegExpExecArray)[1]),
    log: () => err,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The native addons (.node files) mapped into a process. */
function mappedAddons(pid: number): string[] {
  const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
  return [...new Set(maps.split('\n').map((l) => /\s(\/\S+\.node)$/.exec(l)?.[1]).filter((p): p is string => p !== undefined))];
}

const npm = which('npm');
const prebuiltTarget = process.platform === 'linux' && process.arch === 'x64';

describe('install from the packed tarball without a compiler', { skip: !npm ? 'npm is not on PATH' : !prebuiltTarget ? 'prebuilt only for linux-x64' : false }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-install-'));
  const toolbin = path.join(dir, 'bin');
  let tarball = '';
  let env: NodeJS.ProcessEnv = {};
  const servers: Served[] = [];

  before(() => {
    // `npm pack` runs prepack (prebuildify: the N-API build into prebuilds/) and prepare (native + TypeScript).
    const pack = sh(npm!, ['pack', '--pack-destination', dir], { cwd: ROOT, env: cleanEnv(process.env.PATH ?? '') });
    assert.equal(pack.status, 0, `npm pack:\n${pack.stdout}\n${pack.stderr}`);
    tarball = path.join(dir, pack.stdout.trim().split('\n').pop()!);
    assert.ok(fs.existsSync(tarball), `npm pack printed the tarball's name: ${pack.stdout}`);

    // The PATH of a slim image: symlinks to the real node, npm and basic tools, and nothing else.
    fs.mkdirSync(toolbin);
    for (const t of TOOLS) {
      const p = which(t);
      if (p) fs.symlinkSync(fs.realpathSync(p), path.join(toolbin, t));
    }
    env = cleanEnv(toolbin);
    for (const c of COMPILERS) assert.equal(which(c, toolbin), undefined, `${c} is not on the install PATH`);
  });

  after(async () => {
    for (const s of servers) await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the tarball carries the linux-x64 glibc prebuilt and every source binding.gyp lists', () => {
    const list = sh('tar', ['tzf', tarball]).stdout.split('\n');
    assert.ok(list.includes('package/prebuilds/linux-x64/tcpkit.glibc.node'), `prebuilt in the tarball:\n${list.filter((f) => !f.startsWith('package/dist/')).join('\n')}`);
    assert.ok(!list.some((f) => f.startsWith('package/build/')), 'no build/ directory (it would win over the prebuilt)');
    // binding.gyp is JSON-with-comments-free here; the sources it lists must all ship so that a source build works.
    const gyp = JSON.parse(fs.readFileSync(path.join(ROOT, 'binding.gyp'), 'utf8')) as { targets: { sources: string[] }[] };
    for (const src of gyp.targets.flatMap((t) => t.sources)) assert.ok(list.includes(`package/${src}`), `${src} is in the tarball`);
    for (const f of ['package/binding.gyp', 'package/systemd/tcpkit.service', 'package/systemd/tcpkit.socket', 'package/systemd/tcpkit@.service']) {
      assert.ok(list.includes(f), `${f} is in the tarball`);
    }
  });

  // npm 11 runs a dependency's install script with a warning ("npm warn install-scripts ... not yet covered by
  // allowScripts") unless told otherwise; a locked-down host says --ignore-scripts (or strict-allow-scripts with no
  // allowance). Either way no compiler is needed: the script, when it runs, finds the prebuilt and compiles nothing,
  // and when it does not run, node-gyp-build finds the same prebuilt at run time.
  for (const variant of [
    { name: 'install script run (npm default)', dir: 'prefix-default', flags: ['--foreground-scripts'], scriptRuns: true },
    { name: 'install scripts ignored', dir: 'prefix-ignore-scripts', flags: ['--ignore-scripts'], scriptRuns: false },
  ]) {
    describe(variant.name, () => {
      const prefix = path.join(dir, variant.dir);
      const pkg = path.join(prefix, 'lib', 'node_modules', 'tcpkit');
      const bin = path.join(prefix, 'bin', 'tcpkit');

      before(() => {
        // --prefer-offline: the dependencies' tarballs are in npm's cache after `npm ci`; only the npm registry is asked for the rest.
        const args = ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', ...variant.flags, tarball];
        const r = sh(npm!, args, { cwd: dir, env });
        // The closing note of issue 16 quotes this: the command and what npm printed.
        console.log(`$ PATH=${toolbin} npm ${args.join(' ')}\n${r.stdout}${r.stderr}`);
        assert.equal(r.status, 0, `npm install without a compiler:\n${r.stdout}\n${r.stderr}`);
        assert.ok(fs.existsSync(bin), `${bin} installed`);
        assert.equal(/^> tcpkit@[^ ]+ install$/m.test(r.stdout), variant.scriptRuns, `install script ${variant.scriptRuns ? 'ran' : 'skipped'}:\n${r.stdout}`);
      });

      it('nothing was compiled: no build/ in the installed package', () => {
        assert.ok(!fs.existsSync(path.join(pkg, 'build')), 'build/ exists: the addon was compiled at install');
        assert.ok(fs.existsSync(path.join(pkg, 'prebuilds', 'linux-x64', 'tcpkit.glibc.node')));
      });

      for (const model of [
        { name: 'fork', args: ['--model', 'fork'], reply: (t: string) => t },
        { name: 'prefork', args: ['--model', 'prefork', '--workers', '2'], reply: (t: string) => t },
        { name: 'exec', args: ['--exec', '--', '/bin/cat'], reply: (t: string) => t },
      ]) {
        it(`tcpkit serve ${model.args.join(' ')}: echoes, with the prebuilt addon mapped`, async () => {
          const s = await serveFrom(bin, env, ['--max-conns', '4', ...model.args]);
          servers.push(s);
          const text = `through the ${model.name} path ${'x'.repeat(2000)}\n`;
          assert.equal((await echoOnce(s.port, Buffer.from(text))).toString(), model.reply(text));
          const addons = mappedAddons(s.proc.pid!);
          console.log(`tcpkit serve ${model.args.join(' ')} (pid ${s.proc.pid}) maps: ${addons.join(' ')}`);
          assert.deepEqual(addons, [fs.realpathSync(path.join(pkg, 'prebuilds', 'linux-x64', 'tcpkit.glibc.node'))]);
          await s.stop();
        });
      }
    });
  }

  // Where no prebuilt matches (here: node-gyp-build told the libc is musl), the install script compiles the sources
  // the tarball carries; this needs the compiler, make and python the other installs went without.
  it('no matching prebuilt: the install script compiles from source, and that build is the one loaded', async () => {
    const prefix = path.join(dir, 'prefix-source');
    const args = ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball];
    const r = sh(npm!, args, { cwd: dir, env: { ...cleanEnv(process.env.PATH ?? ''), LIBC: 'musl' } });
    assert.equal(r.status, 0, `npm install building from source:\n${r.stdout}\n${r.stderr}`);
    const pkg = path.join(prefix, 'lib', 'node_modules', 'tcpkit');
    const built = path.join(pkg, 'build', 'Release', 'fdutil.node');
    assert.ok(fs.existsSync(built), `compiled at install:\n${r.stdout}\n${r.stderr}`);
    const s = await serveFrom(path.join(prefix, 'bin', 'tcpkit'), cleanEnv(process.env.PATH ?? ''), ['--max-conns', '4']);
    servers.push(s);
    assert.equal((await echoOnce(s.port, Buffer.from('built here\n'))).toString(), 'built here\n');
    assert.deepEqual(mappedAddons(s.proc.pid!), [fs.realpathSync(built)]);
    await s.stop();
  });
});
