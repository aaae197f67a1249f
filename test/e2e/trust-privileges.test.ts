// Trust boundaries, privileges (issue 15 items 1, 7, 8, 10): with --user (or `user:` in a
// config file) everything that serves a client runs as that user, an unknown user or a
// program it cannot run fails before anything is bound, a clean shutdown with --admin
// exits 0, and SIGUSR2 restarts without downtime after the drop. Real processes; the
// privilege tests need root and skip otherwise.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { echoOnce, eventually, run as runJs, startServer as startServerJs } from '../helpers.js';
import { startConfigServer as startConfigServerJs, tempDir } from '../exec-helpers.js';

// The JavaScript helpers take `env`, which their inferred types leave out.
type Env = Record<string, string>;
const run = runJs as (args: string[], o?: { timeoutMs?: number; env?: Env }) => ReturnType<typeof runJs>;
const startServer = startServerJs as (args: string[], o?: { env?: Env }) => ReturnType<typeof startServerJs>;
const startConfigServer = startConfigServerJs as (file: string, count: number, o?: { env?: Env }) => ReturnType<typeof startConfigServerJs>;

const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'needs root (drops to the user nobody)';
const NOBODY = 65534;

const tmp = tempDir();
// A shared, sticky directory like /tmp: nobody must be able to make its own state directory in it.
fs.chmodSync(tmp.dir, 0o1777);
const servers: Array<{ stop(signal?: string): Promise<{ code: number | null; signal: string | null }> }> = [];
const strays: number[] = [];
const alive = (pid: number) => fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
after(async () => {
  for (const pid of strays) if (alive(pid)) process.kill(pid, 'SIGKILL');
  // Workers and spares are the servers' own children: SIGTERM stops them with the server, which must exit 0.
  const codes = await Promise.all(servers.map((s) => s.stop('SIGTERM')));
  assert.deepEqual(codes.filter((c) => c.code !== 0), []);
  tmp.cleanup();
});

/** Real uid of a running process, from /proc. */
function uidOf(pid: number): number {
  const m = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]);
}

/** State files go under the test's own TMPDIR, not the machine's /tmp. */
const env = { TMPDIR: tmp.dir, XDG_RUNTIME_DIR: '', TCPKIT_STATE_DIR: '' };

