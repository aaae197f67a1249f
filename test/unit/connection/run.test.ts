// connection/run.ts: serveSocket, the callback form of runService.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { acceptedPair } from '../../helpers.js';
import { runService, serveSocket } from '../../../src/connection/run.js';
import type { Service, ServiceContext } from '../../../src/services/types.js';


const ctxOf = (socket: net.Socket): ServiceContext => ({ socket, info: {} as ServiceContext['info'], options: {}, log: () => {} });

/** Everything the client reads until the server's FIN or a reset. */
const readAll = (client: net.Socket) =>
  new Promise<string>((resolve) => {
    let text = '';
    client.on('data', (c: Buffer) => (text += c.toString()));
    client.once('end', () => resolve(text));
    client.once('error', () => resolve(`${text}<reset>`));
  });

/** serveSocket with a promise for `done` and a count of its calls. */
function serve(service: Service, socket: net.Socket) {
  const errors: unknown[] = [];
  let calls = 0;
  const done = new Promise<void>((resolve) =>
    serveSocket(service, ctxOf(socket), (e) => errors.push(e), undefined, () => {
      calls++;
      resolve();
    }),
  );
  return { done, errors, calls: () => calls };
}

test('serveSocket: a service that returns at once leaves the socket open; done once after it closes', async () => {
  const { accepted, client } = await acceptedPair();
  const got: Buffer[] = [];
  client.on('data', (c: Buffer) => got.push(c));
  let ended = false;
  client.once('end', () => (ended = true));
  const r = serve(({ socket }) => void socket.write('hi'), accepted);
  await new Promise((res) => setTimeout(res, 200));
  assert.equal(Buffer.concat(got).toString(), 'hi');
  assert.equal(ended, false, 'no FIN when the service returns');
  assert.equal(accepted.destroyed, false);
  assert.equal(r.calls(), 0);
  accepted.end();
  client.end();
  accepted.resume();
  await r.done;
  assert.equal(r.calls(), 1);
  assert.deepEqual(r.errors, []);
});

test('serveSocket: the net.createServer listener idiom on a socket accepted paused: echoes, half-close answered', async () => {
  const { accepted, client } = await acceptedPair();
  const text = readAll(client);
  const r = serve(({ socket }) => {
    socket.on('data', (d: Buffer) => socket.write(d));
    socket.on('end', () => socket.end());
  }, accepted);
  client.end('listener idiom');
  assert.equal(await text, 'listener idiom');
  await r.done;
  assert.deepEqual(r.errors, []);
});

test('serveSocket: a promise resolving on end flows, on a socket accepted paused', async () => {
  const { accepted, client } = await acceptedPair();
  const text = readAll(client);
  const r = serve(({ socket }) => new Promise<void>((resolve) => {
    socket.on('data', (d: Buffer) => socket.write(d));
    socket.on('end', () => {
      socket.end();
      resolve();
    });
  }), accepted);
  client.end('resolved');
  assert.equal(await text, 'resolved');
  await r.done;
  assert.deepEqual(r.errors, []);
});

test('serveSocket: for await ends at the peer FIN without an abort, and the last writes go out', async () => {
  const { accepted, client } = await acceptedPair();
  const text = readAll(client);
  const r = serve(async ({ socket }) => {
    let n = 0;
    for await (const d of socket) {
      n += (d as Buffer).length;
      socket.write(d);
    }
    socket.end(`|${n}`);
  }, accepted);
  client.end('iterated');
  assert.equal(await text, 'iterated|8');
  await r.done;
  assert.deepEqual(r.errors, [], 'no ABORT_ERR');
});

test('serveSocket: leaving a for await early destroys the socket, with no error', async () => {
  const { accepted, client } = await acceptedPair();
  const text = readAll(client);
  const r = serve(async ({ socket }) => {
    for await (const d of socket) {
      socket.write(d);
      break;
    }
  }, accepted);
  client.write('once');
  assert.match(await text, /^once/);
  await r.done;
  assert.equal(accepted.destroyed, true);
  assert.deepEqual(r.errors, []);
  client.destroy();
});

test('serveSocket: an error event and the rejection carrying it are one error', async () => {
  const { accepted, client } = await acceptedPair();
  client.on('error', () => {});
  const r = serve(({ socket }) => new Promise<void>((_resolve, reject) => {
    socket.on('error', reject);
    socket.destroy(new Error('both ways'));
  }), accepted);
  await r.done;
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(r.errors.length, 1);
  assert.match((r.errors[0] as Error).message, /both ways/);
  client.destroy();
});

test('serveSocket: an error emitted without a destroy is one error, and the socket is destroyed', async () => {
  const { accepted, client } = await acceptedPair();
  client.on('error', () => {});
  const r = serve(({ socket }) => void socket.emit('error', new Error('emitted')), accepted);
  await r.done;
  assert.equal(accepted.destroyed, true);
  assert.equal(r.errors.length, 1);
  client.destroy();
});

