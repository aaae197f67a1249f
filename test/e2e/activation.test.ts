// Socket activation (LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES) and --fd: tcpkit serves on a listening
// socket it inherited, under systemd-socket-activate and under an equivalent launcher in the test.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import { BIN, childrenOf, connectTo, echoOnce, eventually, readBytes, run, socketInodes, tcpTable, portOf, fdOf, type Exit } from '../helpers.js';

/** Start a process (through `sh` so that LISTEN_PID can be its own pid) with `fd` as its descriptor 3. */
function launch(args: string[], { fd, env = {}, listenPid = true }: { fd?: number; env?: NodeJS.ProcessEnv; listenPid?: boolean } = {}) {
  const wrapper = listenPid ? 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"' : 'exec "$@"';
  const proc = spawn('/bin/sh', ['-c', wrapper, 'launcher', process.execPath, BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe', fd ?? 'ignore'],
    env: { ...process.env, ...env },
  });
  return watch(proc);
}

/** stdout/stderr collection and waiting, as helpers.startServer does, for processes started otherwise. */
function watch(proc: ChildProcess) {
  let stdout = '';
  let stderr = '';
  assert.ok(proc.stdout && proc.stderr, 'stdout and stderr are pipes');
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (c: string) => (stdout += c));
  proc.stderr.on('data', (c: string) => (stderr += c));
  const exited = new Promise<Exit>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    proc,
    exited,
    log: () => stderr,
    out: () => stdout,
    waitFor: (re: RegExp, what = 'log') =>
      eventually(() => re.exec(what === 'out' ? stdout : stderr), { timeoutMs: 20_000, message: `${re} in ${what}:\n${stderr}` }),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

/** A listening socket on 127.0.0.1, port chosen by the kernel: { server, fd, port }. */
async function listening() {
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  // Node keeps the handle private; tests read the descriptor number only (as src/listen.ts does).
  return { server, fd: fdOf(server), port: portOf(server) };
}

const started: { stop(): Promise<Exit> }[] = [];
after(async () => {
  for (const p of started) await p.stop();
});

describe('tcpkit serve on an inherited socket', () => {
  it('LISTEN_FDS from a launcher: serves on fd 3 (port as bound by the launcher); children inherit neither fd 3 nor the variables', async () => {
    const { server: ours, fd, port } = await listening();
    const p = launch(['serve', '--print-port', '--port', '1'], { fd, env: { LISTEN_FDS: '1', LISTEN_FDNAMES: 'echo' } });
    started.push(p);
    ours.close(); // the child has its own copy of the socket
    await p.waitFor(/^(\d+)\n/, 'out');
    assert.equal(Number(/^(\d+)/.exec(p.out())?.[1]), port, '--port is ignored when a socket is inherited');
    await p.waitFor(new RegExp(`^listen 127\\.0\\.0\\.1:${port} IPv4 model fork service echo pid ${p.proc.pid} max 40$`, 'm'));
    assert.equal((await echoOnce(port, Buffer.from('activated\n'))).toString(), 'activated\n');

    // A child serving a connection: only its own socket, and no LISTEN_* in its environment.
    const c = await connectTo(port);
    c.write('x');
    await readBytes(c, 1);
    const kids = childrenOf(p.proc.pid!);
    assert.equal(kids.length, 1);
    const env = fs.readFileSync(`/proc/${kids[0].pid}/environ`, 'utf8').split('\0');
    assert.deepEqual(env.filter((v) => /^(LISTEN_|TCPKIT_NOTIFY)/.test(v)), []);
    const table = tcpTable();
    const tcp = new Set(socketInodes(kids[0].pid).filter((i) => table.has(i)));
    assert.equal(tcp.size, 1, 'the child holds its connection only');
    assert.notEqual(table.get([...tcp][0] ?? '')?.state, '0A', 'not the inherited listening socket');
    c.destroy();
    assert.deepEqual(await p.stop(), { code: 0, signal: null });
  });

  it('LISTEN_PID naming another process: the sockets are not taken; tcpkit binds as asked', async () => {
    const { server: ours, fd, port } = await listening();
    const p = launch(['serve', '--print-port', '--host', '127.0.0.1', '--port', '0'], {
      fd,
      listenPid: false,
      env: { LISTEN_FDS: '1', LISTEN_PID: '1' },
    });
    started.push(p);
    try {
      const m = await p.waitFor(/^(\d+)\n/, 'out');
      assert.notEqual(Number(m[1]), port);
      assert.equal((await echoOnce(Number(m[1]), Buffer.from('own port'))).toString(), 'own port');
    } finally {
      ours.close();
      await p.stop();
    }
  });

  it('--fd N: serves on that descriptor', async () => {
    const { server: ours, fd, port } = await listening();
    const p = launch(['serve', '--fd', '3'], { fd, listenPid: false });
    started.push(p);
    ours.close();
    await p.waitFor(new RegExp(`^listen 127\\.0\\.0\\.1:${port} IPv4 `, 'm'));
    assert.equal((await echoOnce(port, Buffer.from('fd 3'))).toString(), 'fd 3');
    assert.deepEqual(await p.stop(), { code: 0, signal: null });
  });

  it('--fd on something that is not a listening TCP socket: a clear error, no serving', async () => {
    let r = await run(['serve', '--fd', '0'], { stdin: 'ignore' });
    assert.equal(r.code, 111);
    assert.match(r.stderr, /^tcpkit: listen ENOTSOCK fd 0\n$/);
    r = await run(['serve', '--fd', '99']);
    assert.equal(r.code, 111);
    assert.match(r.stderr, /listen EBADF fd 99/);
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    try {
      const p = launch(['serve', '--fd', '3'], { fd: fdOf(udp), listenPid: false });
      const { code } = await p.exited;
      assert.equal(code, 100);
      assert.match(p.log(), /fd: descriptor 3 is not a listening TCP or UNIX stream socket \(IPv4 dgram socket, not listening\)/);
    } finally {
      udp.close();
    }
  });
});

const ssa = spawnSync('sh', ['-c', 'command -v systemd-socket-activate'], { encoding: 'utf8' }).stdout.trim();

describe('under systemd-socket-activate', { skip: ssa ? false : 'systemd-socket-activate is not installed (Debian package systemd)' }, () => {
  it('started on the first connection with the socket as fd 3; that connection is served', async () => {
    // systemd-socket-activate binds an address given by number: take one the kernel says is free.
    const probe = await listening();
    const port = probe.port;
    await new Promise<void>((resolve) => probe.server.close(() => resolve()));
    const proc = spawn(ssa, ['-l', `127.0.0.1:${port}`, '--fdname=echo', process.execPath, BIN, 'serve'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const p = watch(proc);
    started.push(p);
    await p.waitFor(/Listening on 127\.0\.0\.1:\d+ as 3\./);
    // The first connection waits in the backlog while tcpkit starts.
    assert.equal((await echoOnce(port, Buffer.from('first'))).toString(), 'first');
    await p.waitFor(new RegExp(`^listen 127\\.0\\.0\\.1:${port} IPv4 model fork service echo pid ${proc.pid} max 40$`, 'm'));
    assert.equal((await echoOnce(port, Buffer.from('second'))).toString(), 'second');
    assert.deepEqual(await p.stop(), { code: 0, signal: null });
  });
});
