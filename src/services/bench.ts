/**
 * bench: the server of UNP ch. 30's experiment. The client sends a byte count in
 * decimal ending in "\n"; the server answers with exactly that many bytes; again
 * until the client's FIN, then our FIN.
 *
 * A count that is not a positive integer, exceeds `maxReply` (service option;
 * default 16 MiB, `--max-reply`), or a line longer than any valid count (a peer
 * sending digits forever) closes the connection with a log line. Replies are
 * written in chunks, each after the previous one drained, so a client that asks
 * and never reads holds at most one chunk in our memory.
 */
import { once } from 'node:events';
import type net from 'node:net';
import type { ServiceContext } from './types.js';

/** Default largest reply: 16 MiB. */
export const DEFAULT_MAX_REPLY = 16 * 1024 * 1024;

const CHUNK = Buffer.alloc(64 * 1024, 0x78);

/** Write `n` bytes, waiting for 'drain' between chunks; false if the socket went away. */
async function reply(socket: net.Socket, n: number): Promise<boolean> {
  let left = n;
  while (left > 0) {
    if (socket.destroyed || !socket.writable) return false;
    const size = Math.min(left, CHUNK.length);
    left -= size;
    if (!socket.write(size === CHUNK.length ? CHUNK : CHUNK.subarray(0, size))) {
      const [event] = await Promise.race([once(socket, 'drain').then(() => ['drain']), once(socket, 'close').then(() => ['close'])]);
      if (event === 'close') return false;
    }
  }
  return true;
}

/** The maxReply option, checked: a positive integer, default 16 MiB. */
function maxReplyOf(options: Readonly<Record<string, unknown>>): number {
  const v = options.maxReply ?? DEFAULT_MAX_REPLY;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new TypeError(`bench: maxReply must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

/** The bench service; service option `maxReply` (default 16 MiB). */
export default function bench({ socket, options, log }: ServiceContext): Promise<void> {
  const maxReply = maxReplyOf(options);
  // A valid line is the digits of maxReply, an optional "\r", and "\n".
  const maxLine = String(maxReply).length + 2;
  return new Promise((resolve, reject) => {
    let line = '';
    let busy = false;
    let ended = false;
    const queue: Buffer[] = [];
    socket.once('close', () => resolve());
    socket.on('data', (chunk: Buffer) => {
      queue.push(chunk);
      pump().catch(reject);
    });
    socket.once('end', () => {
      ended = true;
      pump().catch(reject);
    });
    /** Refuse the connection: a log line, then close. */
    const refuse = (reason: string) => {
      log(reason, 'TCPKIT_PROTOCOL');
      socket.destroy();
    };
    /** Answer every complete line received so far, one at a time; read no more meanwhile. */
    async function pump(): Promise<void> {
      if (busy || socket.destroyed) return;
      busy = true;
      socket.pause();
      while (queue.length > 0) {
        const chunk = queue.shift()!;
        let start = 0;
        for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, start)) {
          line += chunk.toString('latin1', start, i);
          start = i + 1;
          const text = line.endsWith('\r') ? line.slice(0, -1) : line;
          line = '';
          const n = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
          if (!(n >= 1 && n <= maxReply)) {
            return refuse(`bad count ${JSON.stringify(text.slice(0, 32))}: must be an integer from 1 to ${maxReply}`);
          }
          if (!(await reply(socket, n))) return;
        }
        line += chunk.toString('latin1', start);
        if (line.length > maxLine) return refuse(`count line longer than ${maxLine} bytes`);
      }
      busy = false;
      // At the peer's FIN with every request answered, the service is done: runService sends our FIN.
      if (ended) resolve();
      else socket.resume();
    }
    // Accepted sockets arrive paused (the model decides who reads): start reading.
    socket.resume();
  });
}
