/**
 * How a pool worker reports to the server without a message per connection:
 *
 *   ReportBatch  accept/end/deny entries, in the order they happened, sent as one
 *                `batch` message when `maxEntries` are waiting or `maxDelayMs` after
 *                the first of them, whichever comes first (flush() sends at once: at
 *                drain, before any other message, so that order holds across messages).
 *   IdBlocks     connection ids: the server hands each worker blocks of ids from the
 *                one per-process sequence (connection/pipeline.ts reserveConnectionIds),
 *                so a worker numbers its connections itself and every `id` stays unique
 *                in the server's log. It asks for the next block when half of what it
 *                holds is used; with none left it stops accepting until one arrives.
 *
 * The figures (50 ms, 64 entries, blocks of 1,024) keep the server's counts within a
 * tenth of a second of the truth and cost one message per 64 connections under load.
 */
import type { BatchEntry } from './messages.js';

/** Defaults of ReportBatch. */
export const BATCH_MAX_ENTRIES = 64;
export const BATCH_MAX_DELAY_MS = 50;
/** Ids per block handed to a worker. */
export const ID_BLOCK = 1024;

/** Entries waiting to go to the server as one `batch` message. */
export class ReportBatch {
  readonly #send: (entries: BatchEntry[]) => void;
  readonly #maxEntries: number;
  readonly #maxDelayMs: number;
  #entries: BatchEntry[] = [];
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  /** `maxEntries` (default 64; 1 sends each entry at once) and `maxDelayMs` (default 50). */
  constructor(send: (entries: BatchEntry[]) => void, { maxEntries = BATCH_MAX_ENTRIES, maxDelayMs = BATCH_MAX_DELAY_MS } = {}) {
    this.#send = send;
    this.#maxEntries = maxEntries;
    this.#maxDelayMs = maxDelayMs;
  }

  /** Entries not yet sent. */
  get size(): number {
    return this.#entries.length;
  }

  add(entry: BatchEntry): void {
    if (this.#closed) return;
    this.#entries.push(entry);
    if (this.#entries.length >= this.#maxEntries) this.flush();
    // The timer keeps the worker alive only while something waits to be sent.
    else this.#timer ??= setTimeout(() => this.flush(), this.#maxDelayMs);
  }

  /** Send what waits now (nothing when empty). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#entries.length === 0) return;
    const entries = this.#entries;
    this.#entries = [];
    this.#send(entries);
  }

  /** Flush, then take no more entries (the worker is leaving). Idempotent. */
  close(): void {
    this.flush();
    this.#closed = true;
  }
}

/** The ids a worker holds: blocks from the server, used in order. */
export class IdBlocks {
  readonly #blocks: Array<{ next: number; end: number }> = [];
  readonly #ask: () => void;
  #asked = false;
  #size: number;

  /** `first`: the block the worker starts with; `ask`: request another (answered by add()). */
  constructor(first: { from: number; count: number }, ask: () => void) {
    this.#size = first.count;
    this.#ask = ask;
    this.add(first.from, first.count);
  }

  /** Ids left. */
  get available(): number {
    return this.#blocks.reduce((n, b) => n + (b.end - b.next), 0);
  }

  /** A block from the server. */
  add(from: number, count: number): void {
    this.#asked = false;
    this.#size = Math.max(this.#size, count);
    if (count > 0) this.#blocks.push({ next: from, end: from + count });
  }

  /** The next id, or undefined when none is left (a request is on its way). */
  take(): number | undefined {
    const b = this.#blocks[0];
    if (!b) return undefined;
    const id = b.next++;
    if (b.next === b.end) this.#blocks.shift();
    if (!this.#asked && this.available < this.#size / 2) {
      this.#asked = true;
      this.#ask();
    }
    return id;
  }
}
