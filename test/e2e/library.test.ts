// The library API: createServer / connect / echoSession / Listener, and the log grammar.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PassThrough, Readable } from 'node:stream';
import net from 'node:net';
import { connect, createServer, echoSession, formatEvent, InvalidOptionError, Listener, parseHostPort, sanitize, services, eventChannel, type Endpoint, type ServerEvent } from '../../dist/index.js';
import { connectTo, exchange, random, sha256, sleep, tcpTable, socketInodes } from '../helpers.js';

describe('library', () => {
  it('createServer + connect + echoSession: a round trip through the fork model', async () => {
    const server = createServer({ host: '127.0.0.1', port: 0 });
    const events: ServerEvent[] = [];
    server.on('event', (e: ServerEvent) => events.push(e));
    const seen: string[] = [];
    const onPublish = (e: unknown): void => {
      if (typeof e === 'object' && e !== null && 'type' in e) seen.push(String(e.type));
    };
    eventChannel.subscribe(onPublish);
    try {
      const local = await server.listen();
      assert.equal(local.address, '127.0.0.1');
      assert.ok(local.port > 0);
      assert.equal(server.state, 'running');
      const socket = await connect({ port: local.port });
      const data = random(300_000);
      const out = new PassThrough();
      const chunks: Buffer[] = [];
      out.on('data', (c) => chunks.push(c));
      const result = await echoSession(socket, Readable.from([data]), out);
      assert.equal(result.bytesSent, data.length);
      assert.equal(result.bytesReceived, data.length);
      assert.equal(sha256(Buffer.concat(chunks)), sha256(data));
      assert.equal(result.remote?.port, local.port);
      // The client has the server's FIN; the child's exit (and its `end` event) follows.
      while (!events.some((e) => e.type === 'end')) await sleep(20);
      const stats = server.stats();
      assert.equal(stats.accepted, 1);
      assert.equal(stats.active, 0);
      assert.equal(stats.model, 'fork');
    } finally {
      await server.close();
      eventChannel.unsubscribe(onPublish);
    }
    assert.equal(server.state, 'closed');
    const types = events.map((e) => e.type);
    assert.deepEqual(types, ['listen', 'accept', 'end', 'shutdown', 'closed']);
    assert.deepEqual(seen, types, 'the same events on the tcpkit:event diagnostics channel');
    // close() is idempotent.
    await server.close();
  });

  it('options are validated at construction, naming the option', () => {
    assert.throws(() => createServer({ port: -1 }), { code: 'TCPKIT_INVALID_OPTION', message: 'port: must be an integer from 0 to 65535, got -1' });
    assert.throws(() => createServer({ maxConns: 0 }), InvalidOptionError);
    // @ts-expect-error: a model name that does not exist, on purpose
    assert.throws(() => createServer({ model: 'nope' }), /^InvalidOptionError: model: unknown model "nope"/);
    assert.throws(() => createServer({ service: 'nope' }), /service: unknown service "nope"/);
    assert.throws(() => createServer({ grace: -2 }), /grace: must be a number of seconds >= 0/);
    assert.throws(() => connect({ port: 0 }), /port: must be an integer from 1 to 65535/);
  });

  it('listen on a port in use rejects with the address and the system code', async () => {
    const a = createServer({ host: '127.0.0.1', port: 0 });
    const { port } = await a.listen();
    const b = createServer({ host: '127.0.0.1', port });
    try {
      await assert.rejects(b.listen(), { code: 'EADDRINUSE', message: `listen EADDRINUSE 127.0.0.1:${port}`, syscall: 'listen' });
      assert.equal(b.state, 'closed');
    } finally {
      await a.close();
    }
  });

  it('Listener.pause keeps the socket listening: connections wait in the backlog, none refused', async () => {
    const listener = await Listener.open({ host: '127.0.0.1', port: 0 });
    const accepted: net.Socket[] = [];
    listener.onConnection((s) => {
      accepted.push(s);
      s.resume();
    });
    try {
      listener.pause();
      assert.equal(listener.state, 'paused');
      const c = await connectTo(listener.endpoint.port); // the kernel completes the handshake
      await sleep(200);
      assert.equal(accepted.length, 0);
      // The socket is still one LISTEN socket, held only by tcpkit's kept descriptor.
      const table = tcpTable();
      const listening = socketInodes(process.pid).filter((i) => table.get(i)?.state === '0A');
      assert.equal(listening.length, 1);
      listener.resume();
      await new Promise<void>((r) => setTimeout(r, 200));
      assert.equal(accepted.length, 1);
      c.destroy();
    } finally {
      listener.close();
      for (const s of accepted) s.destroy();
    }
    assert.equal(listener.state, 'closed');
    await assert.rejects(connectTo(listener.endpoint.port), { code: 'ECONNREFUSED' });
  });

  it('adopts an inherited listening descriptor (--fd)', async () => {
    const outer = await Listener.open({ host: '127.0.0.1', port: 0 });
    const fd = outer.dup();
    const server = createServer({ fd });
    try {
      const local = await server.listen();
      assert.equal(local.port, outer.endpoint.port);
      outer.pause(); // only the server's copy accepts
      const got = await exchange(await connectTo(local.port), 'inherited');
      assert.equal(got.toString(), 'inherited');
    } finally {
      await server.close();
      outer.close();
    }
  });

  it('services registry lists echo and loads it', async () => {
    assert.ok(services.serviceNames().includes('echo'));
    assert.equal(typeof (await services.loadService({ name: 'echo' })), 'function');
  });

  it('log lines follow the grammar and peer text is sanitized', () => {
    const local: Endpoint = { address: '127.0.0.1', port: 9877, family: 'IPv4' };
    const remote: Endpoint = { address: '127.0.0.1', port: 51234, family: 'IPv4' };
    assert.equal(
      formatEvent({ type: 'accept', id: 3, local, remote, pid: 4242, count: 3, max: 40 }),
      'accept 127.0.0.1:51234 -> 127.0.0.1:9877 IPv4 pid 4242 count 3/40 id 3',
    );
    assert.equal(
      formatEvent({ type: 'end', id: 3, pid: 4242, exitcode: 0, signal: null, count: 2, max: 40, ms: 15 }),
      'end pid 4242 exitcode 0 count 2/40 id 3 ms 15',
    );
    assert.equal(
      formatEvent({ type: 'end', id: 4, pid: 4243, exitcode: null, signal: 'SIGKILL', count: 1, max: 40, ms: 9 }),
      'end pid 4243 signal SIGKILL count 1/40 id 4 ms 9',
    );
    assert.equal(sanitize('evil\nend pid 1 exitcode 0'), 'evil\\x0aend\\x20pid\\x201\\x20exitcode\\x200');
    assert.equal(
      formatEvent({ type: 'deny', local, remote, reason: 'rule\nforged line' }),
      'deny 127.0.0.1:51234 -> 127.0.0.1:9877 IPv4 reason rule\\x0aforged\\x20line',
    );
    assert.ok(sanitize('x'.repeat(10_000)).length < 300, 'bounded length');
  });

  it('parseHostPort reads host:port, [v6]:port and bare ports', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:80', 'h'), { host: '127.0.0.1', port: 80 });
    assert.deepEqual(parseHostPort('[::1]:0', 'h'), { host: '::1', port: 0 });
    assert.deepEqual(parseHostPort('9000', '127.0.0.1'), { host: '127.0.0.1', port: 9000 });
    assert.throws(() => parseHostPort('::1:80', 'h', 'admin'), /^InvalidOptionError: admin: expected HOST:PORT/);
  });

  it('a connect to a silent address times out with the address and limit in the message', async () => {
    // A paused listener with backlog 1 and a full accept queue: the kernel drops further SYNs, so connect hangs.
    const l = await Listener.open({ host: '127.0.0.1', port: 0, backlog: 1 });
    l.pause();
    const held = [];
    try {
      for (let i = 0; i < 4; i++) held.push(net.connect({ port: l.endpoint.port, host: '127.0.0.1' }).on('error', () => {}));
      await sleep(300);
      const err = await connect({ port: l.endpoint.port, timeout: 300 }).catch((e) => e);
      assert.equal(err.code, 'ETIMEDOUT', 'SYNs to a full queue are dropped on Linux');
      assert.equal(err.message, `connect ETIMEDOUT 127.0.0.1:${l.endpoint.port} (no answer within 300 ms)`);
    } finally {
      for (const h of held) h.destroy();
      l.close();
    }
  });
});
