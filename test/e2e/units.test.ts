// The systemd units the package ships (systemd/), run as they are written: tcpkit.socket + tcpkit.service under
// systemd-socket-activate (ListenStream, FileDescriptorName, Accept and ExecStart read from the files), and the
// template tcpkit@.service with one instance's config, reloaded by its ExecReload and stopped by its KillSignal.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BIN, ROOT, echoOnce, eventually, freePort } from '../helpers.js';

type Unit = Record<string, Record<string, string[]>>;

/** A unit file's sections and their settings (a key may repeat); comments and blank lines dropped. */
function readUnit(name: string): Unit {
  const unit: Unit = {};
  let section = '';
  for (const raw of fs.readFileSync(path.join(ROOT, 'systemd', name), 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) {
      section = head[1]!;
      unit[section] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(eq > 0 && section, `${name}: "${line}" is a setting inside a section`);
    ((unit[section]![line.slice(0, eq)] ??= [])).push(line.slice(eq + 1));
  }
  return unit;
}

/** The one value of a setting. */
function one(unit: Unit, section: string, key: string): string {
  const v = unit[section]?.[key];
  assert.equal(v?.length, 1, `one ${key}= in [${section}]`);
  return v![0]!;
}

/**
 * An Exec*= line as systemd runs it: words split on spaces, %i replaced, `$VAR` split into words and `${VAR}` kept
 * as one (systemd.service(5), "Command lines"); the units use no quoting, which the assertion keeps so.
 */
function execArgv(line: string, { instance, env }: { instance?: string; env: Record<string, string> }): string[] {
  assert.doesNotMatch(line, /["'\\]/, 'no quoting or escapes (this reader does not implement them)');
  const words = line.replace(/%i/g, instance ?? '').split(/\s+/).filter(Boolean);
  return words.flatMap((w) => {
    const split = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(w);
    if (split) return (env[split[1]!] ?? '').split(/\s+/).filter(Boolean);
    return [w.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, k: string) => env[k] ?? '')];
  });
}

/** `tcpkit` as the units name it (found on systemd's search path) is this checkout's bin/tcpkit.js here. */
function tcpkitArgv(argv: string[]): string[] {
  assert.equal(argv[0], 'tcpkit', 'ExecStart runs tcpkit from the search path');
  return [process.execPath, BIN, ...argv.slice(1)];
}


interface Proc {
  proc: ChildProcess;
  log(): string;
  waitFor(re: RegExp, from?: number): Promise<RegExpExecArray>;
  stop(signal: NodeJS.Signals, seconds: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started: Proc[] = [];

function watch(argv: string[]): Proc {
  const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout!.setEncoding('utf8').on('data', (c: string) => (log += c));
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => (log += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const p: Proc = {
    proc,
    log: () => log,
    waitFor: (re, from = 0) => eventually(() => re.exec(log.slice(from)), { timeoutMs: 20_000, message: `${re} in:\n${log}` }) as Promise<RegExpExecArray>,
    async stop(signal, seconds) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), seconds * 1000);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
  started.push(p);
  return p;
}

after(async () => {
  for (const p of started) await p.stop('SIGTERM', 20);
});

const ssa = spawnSync('sh', ['-c', 'command -v systemd-socket-activate'], { encoding: 'utf8' }).stdout.trim();

describe('systemd/tcpkit.socket + tcpkit.service under systemd-socket-activate', { skip: ssa ? false : 'systemd-socket-activate is not installed (Debian package systemd)' }, () => {
  it('the socket unit starts the service unit on the first connection; served, stopped cleanly by KillSignal', async () => {
    const socket = readUnit('tcpkit.socket');
    const service = readUnit('tcpkit.service');
    assert.deepEqual(service.Unit?.Requires, ['tcpkit.socket']);
    // The unit listens on 9877 on every address; the test takes the same kind of socket on loopback, on a free port.
    assert.equal(one(socket, 'Socket', 'ListenStream'), '9877');
    assert.equal(one(socket, 'Socket', 'Accept'), 'no', 'one tcpkit for all connections, not one per connection');
    const name = one(socket, 'Socket', 'FileDescriptorName');
    const port = await freePort();
    // TCPKIT_OPTS as /etc/default/tcpkit (EnvironmentFile=) would set it.
    const argv = tcpkitArgv(execArgv(one(service, 'Service', 'ExecStart'), { env: { TCPKIT_OPTS: '--max-conns 7 --grace 5' } }));
    const p = watch([ssa, '-l', `127.0.0.1:${port}`, `--fdname=${name}`, ...argv]);
    await p.waitFor(/Listening on 127\.0\.0\.1:\d+ as 3\./);
    // The first connection waits in the backlog while tcpkit starts.
    assert.equal((await echoOnce(port, Buffer.from('first'))).toString(), 'first');
    await p.waitFor(new RegExp(`^listen 127\\.0\\.0\\.1:${port} IPv4 model fork service echo pid ${p.proc.pid} max 7$`, 'm'));
    assert.equal((await echoOnce(port, Buffer.from('second'))).toString(), 'second');
    const signal = one(service, 'Service', 'KillSignal') as NodeJS.Signals;
    assert.deepEqual(await p.stop(signal, Number(one(service, 'Service', 'TimeoutStopSec'))), { code: 0, signal: null });
  });
});

describe('systemd service units: no root, sandboxed', () => {
  const analyze = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' }).stdout.trim();
  for (const name of ['tcpkit.service', 'tcpkit@.service']) {
    it(`${name}: DynamicUser=, ProtectSystem=strict, no new privileges; systemd-analyze security rates it below 5`, () => {
      const unit = readUnit(name);
      assert.ok(one(unit, 'Service', 'DynamicUser') === 'yes' || unit.Service?.User !== undefined, 'DynamicUser=yes or User=');
      assert.equal(one(unit, 'Service', 'ProtectSystem'), 'strict');
      assert.equal(one(unit, 'Service', 'ProtectHome'), 'yes');
      assert.equal(one(unit, 'Service', 'NoNewPrivileges'), 'yes');
      // The admin endpoint's state file goes where the service may write: its runtime directory.
      const dir = one(unit, 'Service', 'RuntimeDirectory');
      assert.deepEqual(unit.Service?.Environment, [`TCPKIT_STATE_DIR=/run/${dir}`]);
      if (!analyze) return;
      // --offline: the file as written, no running systemd needed. The shipped units rated 9.6 (UNSAFE) before.
      const r = spawnSync(analyze, ['security', '--offline=true', path.join(ROOT, 'systemd', name)], { encoding: 'utf8', timeout: 60_000 });
      const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(r.stdout);
      assert.ok(m, `${r.stdout}${r.stderr}`);
      assert.ok(Number(m[1]) < 5, `exposure ${m[1]}`);
    });
  }
});

describe('systemd/tcpkit@.service: one config per instance', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-units-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('runs /etc/tcpkit/INSTANCE.yaml (rooted in a temporary directory), reloads on ExecReload, stops on KillSignal', async () => {
    const unit = readUnit('tcpkit@.service');
    const line = one(unit, 'Service', 'ExecStart');
    assert.match(line, /--config \/etc\/tcpkit\/%i\.yaml/);
    fs.mkdirSync(path.join(dir, 'etc', 'tcpkit'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'etc', 'tcpkit', 'demo.yaml'), 'services:\n  echo:\n    listen: 127.0.0.1:0\n    internal: echo\n');
    const argv = tcpkitArgv(execArgv(line, { instance: 'demo', env: {} }).map((w) => w.replace(/^\/etc\/tcpkit\//, `${dir}/etc/tcpkit/`)));
    assert.deepEqual(argv.slice(2), ['serve', '--config', `${dir}/etc/tcpkit/demo.yaml`]);
    const p = watch(argv);
    const [, port] = await p.waitFor(/^listen 127\.0\.0\.1:(\d+) IPv4 model fork service echo /m);
    assert.equal((await echoOnce(Number(port), Buffer.from('instance demo\n'))).toString(), 'instance demo\n');

    // systemctl reload: ExecReload with $MAINPID; the file is re-read, the unchanged socket kept.
    const from = p.log().length;
    const reload = execArgv(one(unit, 'Service', 'ExecReload'), { env: { MAINPID: String(p.proc.pid) } });
    assert.equal(spawnSync(reload[0]!, reload.slice(1)).status, 0, `${reload.join(' ')}`);
    await p.waitFor(/^reload ok kept 1 /m, from);
    assert.equal((await echoOnce(Number(port), Buffer.from('after reload\n'))).toString(), 'after reload\n');

    const signal = one(unit, 'Service', 'KillSignal') as NodeJS.Signals;
    assert.deepEqual(await p.stop(signal, Number(one(unit, 'Service', 'TimeoutStopSec'))), { code: 0, signal: null });
  });
});
