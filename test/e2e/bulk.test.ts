// Bulk echo: one connection carrying tens of MiB, byte-exact, under every model that
// serves in a Node event loop. The echo service reads a bulk connection into two reused
// buffers (services/echo.ts, Node's onread mode); these tests hold it to what the plain
// stream path promised: every byte back in order, with a reader that stops and starts
// (backpressure all the way to the sender), and our FIN only after the last byte.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type net from 'node:net';
import { after, describe, it } from 'node:test';
import { connectTo, random, sleep, startServer, type StartedServer } from '../helpers.js';

const MiB = 1024 * 1024;
const servers: StartedServer[] = [];
const sockets: net.Socket[] = [];

after(async () => {
  for (const s of sockets) s.destroy();
  for (const s of servers) await s.stop('SIGTERM');
});

/** Write `blocks` in order, honouring write()'s backpressure, then FIN. Resolves with the sha256 of what was sent. */
async function send(socket: net.Socket, block: Buffer, count: number): Promise<string> {
  const hash = createHash('sha256');
  for (let i = 0; i < count; i++) {
    // Each block differs (its index in the first 4 bytes), so a repeated or dropped block changes the hash.
    const b = Buffer.from(block);
    b.writeUInt32BE(i, 0);
    hash.update(b);
    if (!socket.write(b)) {
      await new Promise<void>((resolve, reject) => {
        const drained = () => {
          socket.off('close', closed);
          resolve();
        };
        const closed = () => {
          socket.off('drain', drained);
          reject(new Error(`closed after ${i} of ${count} blocks sent`));
        };
        socket.once('drain', drained);
        socket.once('close', closed);
      });
    }
  }
  socket.end();
  return hash.digest('hex');
}

/**
 * Read until the server's FIN, pausing `pauseMs` after every `every` bytes (the server
 * must stop reading meanwhile, not buffer). Resolves with the byte count and sha256.
 */
function receive(socket: net.Socket, every: number, pauseMs: number): Promise<{ bytes: number; sha: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let nextPause = every;
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
      if (bytes >= nextPause) {
        nextPause += every;
        socket.pause();
        setTimeout(() => socket.resume(), pauseMs);
      }
    });
    socket.once('end', () => resolve({ bytes, sha: hash.digest('hex') }));
    socket.once('error', reject);
  });
}

const MODELS: Array<[string, string[]]> = [
  ['event', ['--model', 'event']],
  ['prefork', ['--model', 'prefork', '--workers', '2']],
  ['threads', ['--model', 'threads', '--workers', '2']],
  ['iterative', ['--model', 'iterative']],
];

describe('bulk echo: byte-exact through one connection', () => {
  for (const [label, args] of MODELS) {
    it(`${label}: 64 MiB echoed exactly to a reader that pauses, then our FIN`, { timeout: 120_000 }, async () => {
      const srv = await startServer(['echo', ...args, '-q']);
      servers.push(srv);
      const s = await connectTo(srv.port);
      sockets.push(s);
      const got = receive(s, 4 * MiB, 30);
      const sent = await send(s, random(MiB), 64);
      const { bytes, sha } = await got;
      assert.equal(bytes, 64 * MiB);
      assert.equal(sha, sent);
    });
  }

  it('event: the peer\'s FIN right after 16 MiB, read only afterwards: every byte comes back before our FIN', { timeout: 60_000 }, async () => {
    const srv = await startServer(['echo', '--model', 'event', '-q']);
    servers.push(srv);
    const s = await connectTo(srv.port);
    sockets.push(s);
    // Nothing read until everything is sent: the server's writes fill the kernel's buffers and it must stop
    // reading (the sender then waits on 'drain' too), not queue 16 MiB in memory.
    s.pause();
    const sending = send(s, random(256 * 1024), 64);
    await sleep(500);
    const got = receive(s, 2 * MiB, 10);
    s.resume();
    const sent = await sending;
    const { bytes, sha } = await got;
    assert.equal(bytes, 16 * MiB);
    assert.equal(sha, sent);
  });

  it('event: bulk and small connections at once, each byte-exact (buffers are per connection)', { timeout: 60_000 }, async () => {
    const srv = await startServer(['echo', '--model', 'event', '-q']);
    servers.push(srv);
    const runs = Array.from({ length: 4 }, async (_, i) => {
      const s = await connectTo(srv.port);
      sockets.push(s);
      const got = receive(s, MiB, i);
      const sent = await send(s, random(i % 2 === 0 ? MiB : 1000), i % 2 === 0 ? 16 : 50);
      const r = await got;
      assert.equal(r.sha, sent, `connection ${i}`);
    });
    await Promise.all(runs);
  });
});
