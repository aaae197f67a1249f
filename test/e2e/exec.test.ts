// tcpkit serve --exec: a program per connection, inetd/tcpserver style.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ROOT, childrenOf, connectTo, echoOnce, eventually, fdsOf, random, run, sha256, startServer, waitClose, portOf, type StartedServer, type ConnectOptions } from '../helpers.js';
import { ask, hasIPv6, stopAll } from '../exec-helpers.js';
import { endpointsOf } from '../../dist/address.js';
import { loadService } from '../../dist/services/index.js';
import { runService } from '../../dist/connection/run.js';

const PEER = path.join(ROOT, 'test', 'fixtures', 'ucspi-peer.js');
const servers: StartedServer[] = [];
after(async () => {
  await stopAll(servers);
});
async function serve(args: string[], opts?: { env?: NodeJS.ProcessEnv }): Promise<StartedServer> {
  const s = await startServer(args, opts);
  servers.push(s);
  return s;
}

describe('serve --exec', () => {
  it('runs /bin/cat with the socket as fds 0 and 1: 1 MiB of binary comes back exactly; the pid logged is cat\'s', async () => {
    const srv = await serve(['--exec', '--', '/bin/cat']);
    const data = random(1 << 20);
    const s = await connectTo(srv.port);
    const [, pid] = await srv.waitFor(/accept \S+ -> \S+ IPv4 pid (\d+)/);
    // The program holds exactly 0, 1, 2: the connected socket twice and its stderr pipe.
    const fds = fdsOf(Number(pid));
    assert.deepEqual(fds.map((f) => f.fd).sort(), [0, 1, 2]);
    assert.equal(fds[0].target, fds[1].target);
    assert.match(fds[0].target, /^socket:\[\d+\]$/);
    assert.notEqual(fds[2].target, fds[0].target);
    assert.equal(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'), '/bin/cat\0');
    assert.ok(childrenOf(srv.pid).some((c) => c.pid === Number(pid)), 'cat is the server\'s own child: no Node process in between');
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    const ended = new Promise((resolve) => s.once('end', resolve));
    s.end(data);
    await ended;
    s.destroy();
    assert.equal(sha256(Buffer.concat(chunks)), sha256(data));
    await srv.waitFor(new RegExp(`end pid ${pid} exitcode 0 `));
    await eventually(() => childrenOf(srv.pid).length === 0, { message: 'cat reaped' });
  });

  it('gives UCSPI variables for IPv4 (peer 127.0.0.2 by a bound source address) and getpeername on fd 0 agrees', async () => {
    const srv = await serve(['--exec', '--', process.execPath, PEER, 'a b', '$(touch x)'], {
      env: { FIXTURE_FOO: 'bar', TCPKIT_SECRET: 'internal', TCPREMOTEHOST: 'stale.example', TCPCONNNUM: '99' },
    });
    const s = await connectTo(srv.port, { source: '127.0.0.2' });
    const clientPort = s.localPort;
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    await new Promise((resolve) => s.once('end', resolve));
    s.destroy();
    const r = JSON.parse(Buffer.concat(chunks).toString());
    assert.deepEqual(r.env, {
      PROTO: 'TCP',
      TCPLOCALIP: '127.0.0.1',
      TCPLOCALPORT: String(srv.port),
      TCPREMOTEIP: '127.0.0.2',
      TCPREMOTEPORT: String(clientPort),
      TCPCONNNUM: '1',
      FIXTURE_FOO: 'bar',
    });
    assert.deepEqual(r.peer, { address: '127.0.0.2', port: clientPort, family: 'IPv4' });
    assert.deepEqual(r.local, { address: '127.0.0.1', port: srv.port });
    // Arguments reach the program as written: no shell, nothing expanded.
    assert.deepEqual(r.argv, ['a b', '$(touch x)']);
    // Its stderr line is in the server's log, with its pid, quoted on one line.
    const [, pid] = await srv.waitFor(/accept 127\.0\.0\.2:\d+ -> \S+ IPv4 pid (\d+)/);
    await srv.waitFor(new RegExp(`stderr pid ${pid} id 1 text ucspi-peer\\\\x20pid\\\\x20${pid}\\\\x20says\\\\x20"hi"\n`));
    await srv.waitFor(new RegExp(`end pid ${pid} exitcode 0`));
  });

  it('gives UCSPI variables for IPv6 (::1)', { skip: hasIPv6() ? false : 'no IPv6 loopback here' }, async () => {
    const srv = await serve(['--host', '::1', '--exec', '--', process.execPath, PEER]);
    const r = await ask(srv.port, { host: '::1' });
    assert.equal(r.env.TCPREMOTEIP, '::1');
    assert.equal(r.env.TCPLOCALIP, '::1');
    assert.equal(r.env.TCPLOCALPORT, String(srv.port));
    assert.equal(r.env.PROTO, 'TCP');
    assert.deepEqual({ address: r.peer.address, family: r.peer.family }, { address: '::1', family: 'IPv6' });
    assert.equal(r.env.TCPREMOTEPORT, String(r.peer.port));
    await srv.waitFor(/accept \[::1\]:\d+ -> \[::1\]:\d+ IPv6 pid \d+/);
  });

  it('sets TCPREMOTEHOST only with --resolve and only when the address has a name', async () => {
    const srv = await serve(['--resolve', '--exec', '--', process.execPath, PEER]);
    const named = await ask(srv.port);
    assert.equal(named.env.TCPREMOTEHOST, 'localhost'); // /etc/hosts
    assert.equal(named.env.TCPLOCALHOST, 'localhost');
    const unnamed = await ask(srv.port, { source: '127.0.0.2' });
    assert.equal(unnamed.env.TCPREMOTEIP, '127.0.0.2');
    assert.equal('TCPREMOTEHOST' in unnamed.env, false);
  });

  it('logs the exit status and the signal; the client sees EOF as soon as the program exits', async () => {
    const srv = await serve(['--exec', '--', '/bin/sh', '-c', 'echo hi; exit 3']);
    // The client does not close: EOF must come from the program's exit alone.
    const s = await connectTo(srv.port);
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    assert.equal(await waitClose(s), 'end');
    s.destroy();
    assert.equal(Buffer.concat(chunks).toString(), 'hi\n');
    const [, pid] = await srv.waitFor(/accept \S+ -> \S+ IPv4 pid (\d+)/);
    await srv.waitFor(new RegExp(`end pid ${pid} exitcode 3 `));

    const killer = await serve(['--exec', '--', '/bin/sh', '-c', 'kill -TERM $$']);
    assert.equal((await echoOnce(killer.port, '')).length, 0);
    const [, pid2] = await killer.waitFor(/accept \S+ -> \S+ IPv4 pid (\d+)/);
    await killer.waitFor(new RegExp(`end pid ${pid2} signal SIGTERM `));
  });

  it('counts TCPCONNNUM per source address', async () => {
    const srv = await serve(['--exec', '--', '/bin/sh', '-c', 'echo $TCPCONNNUM; exec cat']);
    const line = async (opts?: ConnectOptions) => {
      const s = await connectTo(srv.port, opts);
      const got = await new Promise<string>((resolve) => s.once('data', (c: Buffer) => resolve(c.toString())));
      return { s, got };
    };
    const a = await line();
    const b = await line();
    const c = await line({ source: '127.0.0.2' });
    assert.deepEqual([a.got, b.got, c.got], ['1\n', '2\n', '1\n']);
    for (const x of [a, b, c]) x.s.destroy();
  });

  it('refuses to start when the program does not exist (exit 100, naming it)', async () => {
    const r = await run(['serve', '--port', '0', '--exec', '--', '/nonexistent/program']);
    assert.equal(r.code, 100);
    assert.match(r.stderr, /exec: program "\/nonexistent\/program" not found or not executable/);
    const r2 = await run(['serve', '--port', '0', '--exec']);
    assert.equal(r2.code, 100);
    assert.match(r2.stderr, /--exec needs a program/);
    const r3 = await run(['serve', 'echo', '--port', '0', '--exec', '--', '/bin/cat']);
    assert.equal(r3.code, 100);
    assert.match(r3.stderr, /with --exec, give no SERVICE \(got echo\)/);
  });

  it('the exec service also runs in-process (for the iterative/event/thread models): runService spawns, closes its copy, waits', async () => {
    const service = await loadService({ name: 'exec' });
    const logs: string[] = [];
    let served = (): void => {};
    const done = new Promise<void>((resolve) => (served = resolve));
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => {
      const info = { id: 7, ...endpointsOf(socket)!, acceptedAt: Date.now() };
      const ctx = {
        socket,
        info,
        options: { argv: ['/bin/sh', '-c', 'echo $TCPREMOTEIP $RULEVAR; echo oops >&2; exit 2'] },
        env: { RULEVAR: 'from-rule' },
        log: (reason: string, code?: string) => logs.push(`${code} ${reason}`),
      };
      void runService(service, ctx, (err) => logs.push(`error ${err}`)).then(served);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const got = await echoOnce(portOf(server), '', { source: '127.0.0.2' });
      assert.equal(got.toString(), '127.0.0.2 from-rule\n');
      await done;
      assert.equal(logs.length, 2, logs.join('\n'));
      assert.match(logs[0] ?? '', /^stderr pid \d+: oops$/);
      assert.match(logs[1] ?? '', /^exit pid \d+ exitcode 2$/);
    } finally {
      server.close();
    }
  });
});
