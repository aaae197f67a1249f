/**
 * Per-source limits, decided where a connection is accepted (before any child is
 * spawned): concurrent connections from one address (s6-tcpserver's -C,
 * xinetd's per_source) and new connections per second from one address (xinetd's
 * cps, applied per source). Plus the per-connection time limits a model enforces
 * where it serves the connection (see ConnectionLimits).
 *
 * Addresses are counted in their canonical form: an IPv4 peer seen through a
 * dual-stack listener (`::ffff:1.2.3.4`) is the same source as `1.2.3.4`.
 */
import { checkNumber } from '../options.js';
import { SourceTable, type SegmentRef, type SharedMemory } from './source-table.js';

/** Why a connection was refused, as logged (`refuse ... reason per-source`). */
export type RefuseReason = 'per-source' | 'rate';

/**
 * Limits on one connection while it is served; 0 means none. The fork model
 * enforces them from the parent (a timer for the time limit; for idle, the
 * child's read/write activity in /proc/PID/io); in-process models pass them to
 * runService, which uses the socket's own timeout.
 */
export interface ConnectionLimits {
  /** Close a connection with no traffic for this many ms. Default 0 (never). */
  idleMs: number;
  /** Close a connection this many ms after it was accepted. Default 0 (never). */
  maxMs: number;
}

/** Per-source admission options. */
export interface SourceLimitOptions {
  /** Concurrent connections from one address. Default 0 (unlimited). */
  perSource?: number;
  /** New connections per second from one address (token bucket, burst = rate). Default 0 (unlimited). */
  rate?: number;
}

/** A plain snapshot of what the limits refused. */
export interface LimitStats {
  /** Refused connections by reason. */
  refused: Record<RefuseReason, number>;
  /** Connections closed for being idle or over their time limit. */
  closed: { idle: number; 'time-limit': number };
  /** Sources with at least one connection open now. */
  sources: number;
}

/**
 * Per-source counters and token buckets for one service, in a SourceTable
 * (./source-table.ts): in this process's memory for models that serve here, moved
 * into shared memory when a pool's workers admit on their own (share()), so that the
 * server and every worker count the same places. A worker attaches to it
 * (SourceLimits.attached) with the same limits.
 */
export class SourceLimits {
  readonly perSource: number;
  readonly rate: number;
  readonly #table: SourceTable;
  readonly #closed = { idle: 0, 'time-limit': 0 };

  constructor(options: SourceLimitOptions = {}, table?: SourceTable) {
    this.perSource = checkNumber('perSource', options.perSource);
    this.rate = checkNumber('rate', options.rate);
    this.#table = table ?? SourceTable.create();
  }

  /** A worker's view of the server's limits: the same table, mapped from `ref`. */
  static attached(options: SourceLimitOptions, ref: SegmentRef, memory: Pick<SharedMemory, 'map'>): SourceLimits {
    return new SourceLimits(options, SourceTable.attach(ref, memory));
  }

  /** The table in shared `memory`, for workers to attach (see SourceTable.share). */
  share(memory: SharedMemory): SegmentRef {
    return this.#table.share(memory);
  }

  /** No worker will attach again: close the table's descriptor (see SourceTable.close). */
  unshare(): void {
    this.#table.close();
  }

  /** Open connections from `address` now. */
  count(address: string): number {
    return this.#table.count(address);
  }

  /**
   * Take a place for a new connection from `address`, or say why not. A place
   * taken must be given back with release(place); a refusal takes nothing.
   */
  take(address: string, now = Date.now()): { ok: true; count: number; place: number } | { ok: false; reason: RefuseReason } {
    return this.#table.take(address, this.perSource, this.rate, now);
  }

  /** Give back a place from take(), in whichever process took it. */
  release(place: number): void {
    this.#table.release(place);
  }

  /** Count a connection closed by a limit while it was served. */
  closedBy(reason: 'idle' | 'time-limit'): void {
    this.#closed[reason]++;
  }

  stats(): LimitStats {
    const { refused, sources } = this.#table.stats();
    return { refused, closed: { ...this.#closed }, sources };
  }
}
