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

test('serveSocket: a service that returns at once: its bytes, our FIN, then done once after close', async () => {
  const { accepted, client } = await acceptedPair();
  const text = readAll(client);
  const r = serve(({ socket }) => void socket.write('hi'), accepted);
  assert.equal(await text, 'hi');
  client.end();
  await r.done;
  assert.equal(accepted.destroyed, true);
  await new Promise((res) => setImmediate(res));
  assert.equal(r.calls(), 1);
  assert.deepEqual(r.errors, []);
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

test('serveSocket: done waits for the service too, when the socket closes first', async () => {
  const { accepted, client } = await acceptedPair();
  let finish!: () => void;
  const r = serve(() => new Promise<void>((resolve) => (finish = resolve)), accepted);
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
  const ran = runService(({ socket }) => void socket.write('ok'), ctxOf(accepted), () => {});
  assert.equal(await text, 'ok');
  client.end();
  await ran;
  assert.equal(accepted.destroyed, true);
});
