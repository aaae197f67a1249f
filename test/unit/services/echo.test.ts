// services/echo.ts: the two-buffer onread echo (UserBufferEcho) on a real socket.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import echo, { UserBufferEcho } from '../../../src/services/echo.js';
import type { ServiceContext } from '../../../src/services/types.js';

const servers: net.Server[] = [];
after(() => servers.forEach((s) => s.close()));

/** A server whose every connection runs `serve`, and a connected client. */
async function connected(serve: (socket: net.Socket) => void): Promise<net.Socket> {
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, serve);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((resolve) => client.once('connect', resolve));
  return client;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Send `data` then FIN; read everything back, pausing now and then. */
async function roundTrip(client: net.Socket, data: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  const done = new Promise<Buffer>((resolve) => client.once('end', () => resolve(Buffer.concat(chunks))));
  client.on('data', (c: Buffer) => {
    chunks.push(c);
    if (++n % 16 === 0) {
      client.pause();
      setTimeout(() => client.resume(), 5);
    }
  });
  client.end(data);
  return done;
}

test('UserBufferEcho: 8 MiB byte-exact through small buffers with a reader that pauses (queued writes, both buffers, waits)', async () => {
  const client = await connected((socket) => {
    socket.on('end', () => socket.end());
    // 4 KiB buffers: many reads per write burst, so writes stay queued and both buffers and the wait are used.
    assert.equal(new UserBufferEcho(socket, 4096).start(), true);
    socket.resume();
  });
  const data = randomBytes(8 * 1024 * 1024);
  const back = await roundTrip(client, data);
  assert.equal(back.length, data.length);
  assert.equal(sha(back), sha(data));
});

test('echo service: small exchanges stay on data events, a bulk one switches; both byte-exact, FIN after the last byte', async () => {
  const ctx = (socket: net.Socket) => ({ socket, info: {} as ServiceContext['info'], options: {}, log: () => {} });
  const small = await connected((socket) => void echo(ctx(socket)));
  assert.equal((await roundTrip(small, Buffer.from('hello\n'))).toString(), 'hello\n');
  const bulk = await connected((socket) => void echo(ctx(socket)));
  const data = randomBytes(4 * 1024 * 1024);
  assert.equal(sha(await roundTrip(bulk, data)), sha(data));
});
