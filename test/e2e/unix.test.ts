// UNIX-domain sockets (issue 22): `serve --unix PATH` under every model, through socat and ucspi-unix's
// unixclient; peer credentials (SO_PEERCRED) in the log, the program's environment, access rules and
// --per-source; the socket file's mode and owner; stale, live and non-socket paths; abstract names; removal
// at shutdown only of our own file; config files; socket activation; SIGUSR2; 10,000 connections.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BIN, eventually, fdsOf, run, sha256, spawnServer, type SpawnedServer, EVERY_MODEL } from '../helpers.js';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim();
const socat = has('socat');
const unixclient = has('unixclient');
const setpriv = has('setpriv');
const isRoot = process.getuid?.() === 0;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-unix-'));
// nobody must reach the sockets' directory to be refused by the socket's own mode, not by the directory's.
fs.chmodSync(dir, 0o755);
let n = 0;
const sockPath = () => path.join(dir, `s${++n}.sock`);

const servers: SpawnedServer<string>[] = [];
after(async () => {
  for (const s of servers) await s.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** `tcpkit serve --unix PATH ARGS --print-port`, resolved once it prints `unix:PATH`. */
async function serveUnix(where: string, args: string[] = [], env?: NodeJS.ProcessEnv): Promise<SpawnedServer<string>> {
  const s = await spawnServer(['serve', '--unix', where, '--print-port', ...args], (out) => /^unix:(.+)\n/.exec(out)?.[1], { env, what: 'unix:PATH' });
  servers.push(s);
  return s;
}

/** One exchange over a UNIX socket with Node's client: send, half-close, read to the end. */
function unixExchange(where: string, data: Buffer | string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ path: where.startsWith('@') ? `\0${where.slice(1)}` : where });
    const parts: Buffer[] = [];
    c.on('data', (b: Buffer) => parts.push(b));
    c.on('end', () => resolve(Buffer.concat(parts)));
    c.on('error', reject);
    c.end(data);
  });
}

