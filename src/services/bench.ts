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
import { OPTIONS } from '../options.js';
import type { ServiceContext } from './types.js';

/** Default largest reply: 16 MiB, the option table's (`--max-reply`). */
export const DEFAULT_MAX_REPLY = OPTIONS.maxReply.default;

const CHUNK = Buffer.alloc(64 * 1024, 0x78);

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
  return new Promise((resolve) => {
    let line = '';
    /** Bytes of the reply being written that are not written yet. */
    let owed = 0;
    /** Waiting for 'drain' in the middle of a reply (reading is paused meanwhile). */
    let draining = false;
    let ended = false;
    /** Received and not yet answered: the rest of a chunk that arrived while a reply waited for 'drain'. */
    let held: Buffer | undefined;
    socket.once('close', () => resolve());
    /** Refuse the connection: a log line, then close. */
    const refuse = (reason: string) => {
      log(reason, 'TCPKIT_PROTOCOL');
      socket.destroy();
    };
    /** Write what is owed, a chunk at a time; false when the socket asked us to wait for 'drain'. */
    const write = (): boolean => {
      while (owed > 0) {
        if (socket.destroyed || !socket.writable) return false;
        const size = Math.min(owed, CHUNK.length);
        owed -= size;
        if (!socket.write(size === CHUNK.length ? CHUNK : CHUNK.subarray(0, size))) {
          draining = true;
          socket.pause();
          return false;
        }
      }
      return true;
    };
    /** Answer every complete line in `chunk`; stops (keeping the rest in `held`) while a reply waits for 'drain'. */
    const take = (chunk: Buffer): void => {
      let start = 0;
      for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, start)) {
        line += chunk.toString('latin1', start, i);
        start = i + 1;
        const text = line.endsWith('\r') ? line.slice(0, -1) : line;
        line = '';
        const n = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
        if (!(n >= 1 && n <= maxReply)) return refuse(`bad count ${JSON.stringify(text.slice(0, 32))}: must be an integer from 1 to ${maxReply}`);
        owed = n;
        if (!write()) {
          if (start < chunk.length) held = chunk.subarray(start);
          return;
        }
      }
      line += chunk.toString('latin1', start);
      if (line.length > maxLine) refuse(`count line longer than ${maxLine} bytes`);
    };
    /** At the peer's FIN with every request answered: our FIN (the socket then closes, ending the connection). */
    const finishIfDone = () => {
      if (ended && !draining && !held) socket.end();
    };
    // Reading stops while a reply waits for 'drain': a client that asks and never reads holds one chunk of ours.
    socket.on('data', take);
    socket.on('drain', () => {
      if (!draining) return;
      draining = false;
      if (!write()) return;
      const rest = held;
      held = undefined;
      if (rest) take(rest);
      if (draining || socket.destroyed) return;
      finishIfDone();
      if (!ended) socket.resume();
    });
    socket.once('end', () => {
      ended = true;
      finishIfDone();
    });
    // on('data') starts the flow; resume() also restarts it after a pause of our own.
    socket.resume();
  });
}
