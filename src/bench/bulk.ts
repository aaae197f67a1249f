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
const PATTERN_LENGTH = 262_139;

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

/** Size of the one buffer each connection reads into: large reads, no allocation per read. */
const READ_BUFFER = 1024 * 1024;

function transfer(run: LoadRun, pattern: Buffer): Promise<void> {
  const { size } = run.options;
  let received = 0;
  let sent = 0;
  let settled = false;
  let socket: net.Socket | undefined;
  let settle: (err?: unknown) => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    settle = (err?: unknown) => {
      if (settled) return;
      settled = true;
      if (err === undefined) resolve();
      else reject(err);
    };
  });
  // Verify each read in place, in the reused buffer: no copy and no garbage per read.
  const onread = {
    buffer: Buffer.allocUnsafe(READ_BUFFER),
    callback: (n: number, buf: Uint8Array): boolean => {
      const chunk = Buffer.from(buf.buffer, buf.byteOffset, n);
      run.bytesReceived += n;
      if (received + n > size || !matches(pattern, chunk, received)) {
        settle(new EchoMismatchError(run.address, received));
        socket?.destroy();
        return false;
      }
      received += n;
      return true;
    },
  };
  return run.connect(onread).then((s) => {
    socket = s;
    s.on('end', () => {
      if (received === size) settle();
      else settle(new PrematureCloseError(`EOF after ${received} of ${size} bytes echoed`));
    });
    s.on('error', settle);
    s.on('close', () => settle(new PrematureCloseError(`closed after ${received} of ${size} bytes echoed`)));
    const pump = () => {
      while (sent < size && run.running && !settled) {
        const n = Math.min(pattern.length, size - sent);
        const ok = s.write(n === pattern.length ? pattern : pattern.subarray(0, n));
        sent += n;
        run.bytesSent += n;
        if (!ok) {
          s.once('drain', pump);
          return;
        }
      }
      if (sent === size) s.end();
    };
    pump();
    return done.finally(() => s.destroy());
  });
}

/** Run the mode to the end (or to the run's cap); failures are counted, never thrown. */
export async function bulk(run: LoadRun): Promise<void> {
  const pattern = randomFillSync(Buffer.alloc(PATTERN_LENGTH));
  const client = async (): Promise<void> => {
    const t0 = performance.now();
    try {
      await transfer(run, pattern);
      run.exchanges++;
      run.completed++;
      run.latencies.push(performance.now() - t0);
    } catch (err) {
      run.fail(err);
    }
  };
  await Promise.all(Array.from({ length: run.options.clients }, client));
}
