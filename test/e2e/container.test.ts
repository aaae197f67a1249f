// The Dockerfile, run step by step outside a container (no container tool here can fetch its base image): each
// stage is a fresh directory, COPY copies from this checkout or from the build stage's directory, RUN runs in
// the stage's WORKDIR. The final stage's tree is then started as ENTRYPOINT + CMD say, as an unprivileged user
// (its USER), on loopback: it must serve, and stop cleanly on STOPSIGNAL.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ROOT, echoOnce, eventually } from '../helpers.js';

interface Stage {
  name: string;
  root: string;
  workdir: string;
  user?: string;
  entrypoint?: string[];
  cmd?: string[];
  stopsignal?: string;
  /** RUN lines the test did not run (the final stage's user creation: it would change this host). */
  skipped: string[];
}

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function instructions(text: string): [string, string][] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /^(\S+)\s+(.*)$/.exec(l);
      assert.ok(m, `instruction: ${l}`);
      return [m[1]!.toUpperCase(), m[2]!];
    });
}

/** This environment without npm's own `npm_*` variables (set when the suite runs under `npm test`), as a build would have it. */
function buildEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-container-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('Dockerfile', () => {
  it('builds in two stages and runs tcpkit serve as a non-root user', { timeout: 600_000 }, async () => {
    fs.chmodSync(tmp, 0o755);
    const stages: Stage[] = [];
    let stage: Stage | undefined;
    const inStage = (p: string) => path.join(stage!.root, path.isAbsolute(p) ? p : path.join(stage!.workdir, p));
    for (const [op, arg] of instructions(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))) {
      if (op === 'FROM') {
        const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(arg);
        assert.ok(m);
        assert.match(m[1]!, /^node:20\b/, 'a Node 20 base image');
        stage = { name: m[2] ?? `stage${stages.length}`, root: path.join(tmp, `stage${stages.length}`), workdir: '/', skipped: [] };
        fs.mkdirSync(stage.root, { mode: 0o755 });
        stages.push(stage);
        continue;
      }
      assert.ok(stage, `${op} before FROM`);
      switch (op) {
        case 'WORKDIR':
          stage.workdir = arg;
          fs.mkdirSync(inStage('.'), { recursive: true, mode: 0o755 });
          break;
        case 'COPY': {
          const words = arg.split(/\s+/);
          const from = words[0]!.startsWith('--from=') ? stages.find((s) => s.name === words.shift()!.slice('--from='.length)) : undefined;
          const dest = words.pop()!;
          for (const src of words) {
            const source = from ? path.join(from.root, src) : path.join(ROOT, src);
            const target = dest.endsWith('/') || words.length > 1 ? path.join(inStage(dest), path.basename(src)) : inStage(dest);
            fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
            // From this checkout, only what git tracks (a local build/ or node_modules/ is .dockerignore'd).
            fs.cpSync(source, target, { recursive: true, filter: (f) => from !== undefined || !/\/(node_modules|build|dist)(\/|$)/.test(path.relative(ROOT, f)) });
          }
          break;
        }
        case 'RUN':
          if (stage !== stages[0] && /^(useradd|adduser|groupadd)\b/.test(arg)) {
            stage.skipped.push(arg);
            break;
          }
          {
            const r = spawnSync('sh', ['-c', arg], { cwd: inStage('.'), encoding: 'utf8', timeout: 480_000, env: { ...buildEnv(), npm_config_loglevel: 'error' } });
            assert.equal(r.status, 0, `RUN ${arg}\n${r.stdout}\n${r.stderr}`);
          }
          break;
        case 'USER':
          stage.user = arg;
          break;
        case 'ENTRYPOINT':
          stage.entrypoint = JSON.parse(arg) as string[];
          break;
        case 'CMD':
          stage.cmd = JSON.parse(arg) as string[];
          break;
        case 'STOPSIGNAL':
          stage.stopsignal = arg;
          break;
        case 'EXPOSE':
          break;
        default:
          assert.fail(`instruction ${op} is not handled by this test`);
      }
    }
    assert.equal(stages.length, 2, 'two stages: build, then run');
    const final = stages[1]!;
    assert.ok(final.user && !['root', '0'].includes(final.user), `USER ${final.user}: not root`);
    assert.deepEqual(final.skipped.length, 1, 'the user is created in the final stage');
    assert.deepEqual(final.entrypoint, ['node', 'bin/tcpkit.js', 'serve']);
    assert.deepEqual(final.cmd, ['--host', '0.0.0.0', '--port', '9877']);
    // Only what runs: no compiler output besides the addon, no development packages.
    const app = path.join(final.root, final.workdir);
    assert.ok(fs.existsSync(path.join(app, 'build', 'Release', 'tcpkit.node')) || fs.readdirSync(path.join(app, 'build', 'Release')).some((f) => f.endsWith('.node')));
    assert.ok(!fs.existsSync(path.join(app, 'node_modules', 'typescript')), 'devDependencies pruned');

    // Started as the image starts it (ENTRYPOINT + CMD, here on loopback and port 0), as an unprivileged user.
    const argv = [...final.entrypoint!, '--host', '127.0.0.1', '--port', '0', '--print-port'];
    const proc = spawn(argv[0] === 'node' ? process.execPath : argv[0]!, argv.slice(1), {
      cwd: app,
      uid: process.getuid?.() === 0 ? 65534 : undefined,
      gid: process.getuid?.() === 0 ? 65534 : undefined,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    try {
      const port = Number((await eventually(() => /^(\d+)\n/.exec(out), { timeoutMs: 20_000, message: `the port; stderr:\n${err}` }))[1]);
      assert.equal((await echoOnce(port, 'in the image\n')).toString(), 'in the image\n');
      proc.kill(final.stopsignal as NodeJS.Signals);
      assert.equal(await exited, 0, err);
    } finally {
      proc.kill('SIGKILL');
    }
  });
});
