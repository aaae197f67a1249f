/**
 * Bulk echo: each client pushes `size` bytes through one connection, as fast as the
 * server takes them (writes wait for 'drain'), reading the echo at the same time, then
 * half-closes and waits for the server's EOF. Every byte is checked in order against
 * what was sent, and the totals must match exactly.
 */
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type net from 'node:net';
import { EchoMismatchError, PrematureCloseError } from '../errors.js';
import type { LoadRun } from './load.js';

/**
 * The stream is one pattern repeated. Its length is prime, so a lost, repeated or
 * reordered stretch of any length but a multiple of it shifts the pattern and is caught.
 */
const PATTERN_LENGTH = 65_521;

/** Compare `chunk`, found at stream offset `offset`, with the pattern there. */
function matches(pattern: Buffer, chunk: Buffer, offset: number): boolean {
  let done = 0;
  while (done < chunk.length) {
    const at = (offset + done) % pattern.length;
    const n = Math.min(chunk.length - done, pattern.length - at);
    if (chunk.compare(pattern, at, at + n, done, done + n) !== 0) return false;
    done += n;
  }
  return true;
}

function transfer(run: LoadRun, socket: net.Socket, pattern: Buffer): Promise<void> {
  const { size } = run.options;
  return new Promise((resolve, reject) => {
    let received = 0;
    let sent = 0;
    let settled = false;
    const settle = (err?: unknown) => {
      if (settled) return;
      settled = true;
      if (err === undefined) resolve();
      else reject(err);
    };
    socket.on('data', (chunk: Buffer) => {
      run.bytesReceived += chunk.length;
      if (received + chunk.length > size || !matches(pattern, chunk, received)) {
        settle(new EchoMismatchError(run.address, received));
        socket.destroy();
        return;
      }
      received += chunk.length;
    });
    socket.on('end', () => {
      if (received === size) settle();
      else settle(new PrematureCloseError(`EOF after ${received} of ${size} bytes echoed`));
    });
    socket.on('error', settle);
    socket.on('close', () => settle(new PrematureCloseError(`closed after ${received} of ${size} bytes echoed`)));
    const pump = () => {
      while (sent < size && run.running) {
        const n = Math.min(pattern.length, size - sent);
        const ok = socket.write(n === pattern.length ? pattern : pattern.subarray(0, n));
        sent += n;
        run.bytesSent += n;
        if (!ok) {
          socket.once('drain', pump);
          return;
        }
      }
      if (sent === size) socket.end();
    };
    pump();
  });
}

/** Run the mode to the end (or to the run's cap); failures are counted, never thrown. */
export async function bulk(run: LoadRun): Promise<void> {
  const pattern = randomFillSync(Buffer.alloc(PATTERN_LENGTH));
  const client = async (): Promise<void> => {
    const t0 = performance.now();
    try {
      const socket = await run.connect();
      try {
        await transfer(run, socket, pattern);
      } finally {
        socket.destroy();
      }
      run.exchanges++;
      run.completed++;
      run.latencies.push(performance.now() - t0);
    } catch (err) {
      run.fail(err);
    }
  };
  await Promise.all(Array.from({ length: run.options.clients }, client));
}
