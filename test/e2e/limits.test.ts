// Limits: concurrent connections (pause), per source address, new connections per
// second per source (xinetd's cps), idle timeout and time limit; each one reached,
// logged with its reason and counted.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createServer } from '../../dist/index.js';
import net from 'node:net';
import { endpointsOf } from '../../dist/address.js';
import { loadService } from '../../dist/services/index.js';
import { runService } from '../../dist/connection/run.js';
import { stopAll } from '../exec-helpers.js';
import { connectTo, echoOnce, eventually, exchange, sleep, startServer, waitClose, portOf, type StartedServer } from '../helpers.js';

const servers: StartedServer[] = [];
after(async () => {
  await stopAll(servers);
});
async function serve(args: string[]): Promise<StartedServer> {
  const s = await startServer(args);
  servers.push(s);
  return s;
}

/** Connect and see whether the server keeps the connection (echoes) or closes it at once. */
async function tryEcho(port: number, source?: string): Promise<'served' | 'closed'> {
  const s = await connectTo(port, { source });
  try {
    const got = await exchange(s, 'ping');
    return got.toString() === 'ping' ? 'served' : 'closed';
  } catch {
    return 'closed';
  }
}

describe('limits in the server', () => {
  it('maxConns: at the limit new connections wait in the backlog (pause logged), none refused', async () => {
    const srv = await serve(['-c', '1', '--exec', '--', '/bin/cat']);
    const first = await connectTo(srv.port);
    await srv.waitFor(/pause count 1\/1/);
    const second = echoOnce(srv.port, 'waited');
    await sleep(300);
    first.destroy();
    assert.equal((await second).toString(), 'waited');
    await srv.waitFor(/resume count 0\/1/);
  });

  it('per-source: a second connection from the same address is refused at once; other addresses are served', async () => {
    const srv = await serve(['--per-source', '1', '--exec', '--', '/bin/cat']);
    const held = await connectTo(srv.port);
    await srv.waitFor(/accept 127\.0\.0\.1:\d+ /);
    assert.equal(await tryEcho(srv.port), 'closed');
    await srv.waitFor(/refuse 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ IPv4 reason per-source/);
    assert.equal(await tryEcho(srv.port, '127.0.0.2'), 'served');
    held.destroy();
    await srv.waitFor(/end pid \d+ exitcode 0 count 0\/40/);
    assert.equal(await tryEcho(srv.port), 'served');
  });

  it('rate: a burst from one address beyond N per second is refused; another address is not', async () => {
    const srv = await serve(['--rate', '2', '--exec', '--', '/bin/cat']);
    const results = await Promise.all(Array.from({ length: 8 }, () => tryEcho(srv.port)));
    const served = results.filter((r) => r === 'served').length;
    assert.ok(served >= 2 && served <= 5, `served ${served} of 8 with --rate 2`);
    await srv.waitFor(/refuse 127\.0\.0\.1:\d+ -> \S+ IPv4 reason rate/);
    assert.equal(await tryEcho(srv.port, '127.0.0.2'), 'served');
  });

  it('idle timeout: a silent connection is closed; a talking one is not', async () => {
    const srv = await serve(['--idle-timeout', '1.5', '--exec', '--', '/bin/cat']);
    const talker = await connectTo(srv.port);
    talker.on('data', () => {});
    let closedEarly = false;
    talker.once('end', () => (closedEarly = true));
    const timer = setInterval(() => talker.write('.'), 250);
    const silent = await connectTo(srv.port);
    const t0 = Date.now();
    assert.equal(await waitClose(silent, 15_000), 'end');
    silent.destroy();
    const waited = Date.now() - t0;
    assert.ok(waited >= 1000, `closed after ${waited} ms, before the idle timeout`);
    await srv.waitFor(/kill pid \d+ signal SIGTERM reason idle/);
    await srv.waitFor(/end pid \d+ signal SIGTERM /);
    await sleep(1000);
    clearInterval(timer);
    assert.equal(closedEarly, false, 'a connection with traffic was closed as idle');
    talker.destroy();
  });

  it('time limit: a connection is closed after N seconds even with traffic', async () => {
    const srv = await serve(['--time-limit', '1', '--exec', '--', '/bin/cat']);
    const s = await connectTo(srv.port);
    s.on('data', () => {});
    const timer = setInterval(() => s.writable && s.write('.'), 100);
    const t0 = Date.now();
    // cat dies with our bytes unread in its socket: the kernel may send a reset rather than a FIN.
    assert.ok(['end', 'ECONNRESET'].includes(await waitClose(s, 15_000)));
    clearInterval(timer);
    s.destroy();
    assert.ok(Date.now() - t0 >= 800, 'closed before the time limit');
    await srv.waitFor(/kill pid \d+ signal SIGTERM reason time-limit/);
  });

  it('counts refusals and closings in stats() (library)', async () => {
    const server = createServer({
      host: '127.0.0.1',
      port: 0,
      service: { name: 'exec', options: { argv: ['/bin/cat'] } },
      perSource: 1,
      idleTimeout: 0.5,
    });
    const { port } = await server.listen();
    try {
      const held = await connectTo(port);
      await eventually(() => server.stats().active === 1, { message: 'first connection open' });
      assert.equal(await tryEcho(port), 'closed');
      await waitClose(held, 15_000);
      held.destroy();
      await eventually(() => server.stats().limits.closed.idle === 1 && server.stats().active === 0, { message: 'idle counted' });
      const st = server.stats();
      assert.deepEqual(st.limits.refused, { 'per-source': 1, rate: 0 });
      assert.equal(st.limits.sources, 0);
    } finally {
      await server.close({ grace: 5 });
    }
  });

  it('runService enforces idle and time limits for in-process models, reporting them with ctx.log', async () => {
    const echo = await loadService({ name: 'echo' });
    const logs: (string | undefined)[] = [];
    // The first connection gets an idle limit and stays silent; the second a time limit and keeps talking.
    const plan = [{ idleMs: 300, maxMs: 0 }, { idleMs: 0, maxMs: 800 }];
    let accepted = (): void => {};
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => {
      const limits = plan.shift();
      const ctx = { socket, info: { id: 1, ...endpointsOf(socket)!, acceptedAt: Date.now() }, options: {}, log: (reason: string, code?: string) => logs.push(code) };
      void runService(echo, ctx, (err) => logs.push(`error ${err}`), limits);
      accepted();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = portOf(server);
      let seen = new Promise<void>((resolve) => (accepted = resolve));
      const silent = await connectTo(port);
      await seen;
      seen = new Promise<void>((resolve) => (accepted = resolve));
      const talker = await connectTo(port);
      await seen;
      talker.on('data', () => {});
      const talk = setInterval(() => talker.writable && talker.write('.'), 50);
      assert.equal(await waitClose(silent), 'end');
      assert.deepEqual(logs, ['idle']);
      // Bytes in flight when the server destroys the socket may turn its FIN into a reset.
      assert.ok(['end', 'ECONNRESET'].includes(await waitClose(talker)));
      clearInterval(talk);
      silent.destroy();
      talker.destroy();
      assert.deepEqual(logs, ['idle', 'time-limit']);
    } finally {
      server.close();
    }
  });
});
