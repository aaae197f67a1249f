/**
 * The server's log writer: one event per line to a descriptor (stderr), written so
 * that a failing log target never stops serving. A pipe that is full for a moment
 * (EAGAIN: its reader is slow) holds lines back in a bounded queue (MAX_PENDING_BYTES),
 * written in order as the reader catches up, so a burst loses nothing; beyond that
 * bound, and for a write that fails (EPIPE: the reader went away; ENOSPC:
 * `2>/dev/full`), the line is dropped and counted; the first line that gets through
 * again is preceded by one that says how many were lost, within the log grammar:
 *
 *     error where log code EPIPE suppressed 12 message "12 log lines dropped: write EPIPE"
 *
 * Lines are written with write(2) directly (fs.writeSync), not through
 * process.stderr: a stream that saw an error is destroyed for good (no recovery
 * line could follow), and its 'error' event would end the process.
 */
import fs from 'node:fs';
import { formatEvent, formatEventJson, type ServerEvent } from './events.js';

/** Bytes of log lines held back while the descriptor says EAGAIN; past this, lines are dropped. 1 MiB. */
export const MAX_PENDING_BYTES = 1 << 20;
/** How often held-back lines are tried again (only while there are some). 10 ms. */
const RETRY_MS = 10;
/** At exit, how long the writer keeps trying to write what it holds back. 1 s. */
const EXIT_FLUSH_MS = 1000;

/** Log lines dropped by every LogWriter of this process since it started (`tcpkit_log_dropped_total`). */
let droppedTotal = 0;

/** Log lines this process could not write, since it started. */
export function logDropped(): number {
  return droppedTotal;
}

/** Events a quiet log (`-q`) leaves out: one line per connection. */
const PER_CONNECTION = new Set<ServerEvent['type']>(['accept', 'end', 'spawn', 'exit']);

/**
 * Whether `-q` leaves the event out: per-connection lines, and a peer that reset
 * while sending its PROXY header (`refuse ... reason proxy-truncated`): a flood of
 * resets is one line per connection and says nothing an operator acts on.
 */
function perConnection(e: ServerEvent): boolean {
  return PER_CONNECTION.has(e.type) || (e.type === 'refuse' && e.reason === 'proxy-truncated');
}

/** Options of a LogWriter; defaults on each field. */
export interface LogWriterOptions {
  /** Line format. Default `text` (docs/log-grammar.md). */
  format?: 'text' | 'json';
  /** Leave out per-connection events. Default false. */
  quiet?: boolean;
  /** Start each text line with its time (ISO 8601, UTC), as JSON lines have it. Default false (--log-timestamps). */
  timestamps?: boolean;
  /** Descriptor to write to. Default 2 (stderr). */
  fd?: number;
  /** write(2) as fs.writeSync has it. Default fs.writeSync; tests give a failing one. */
  writeSync?: (fd: number, buffer: Buffer, offset: number) => number;
}

/** Writes events as log lines; never throws, whatever the descriptor does. */
export class LogWriter {
  readonly #format: 'text' | 'json';
  readonly #quiet: boolean;
  readonly #timestamps: boolean;
  readonly #fd: number;
  readonly #write: (fd: number, buffer: Buffer, offset: number) => number;
  /** Lines dropped since the last line that got through. */
  #dropped = 0;
  #lastCode = '';
  /** Held back while the descriptor says EAGAIN, oldest first; the first may be partly written already. */
  readonly #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** How much of #pending[0] is written. */
  #pendingOffset = 0;
  #retry: NodeJS.Timeout | undefined;
  #exitHook: (() => void) | undefined;

  constructor(options: LogWriterOptions = {}) {
    this.#format = options.format ?? 'text';
    this.#quiet = options.quiet ?? false;
    this.#timestamps = options.timestamps ?? false;
    this.#fd = options.fd ?? 2;
    this.#write = options.writeSync ?? ((fd, buffer, offset) => fs.writeSync(fd, buffer, offset));
  }