describe('trust: privileges', { skip }, () => {
  it('item 1: --user reaches prefork workers (the program they start runs as the user)', async () => {
    const srv = await startServer(['--model', 'prefork', '--workers', '1', '--user', 'nobody', '--exec', '--', '/usr/bin/id', '-u'], { env });
    servers.push(srv);
    for (let i = 0; i < 3; i++) assert.equal((await echoOnce(srv.port, '')).toString(), `${NOBODY}\n`);
    const worker = Number((await srv.waitFor(/^spawn pid (\d+) role worker$/m))[1]);
    assert.equal(uidOf(worker), NOBODY);
  });

  it('item 1: --user reaches the first fork spares', async () => {
    const srv = await startServer(['--model', 'fork', '--spare', '2', '--user', 'nobody'], { env });
    servers.push(srv);
    await eventually(() => (srv.log().match(/^spawn pid \d+ role spare$/gm) ?? []).length >= 2, { message: 'two spares' });
    const spares = [...srv.log().matchAll(/^spawn pid (\d+) role spare$/gm)].map((m) => Number(m[1]));
    for (const pid of spares.slice(0, 2)) assert.equal(uidOf(pid), NOBODY, `spare ${pid} runs as nobody`);
    assert.equal((await echoOnce(srv.port, 'spare')).toString(), 'spare');
  });

  it('item 1: `user:` in a config file reaches prefork workers', async () => {
    const file = path.join(tmp.dir, 'user.yaml');
    fs.writeFileSync(file, 'user: nobody\nservices:\n  id:\n    listen: 127.0.0.1:0\n    exec: [/usr/bin/id, -u]\n    model: prefork\n    workers: 1\n');
    const srv = await startConfigServer(file, 1, { env });
    servers.push(srv);
    assert.equal((await echoOnce(srv.ports['id 127.0.0.1:0'], '')).toString(), `${NOBODY}\n`);
  });

  it('item 7: a clean shutdown with --user and --admin exits 0 with no stack trace, state file removed', async () => {
    const srv = await startServer(['--user', 'nobody', '--admin', '127.0.0.1:0'], { env });
    const file = path.join(tmp.dir, `tcpkit-${NOBODY}`, `${srv.pid}.json`);
    await eventually(() => fs.existsSync(file), { message: `state file ${file}` });
    // Found by `tcpkit status --pid` run as root, though it is in nobody's directory.
    const status = await run(['status', '--pid', String(srv.pid)], { timeoutMs: 30_000, env });
    assert.equal(status.code, 0, status.stderr);
    // The model and service come from the admin endpoint (the /proc-only view does not know them).
    assert.match(status.stdout.toString(), /model fork\s+service echo/);
    const r = await srv.stop('SIGTERM');
    assert.equal(r.code, 0, srv.log());
    assert.doesNotMatch(srv.log(), /Error|EACCES|    at /);
    assert.equal(fs.existsSync(file), false, 'state file removed');
  });

  it('item 8: SIGUSR2 restarts without downtime after the drop; the successor serves as nobody', async () => {
    const old = await startServer(['--model', 'prefork', '--workers', '1', '--user', 'nobody'], { env });
    assert.equal((await echoOnce(old.port, 'before')).toString(), 'before');
    old.proc.kill('SIGUSR2');
    const next = Number((await old.waitFor(/^restart state spawn pid (\d+)$/m))[1]);
    strays.push(next);
    await old.waitFor(new RegExp(`^restart state ready pid ${next}$`, 'm'), { timeoutMs: 60_000 });
    assert.equal((await old.exited).code, 0, old.log());
    assert.equal(uidOf(next), NOBODY);
    assert.equal((await echoOnce(old.port, 'after')).toString(), 'after');
    process.kill(next, 'SIGTERM');
    await eventually(() => !alive(next), { timeoutMs: 30_000, message: `successor ${next} to exit` });
  });

  it('item 2: serve --admin refuses a state directory another user made (mode 777, links planted), writes nothing through it', async () => {
    const shared = fs.mkdtempSync(path.join(tmp.dir, 'shared-'));
    fs.chmodSync(shared, 0o1777);
    const planted = path.join(shared, 'tcpkit-0');
    fs.mkdirSync(planted);
    fs.chmodSync(planted, 0o777);
    fs.chownSync(planted, NOBODY, NOBODY);
    const victim = path.join(tmp.dir, 'victim');
    fs.writeFileSync(victim, 'precious');
    // Links named like every state and temporary file a pid near ours could use.
    for (let pid = process.pid; pid < process.pid + 200; pid++) {
      fs.symlinkSync(victim, path.join(planted, `${pid}.json.${pid}.tmp`));
      fs.symlinkSync(victim, path.join(planted, `${pid}.json`));
    }
    const r = await run(['serve', '--host', '127.0.0.1', '--port', '0', '--admin', '127.0.0.1:0'], {
      timeoutMs: 30_000,
      env: { TMPDIR: shared, XDG_RUNTIME_DIR: '', TCPKIT_STATE_DIR: '' },
    });
    assert.equal(r.code, 111, r.stderr);
    assert.match(r.stderr, /admin state directory .*tcpkit-0: is owned by uid 65534, not by this server's uid 0; refusing to write there \(remove it or set TCPKIT_STATE_DIR\)/);
    assert.equal(fs.readFileSync(victim, 'utf8'), 'precious');
  });

  it('item 10: --user nosuchuser fails before binding (exit 100, no listen line)', async () => {
    const r = await run(['serve', '--host', '127.0.0.1', '--port', '0', '--user', 'nosuchuser'], { timeoutMs: 30_000 });
    assert.equal(r.code, 100);
    assert.match(r.stderr, /user: no such user "nosuchuser"/);
    assert.doesNotMatch(r.stderr, /^listen /m);
  });

  it('item 10: a config file with an unknown user fails before binding too, with --user overriding it', async () => {
    const file = path.join(tmp.dir, 'echo.yaml');
    fs.writeFileSync(file, 'services:\n  echo:\n    listen: 127.0.0.1:0\n    internal: echo\n');
    const r = await run(['serve', '--config', file, '--user', 'nosuchuser'], { timeoutMs: 30_000 });
    assert.equal(r.code, 100);
    assert.doesNotMatch(r.stderr, /^listen /m);
  });

  it('item 10: an exec program the target user cannot run is refused at start, before binding', async () => {
    const dir = fs.mkdtempSync(path.join(tmp.dir, 'prog-'));
    fs.chmodSync(dir, 0o755);
    const rootOnly = path.join(dir, 'root-only.sh');
    fs.writeFileSync(rootOnly, '#!/bin/sh\necho ran\n', { mode: 0o700 });
    const r = await run(['serve', '--host', '127.0.0.1', '--port', '0', '--user', 'nobody', '--exec', '--', rootOnly], { timeoutMs: 30_000 });
    assert.equal(r.code, 100, r.stderr);
    assert.match(r.stderr, /exec: program ".*root-only\.sh" cannot be run as the target user: uid 65534 gid 65534 may not execute/);
    assert.doesNotMatch(r.stderr, /^listen /m);

    // The same program readable and executable by others runs, as nobody.
    const everyone = path.join(dir, 'everyone.sh');
    fs.writeFileSync(everyone, '#!/bin/sh\nid -u\n', { mode: 0o755 });
    const srv = await startServer(['--user', 'nobody', '--exec', '--', everyone], { env });
    servers.push(srv);
    assert.equal((await echoOnce(srv.port, '')).toString(), `${NOBODY}\n`);
  });
});
