/**
 * The server's log writer: one event per line to a descriptor (stderr), written so
 * that a failing log target never stops serving. A write that fails (EPIPE: the
 * reader went away; ENOSPC: `2>/dev/full`; EAGAIN: a non-blocking pipe that is
 * full) drops the line and counts it; the first line that gets through again is
 * preceded by one that says how many were lost, within the log grammar:
 *
 *     error where log code EPIPE suppressed 12 message "12 log lines dropped: write EPIPE"
 *
 * Lines are written with write(2) directly (fs.writeSync), not through
 * process.stderr: a stream that saw an error is destroyed for good (no recovery
 * line could follow), and its 'error' event would end the process.
 */
import fs from 'node:fs';
import { formatEvent, formatEventJson, type ServerEvent } from './events.js';

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
  /** Descriptor to write to. Default 2 (stderr). */
  fd?: number;
  /** write(2) as fs.writeSync has it. Default fs.writeSync; tests give a failing one. */
  writeSync?: (fd: number, buffer: Buffer, offset: number) => number;
}

/** Writes events as log lines; never throws, whatever the descriptor does. */
export class LogWriter {
  readonly #format: 'text' | 'json';
  readonly #quiet: boolean;
  readonly #fd: number;
  readonly #write: (fd: number, buffer: Buffer, offset: number) => number;
  /** Lines dropped since the last line that got through. */
  #dropped = 0;
  #lastCode = '';

  constructor(options: LogWriterOptions = {}) {
    this.#format = options.format ?? 'text';
    this.#quiet = options.quiet ?? false;
    this.#fd = options.fd ?? 2;
    this.#write = options.writeSync ?? ((fd, buffer, offset) => fs.writeSync(fd, buffer, offset));
  }

  /** Log one event (unless quiet leaves it out). */
  event(event: ServerEvent): void {
    if (this.#quiet && perConnection(event)) return;
    this.line(this.#format === 'json' ? formatEventJson(event) : formatEvent(event));
  }

  /** Write one line (a newline is added); dropped and counted if the descriptor fails. */
  line(text: string): void {
    if (this.#dropped > 0) {
      const n = this.#dropped;
      const report: ServerEvent = { type: 'error', where: 'log', code: this.#lastCode, suppressed: n, message: `${n} log lines dropped: write ${this.#lastCode}` };
      if (!this.#put(this.#format === 'json' ? formatEventJson(report) : formatEvent(report))) return this.#drop();
      this.#dropped = 0;
    }
    if (!this.#put(text)) this.#drop();
  }

  #drop(): void {
    this.#dropped++;
    droppedTotal++;
  }

  /** write(2) the whole line; false if the descriptor refused it. */
  #put(text: string): boolean {
    const buf = Buffer.from(`${text}\n`);
    let off = 0;
    try {
      while (off < buf.length) off += this.#write(this.#fd, buf, off);
      return true;
    } catch (err) {
      this.#lastCode = (err as NodeJS.ErrnoException).code ?? 'EIO';
      // A line cut in the middle (a pipe that filled up): end it, so the next one starts on its own.
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