test('serveSocket: a peer reset is not a service error, even when the service rejects with it', async () => {
  const { accepted, client } = await acceptedPair();
  const r = serve(async ({ socket }) => {
    for await (const d of socket) socket.write(d);
  }, accepted);
  client.write('x');
  await new Promise((res) => client.once('data', res));
  client.resetAndDestroy();
  await r.done;
  await new Promise((res) => setTimeout(res, 50));
  assert.deepEqual(r.errors, []);
});

test('serveSocket: a handler listening for timeout decides, the idle limit does not destroy under it', async () => {
  const { accepted, client } = await acceptedPair();
  const text = readAll(client);
  const errors: unknown[] = [];
  const logged: string[] = [];
  const ctx = { ...ctxOf(accepted), log: (_reason: string, code?: string) => void logged.push(code ?? '') };
  const done = new Promise<void>((resolve) =>
    serveSocket(({ socket }) => {
      socket.on('data', () => {});
      socket.on('timeout', () => socket.end('bye'));
    }, ctx, (e) => errors.push(e), { idleMs: 100, maxMs: 0 }, resolve),
  );
  assert.equal(await text, 'bye');
  client.end();
  await done;
  assert.deepEqual(logged, [], 'not closed as idle by the server');
  assert.deepEqual(errors, []);
});

test('serveSocket: a throw and a rejection are contained: reported, socket destroyed, done once', async () => {
  for (const service of [
    (() => {
      throw new Error('sync boom');
    }) as Service,
    (async () => {
      throw new Error('async boom');
    }) as Service,
  ]) {
    const { accepted, client } = await acceptedPair();
    client.on('error', () => {});
    const r = serve(service, accepted);
    await r.done;
    assert.equal(accepted.destroyed, true);
    assert.equal(r.errors.length, 1);
    assert.match((r.errors[0] as Error).message, /boom/);
    assert.equal(r.calls(), 1);
    client.destroy();
  }
});

test('serveSocket: a promise still pending does not hold the connection once the socket closed', async () => {
  const { accepted, client } = await acceptedPair();
  const r = serve(() => new Promise<void>(() => {}), accepted);
  accepted.destroy();
  client.destroy();
  await r.done;
  assert.equal(r.calls(), 1);
});

test('serveSocket: a service with holdsConnection holds it until its promise settles', async () => {
  const { accepted, client } = await acceptedPair();
  let finish!: () => void;
  const service: Service = Object.assign(() => new Promise<void>((resolve) => (finish = resolve)), { holdsConnection: true });
  const r = serve(service, accepted);
  accepted.destroy();
  client.destroy();
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(r.calls(), 0, 'service still running');
  finish();
  await r.done;
  assert.equal(r.calls(), 1);
});

test('runService: the promise form resolves when the socket is closed', async () => {
  const { accepted, client } = await acceptedPair();
  const text = readAll(client);
  const ran = runService(({ socket }) => void socket.end('ok'), ctxOf(accepted), () => {});
  assert.equal(await text, 'ok');
  client.end();
  accepted.resume();
  await ran;
  assert.equal(accepted.destroyed, true);
});

test('serveSocket: a rejection after the socket has closed is not reported, the connection is over', async () => {
  const { accepted, client } = await acceptedPair();
  let fail!: (err: Error) => void;
  const r = serve(() => new Promise<void>((_resolve, reject) => (fail = reject)), accepted);
  accepted.destroy();
  client.destroy();
  await r.done;
  fail(new Error('too late'));
  await new Promise((res) => setTimeout(res, 20));
  assert.deepEqual(r.errors, []);
});

test('serveSocket: once the socket has closed, its listeners are let go (every close listener still ran), and a late error is harmless', async () => {
  const { accepted, client } = await acceptedPair();
  let serviceSawClose = false;
  const r = serve(({ socket }) => {
    socket.on('data', (c: Buffer) => socket.write(c));
    socket.on('end', () => socket.end());
    socket.on('close', () => (serviceSawClose = true));
  }, accepted);
  client.resume();
  client.end('x');
  await r.done;
  await new Promise((res) => setImmediate(res));
  assert.equal(serviceSawClose, true, "the service's own 'close' listener ran");
  // What the listeners held (the service's closures, the connection's records) is no longer reachable from the socket.
  for (const event of ['data', 'end', 'close', 'drain', 'timeout']) assert.equal(accepted.listenerCount(event), 0, event);
  assert.equal(accepted.listenerCount('error'), 1, "one shared guard: an 'error' after 'close' is no uncaught exception");
  accepted.emit('error', new Error('late'));
  assert.deepEqual(r.errors, [], 'not reported: the connection has ended');
});