  /** Log one event (unless quiet leaves it out). */
  event(event: ServerEvent): void {
    if (this.#quiet && perConnection(event)) return;
    if (this.#format === 'json') this.line(formatEventJson(event));
    else this.line(this.#timestamps ? `${new Date().toISOString()} ${formatEvent(event)}` : formatEvent(event));
  }

  /** Lines (bytes) held back now, waiting for the descriptor. */
  get pending(): number {
    return this.#pendingBytes;
  }

  /** Write one line (a newline is added): now, after the lines held back, or dropped and counted. */
  line(text: string): void {
    this.#flush();
    if (this.#dropped > 0 && this.#pending.length === 0) {
      const n = this.#dropped;
      const report: ServerEvent = { type: 'error', where: 'log', code: this.#lastCode, suppressed: n, message: `${n} log lines dropped: write ${this.#lastCode}` };
      if (!this.#offer(Buffer.from(`${this.#format === 'json' ? formatEventJson(report) : formatEvent(report)}\n`))) return this.#drop();
      this.#dropped = 0;
    }
    if (!this.#offer(Buffer.from(`${text}\n`))) this.#drop();
  }

  #drop(): void {
    this.#dropped++;
    droppedTotal++;
  }

  /** Write `buf` now, or hold it back behind the others; false when it had to be dropped. */
  #offer(buf: Buffer): boolean {
    if (this.#pending.length > 0) return this.#hold(buf, 0);
    let off = 0;
    try {
      while (off < buf.length) off += this.#write(this.#fd, buf, off);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      this.#lastCode = code;
      // A full pipe: keep the line (and what is left of one cut in the middle) for when it drains.
      if (code === 'EAGAIN' && this.#hold(buf, off)) return true;
      // A line cut in the middle: end it, so the next one starts on its own.
      if (off > 0) {
        try {
          this.#write(this.#fd, Buffer.from('\n'), 0);
        } catch {
          // Still failing: the next line that gets through starts after the torn one.
        }
      }
      return false;
    }
  }

  /** Queue `buf` (from `offset`) within MAX_PENDING_BYTES; false when there is no room. */
  #hold(buf: Buffer, offset: number): boolean {
    if (offset === 0 && this.#pendingBytes + buf.length > MAX_PENDING_BYTES) return false;
    if (this.#pending.length === 0) this.#pendingOffset = offset;
    this.#pending.push(buf);
    this.#pendingBytes += buf.length;
    this.#retry ??= setTimeout(() => {
      this.#retry = undefined;
      this.#flush();
    }, RETRY_MS).unref();
    if (!this.#exitHook) {
      // What is held back at exit is tried for a moment more: the last lines (`closed ...`) matter most.
      this.#exitHook = () => this.#flush(Date.now() + EXIT_FLUSH_MS);
      process.once('exit', this.#exitHook);
    }
    return true;
  }

  /** Write what is held back, in order, until the descriptor refuses (or, with `until`, keep trying till then). */
  #flush(until = 0): void {
    while (this.#pending.length > 0) {
      const buf = this.#pending[0]!;
      try {
        this.#pendingOffset += this.#write(this.#fd, buf, this.#pendingOffset);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
        this.#lastCode = code;
        if (code === 'EAGAIN' && Date.now() < until) continue;
        if (code === 'EAGAIN') break;
        // The descriptor failed for good (EPIPE, ENOSPC): everything held back is lost, and counted.
        for (let i = 0; i < this.#pending.length; i++) this.#drop();
        this.#pending.length = 0;
        this.#pendingBytes = 0;
        this.#pendingOffset = 0;
        break;
      }
      if (this.#pendingOffset >= buf.length) {
        this.#pending.shift();
        this.#pendingBytes -= buf.length;
        this.#pendingOffset = 0;
      }
    }
    if (this.#pending.length > 0) {
      this.#retry ??= setTimeout(() => {
        this.#retry = undefined;
        this.#flush();
      }, RETRY_MS).unref();
    } else {
      clearTimeout(this.#retry);
      this.#retry = undefined;
      if (this.#exitHook) process.removeListener('exit', this.#exitHook);
      this.#exitHook = undefined;
    }
  }
}

/**
 * Keep a failing stderr from ending the process: Node (and its warnings) also
 * write through process.stderr, whose 'error' event would otherwise be uncaught.
 * Changes process-wide state (an 'error' listener on process.stderr); the CLI calls it once.
 */
export function containStderrErrors(): void {
  process.stderr.on('error', () => {
    droppedTotal++;
  });
}