/** Run a command (optionally as nobody), with `input` on its stdin: { code, stdout, stderr }. */
function runCmd(argv: string[], input: string, asNobody = false) {
  const full = asNobody ? [setpriv, '--reuid', '65534', '--regid', '65534', '--clear-groups', ...argv] : argv;
  const r = spawnSync(full[0]!, full.slice(1), { input, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const MODELS = EVERY_MODEL;

describe('echo on a UNIX socket under every model', { skip: socat && unixclient ? false : 'socat and unixclient (Debian packages socat, ucspi-unix) are needed' }, () => {
  for (const [name, args] of MODELS) {
    it(name, async () => {
      const where = sockPath();
      const s = await serveUnix(where, args);
      assert.equal(s.ready, where);
      assert.ok(fs.lstatSync(where).isSocket());
      assert.equal(runCmd([socat, '-', `UNIX-CONNECT:${where}`], 'through socat\n').stdout, 'through socat\n');
      // unixclient runs the program with the socket on fds 6 (read) and 7 (write).
      const u = runCmd([unixclient, where, 'sh', '-c', 'printf "through unixclient" >&7; head -c 18 <&6'], '');
      assert.equal(u.stdout, 'through unixclient', u.stderr);
      const big = Buffer.alloc(300_000, 'x');
      assert.equal(sha256(await unixExchange(where, big)), sha256(big));
      // The accept line names the path and the peer's uid and pid.
      await s.waitFor(new RegExp(`^accept uid=${process.getuid!()},gid=\\d+,pid=\\d+ -> unix:${where.replace(/[.]/g, '\\.')} unix pid \\d+ count \\d+/40 id \\d+$`, 'm'));
      assert.deepEqual(await s.stop(), { code: 0, signal: null });
      assert.equal(fs.existsSync(where), false, 'the socket file is removed at shutdown');
    });
  }
});

describe("a handler's info on a UNIX socket", () => {
  for (const model of ['event', 'fork', 'prefork', 'threads']) {
    it(`${model}: info.remote has the peer's pid, uid and gid; info.local the path`, async () => {
      const where = sockPath();
      const s = await serveUnix(where, ['--model', model, '--handler', path.join(import.meta.dirname, '..', 'fixtures', 'peer-info-handler.js')]);
      const got = JSON.parse((await unixExchange(where, '')).toString()) as { local: unknown; remote: unknown };
      assert.deepEqual(got.local, { address: where, port: 0, family: 'unix' });
      assert.deepEqual(got.remote, { address: '', port: 0, family: 'unix', pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
      await s.stop();
    });
  }
});

describe('--exec over a UNIX socket', { skip: socat ? false : 'socat is needed' }, () => {
  for (const model of ['fork', 'event', 'prefork']) {
    it(`${model}: the program has the socket on fds 0 and 1 and the ucspi-unix variables`, async () => {
      const where = sockPath();
      const script = path.join(dir, `env-${model}.sh`);
      fs.writeFileSync(script, '#!/bin/sh\nenv | grep -E "^(PROTO|UNIX)" | sort\nread line; echo "got $line"\n', { mode: 0o755 });
      const s = await serveUnix(where, ['--model', model, '--unix-mode', '0666', '--exec', '--', script]);
      const r = runCmd([socat, '-', `UNIX-CONNECT:${where}`], 'hello\n', isRoot && !!setpriv);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.at(-1), 'got hello', r.stderr);
      const env = Object.fromEntries(lines.slice(0, -1).map((l) => l.split('=') as [string, string]));
      assert.equal(env.PROTO, 'UNIX');
      assert.equal(env.UNIXLOCALPATH, where);
      assert.match(env.UNIXREMOTEPID ?? '', /^\d+$/);
      const uid = isRoot && setpriv ? '65534' : String(process.getuid!());
      assert.equal(env.UNIXREMOTEEUID, uid);
      assert.equal(env.UNIXREMOTEEGID, isRoot && setpriv ? '65534' : String(process.getgid!()));
      await s.stop();
    });
  }
});

describe('who may connect', { skip: socat && setpriv && isRoot ? false : 'needs root, setpriv and socat (to connect as nobody)' }, () => {
  it('--unix-mode 0600: nobody is refused by the file permissions, root is served', async () => {
    const where = sockPath();
    const s = await serveUnix(where, ['--model', 'event', '--unix-mode', '0600']);
    assert.equal(fs.statSync(where).mode & 0o777, 0o600);
    const r = runCmd([socat, '-', `UNIX-CONNECT:${where}`], 'x\n', true);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Permission denied/);
    assert.equal(runCmd([socat, '-', `UNIX-CONNECT:${where}`], 'root\n').stdout, 'root\n');
    await s.stop();
  });

  it('the default mode is 0660, and --unix-owner sets the owner before anyone connects', async () => {
    const where = sockPath();
    const s = await serveUnix(where, ['--model', 'event', '--unix-owner', 'nobody:nogroup']);
    const st = fs.statSync(where);
    assert.equal(st.mode & 0o777, 0o660);
    assert.equal(st.uid, 65534);
    assert.equal(runCmd([socat, '-', `UNIX-CONNECT:${where}`], 'owner\n', true).stdout, 'owner\n');
    await s.waitFor(/^accept uid=65534,gid=65534,pid=\d+ -> /m);
    await s.stop();
  });

  it('deny uid:65534 refuses nobody and serves root; allow group:NAME lets only that group in', async () => {
    const where = sockPath();
    const s = await serveUnix(where, ['--model', 'event', '--unix-mode', '0666', '--deny', 'uid:65534']);
    const r = runCmd([socat, '-', `UNIX-CONNECT:${where}`], 'x\n', true);
    assert.equal(r.stdout, '');
    await s.waitFor(/^deny uid=65534,gid=65534,pid=\d+ -> unix:\S+ unix reason access rule deny:uid:65534$/m);
    assert.equal(runCmd([socat, '-', `UNIX-CONNECT:${where}`], 'root\n').stdout, 'root\n');
    await s.stop();
    const where2 = sockPath();
    const s2 = await serveUnix(where2, ['--model', 'event', '--unix-mode', '0666', '--allow', 'group:nogroup']);
    assert.equal(runCmd([socat, '-', `UNIX-CONNECT:${where2}`], 'nobody\n', true).stdout, 'nobody\n');
    assert.equal(runCmd([socat, '-', `UNIX-CONNECT:${where2}`], 'root\n').stdout, '');
    await s2.waitFor(/^deny uid=0,gid=0,pid=\d+ -> unix:\S+ unix reason access rule default-deny$/m);
    await s2.stop();
  });

  it('--per-source counts connections per uid', async () => {
    const where = sockPath();
    const s = await serveUnix(where, ['--model', 'event', '--unix-mode', '0666', '--per-source', '1']);
    const first = net.connect({ path: where });
    await new Promise((r) => first.once('connect', r));
    await s.waitFor(/^accept uid=0,/m);
    // A second connection of the same uid is refused; another uid still has its place.
    assert.equal((await unixExchange(where, 'again').catch((err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? Buffer.alloc(0) : Promise.reject(err)))).length, 0);
    await s.waitFor(/^refuse uid=0,gid=0,pid=\d+ -> unix:\S+ unix reason per-source$/m);
    assert.equal(runCmd([socat, '-', `UNIX-CONNECT:${where}`], 'other uid\n', true).stdout, 'other uid\n');
    first.destroy();
    await s.stop();
  });
});

describe('the socket file', () => {
  it('a stale socket file is replaced', async () => {
    const where = sockPath();
    const stale = net.createServer();
    await new Promise<void>((r) => stale.listen(where, r));
    // Closing a Node server unlinks its path: bind a raw socket file left with nobody listening instead.
    await new Promise<void>((r) => stale.close(() => r()));
    const py = spawnSync('python3', ['-c', `import socket; s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(where)})`]);
    assert.equal(py.status, 0, String(py.stderr));
    assert.ok(fs.lstatSync(where).isSocket());
    const s = await serveUnix(where, ['--model', 'event']);
    assert.equal((await unixExchange(where, 'fresh')).toString(), 'fresh');
    await s.stop();
  });

  it('a live server on the path is refused with exit 111 naming it, and keeps its file', async () => {
    const where = sockPath();
    const s = await serveUnix(where, ['--model', 'event']);
    const r = await run(['serve', '--unix', where]);
    assert.equal(r.code, 111);
    assert.match(r.stderr, new RegExp(`listen EADDRINUSE unix:${where.replace(/[.]/g, '\\.')} \\(a server is accepting there\\)`));
    assert.equal((await unixExchange(where, 'still')).toString(), 'still');
    await s.stop();
  });

  it('a path that is not a socket is never removed', async () => {
    const where = sockPath();
    fs.writeFileSync(where, 'precious');
    const r = await run(['serve', '--unix', where]);
    assert.equal(r.code, 111);
    assert.match(r.stderr, /not a socket: left as it is/);
    assert.equal(fs.readFileSync(where, 'utf8'), 'precious');
  });

  it('at shutdown the file is removed only if it is still ours', async () => {
    const where = sockPath();
    const s = await serveUnix(where, ['--model', 'event']);
    // Another server takes the path meanwhile (its file renamed over ours).
    const other = path.join(dir, 'other.sock');
    const theirs = net.createServer((c) => c.end('theirs'));
    await new Promise<void>((r) => theirs.listen(other, r));
    fs.renameSync(other, where);
    assert.deepEqual(await s.stop(), { code: 0, signal: null });
    assert.ok(fs.lstatSync(where).isSocket(), "the other server's file stays");
    assert.equal((await unixExchange(where, '')).toString(), 'theirs');
    await new Promise<void>((r) => theirs.close(() => r()));
    fs.rmSync(where, { force: true });
  });

  it('abstract names (@name): no file, served, refused when taken', { skip: socat ? false : 'socat is needed' }, async () => {
    const name = `@tcpkit-test-${process.pid}-${++n}`;
    const s = await serveUnix(name, ['--model', 'event']);
    assert.equal(s.ready, name);
    assert.equal(runCmd([socat, '-', `ABSTRACT-CONNECT:${name.slice(1)}`], 'abstract\n').stdout, 'abstract\n');
    const r = await run(['serve', '--unix', name]);
    assert.equal(r.code, 111);
    assert.match(r.stderr, /EADDRINUSE/);
    await s.stop();
  });

  it('a config file mixes TCP and UNIX addresses', async () => {
    const where = sockPath();
    const file = path.join(dir, 'mixed.yaml');
    fs.writeFileSync(file, `services:\n  echo:\n    internal: echo\n    model: event\n    listen: ["unix:${where}", "127.0.0.1:0"]\n    unixMode: "0600"\n`);
    assert.equal((await run(['check', '--config', file])).code, 0);
    // --print-port under --config: a line per address, `SERVICE LISTEN LOCAL`.
    const proc = await spawnServer(['serve', '--config', file, '--print-port'], (o) => (o.split('\n').length > 2 ? o : undefined));
    servers.push(proc);
    assert.match(proc.ready, new RegExp(`^echo unix:${where.replace(/[.]/g, '\\.')} unix:${where.replace(/[.]/g, '\\.')}$`, 'm'));
    await proc.waitFor(new RegExp(`^listen unix:${where.replace(/[.]/g, '\\.')} unix model event service echo`, 'm'));
    await proc.waitFor(/^listen 127\.0\.0\.1:\d+ IPv4/m);
    assert.equal(fs.statSync(where).mode & 0o777, 0o600);
    assert.equal((await unixExchange(where, 'cfg')).toString(), 'cfg');
    await proc.stop();
    assert.equal(fs.existsSync(where), false);
  });
});

const ssa = has('systemd-socket-activate');

describe('an inherited UNIX socket', () => {
  it('socket activation: systemd-socket-activate -l PATH; the file is the manager\'s', { skip: ssa ? false : 'systemd-socket-activate is not installed (Debian package systemd)' }, async () => {
    const where = sockPath();
    const proc = spawn(ssa, ['-l', where, process.execPath, BIN, 'serve', '--model', 'event'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (log += c));
    try {
      await eventually(() => fs.existsSync(where) || undefined, { timeoutMs: 20_000, message: `socket file; ${log}` });
      // The first connection starts tcpkit, and is served.
      assert.equal((await unixExchange(where, 'first')).toString(), 'first');
      await eventually(() => new RegExp(`^listen unix:${where.replace(/[.]/g, '\\.')} unix model event`, 'm').test(log) || undefined, { timeoutMs: 20_000, message: log });
      assert.equal((await unixExchange(where, 'second')).toString(), 'second');
    } finally {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
  });

  it('SIGUSR2: the successor serves on the same file, which survives the handover and goes at its end', async () => {
    const where = sockPath();
    const s = await serveUnix(where, ['--model', 'event']);
    const ino = fs.lstatSync(where).ino;
    s.proc.kill('SIGUSR2');
    const m = await s.waitFor(/^restart state ready pid (\d+)$/m);
    const successor = Number(m[1]);
    assert.deepEqual(await s.exited, { code: 0, signal: null });
    assert.equal(fs.lstatSync(where).ino, ino, 'the file stays for the successor');
    assert.equal((await unixExchange(where, 'after restart')).toString(), 'after restart');
    process.kill(successor, 'SIGTERM');
    await eventually(() => !fs.existsSync(where) || undefined, { timeoutMs: 20_000, message: 'the successor removes the file at its end' });
  });
});

describe('10,000 connections', () => {
  it('byte-exact, with the descriptor count flat', async () => {
    const where = sockPath();
    const s = await serveUnix(where, ['--model', 'event', '-q', '--max-conns', '100']);
    const before = fdsOf(s.pid).length;
    let next = 0;
    const worker = async () => {
      while (next < 10_000) {
        const i = next++;
        const payload = Buffer.from(`connection ${i} ${'y'.repeat(i % 200)}`);
        const got = await unixExchange(where, payload);
        assert.ok(got.equals(payload), `connection ${i} echoed ${got.length} bytes of ${payload.length}`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    await eventually(() => (fdsOf(s.pid).length <= before ? true : undefined), { timeoutMs: 10_000, message: `descriptors: ${fdsOf(s.pid).length} after, ${before} before` });
    await s.stop();
  });
});

describe('client, bench and status on a UNIX socket', () => {
  it('tcpkit client unix:PATH echoes stdin; a missing socket exits 111 naming it', async () => {
    const where = sockPath();
    const s = await serveUnix(where, ['--model', 'event']);
    const r = await run(['client', `unix:${where}`], { input: 'from the client\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'from the client\n');
    const missing = await run(['client', `unix:${where}.none`], { input: '' });
    assert.equal(missing.code, 111);
    assert.match(missing.stderr, new RegExp(`connect ENOENT unix:${where.replace(/[.]/g, '\\.')}\\.none`));
    await s.stop();
  });

  it('tcpkit bench unix:PATH --mode echo', async () => {
    const where = sockPath();
    const s = await serveUnix(where, ['--model', 'event', '-q']);
    const r = await run(['bench', `unix:${where}`, '--mode', 'echo', '--conns', '300', '--clients', '3', '--json', '--server-pid', String(s.pid)]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout.toString()) as { target: string; connections: { completed: number; failed: number } };
    assert.equal(report.target, `unix:${where}`);
    assert.equal(report.connections.completed, 900);
    assert.equal(report.connections.failed, 0);
    await s.stop();
  });

  it('tcpkit status lists the UNIX listener and its connections', async () => {
    const where = sockPath();
    // Without --admin: what /proc shows (the listener in the server and both workers, the connection in one).
    const s = await serveUnix(where, ['--model', 'prefork', '--workers', '2']);
    const held = net.connect({ path: where });
    await new Promise((r) => held.once('connect', r));
    await s.waitFor(/^accept /m);
    const st = await run(['status', '--pid', String(s.pid)]);
    assert.equal(st.code, 0, String(st.stderr));
    const r = { stdout: st.stdout.toString() };
    assert.match(r.stdout, /Active UNIX domain sockets/);
    assert.match(r.stdout, new RegExp(`^${where.replace(/[.]/g, '\\.')}\\s+LISTEN\\s+\\d+\\s+${s.pid},\\d+,\\d+$`, 'm'));
    assert.match(r.stdout, new RegExp(`^${where.replace(/[.]/g, '\\.')}\\s+CONNECTED\\s+\\d+\\s+\\d+$`, 'm'));
    held.destroy();
    await s.stop();
  });
});

describe('the admin endpoint on a UNIX server', () => {
  it('/status names the listener and lists the connection with its credentials, and the UNIX sockets from /proc', async () => {
    const where = sockPath();
    const s = await serveUnix(where, ['--model', 'event', '--admin', '127.0.0.1:0']);
    const url = (await s.waitFor(/^admin (http:\/\/\S+) pid/m))[1]!;
    const held = net.connect({ path: where });
    await new Promise((r) => held.once('connect', r));
    await s.waitFor(/^accept /m);
    const status = (await (await fetch(new URL('status', url))).json()) as {
      server: { local: unknown; connections: Array<{ remote: { uid?: number; pid?: number } }> };
      unix?: Array<{ path: string; state: string }>;
    };
    assert.deepEqual(status.server.local, { address: where, port: 0, family: 'unix' });
    assert.equal(status.server.connections[0]?.remote.uid, process.getuid!());
    assert.equal(status.server.connections[0]?.remote.pid, process.pid);
    assert.deepEqual(status.unix?.map((u) => [u.path, u.state]), [[where, 'LISTEN'], [where, 'CONNECTED']]);
    held.destroy();
    await s.stop();
  });
});

describe('tcpkit check on a UNIX socket path', () => {
  it('names a missing directory, a non-socket at the path, a live server, a mode nobody can connect with, an unknown owner', async () => {
    const plain = path.join(dir, 'plain-file');
    fs.writeFileSync(plain, '');
    const live = sockPath();
    const s = await serveUnix(live, ['--model', 'event']);
    const cases: Array<[string[], RegExp]> = [
      [['--unix', path.join(dir, 'no-such-dir', 'x.sock')], /--unix: directory \S+no-such-dir does not exist/],
      [['--unix', plain], /--unix: \S+plain-file exists and is not a socket/],
      [['--unix', live], /--unix: a server is accepting on /],
      [['--unix', sockPath(), '--unix-mode', '0555'], /--unix: mode "0555" gives nobody write permission/],
      [['--unix', sockPath(), '--unix-owner', 'no-such-user-x'], /--unix-owner: no such user "no-such-user-x"/],
    ];
    for (const [args, re] of cases) {
      const r = await run(['check', ...args]);
      assert.equal(r.code, 100, `${args.join(' ')}: ${String(r.stderr)}`);
      assert.match(String(r.stderr), re);
    }
    const ok = await run(['check', '--unix', sockPath(), '--unix-mode', '0600']);
    assert.equal(ok.code, 0, String(ok.stderr));
    await s.stop();
  });
});

describe('the library on a UNIX socket', () => {
  it('createServer({ path, unixMode }) and connect({ path }): echo, the peer in the accept event, the file gone after close', async () => {
    const { createServer, connect } = await import('../../src/index.js');
    const where = sockPath();
    const server = createServer({ path: where, unixMode: '0600', model: 'event', service: 'echo' });
    const events: Array<{ type: string; remote?: { uid?: number; pid?: number } }> = [];
    server.on('event', (e) => events.push(e as (typeof events)[number]));
    assert.deepEqual(await server.listen(), { address: where, port: 0, family: 'unix' });
    assert.equal(fs.statSync(where).mode & 0o777, 0o600);
    const socket = await connect({ path: where });
    const got = await new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (b: Buffer) => (text += b.toString()));
      socket.on('end', () => resolve(text));
      socket.end('library');
    });
    assert.equal(got, 'library');
    const accept = events.find((e) => e.type === 'accept');
    assert.equal(accept?.remote?.uid, process.getuid!());
    assert.equal(accept?.remote?.pid, process.pid);
    await server.close();
    assert.equal(fs.existsSync(where), false);
  });
});
