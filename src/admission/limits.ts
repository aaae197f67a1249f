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
import { unmapIPv4 } from './access.js';
import { checkNumber } from '../options.js';

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

interface Bucket {
  tokens: number;
  at: number;
}

/** Sweep the token buckets once the map holds this many sources (bounds memory against address floods). */
const SWEEP_AT = 4096;

/** Per-source counters and token buckets for one server. */
export class SourceLimits {
  readonly perSource: number;
  readonly rate: number;
  readonly #open = new Map<string, number>();
  readonly #buckets = new Map<string, Bucket>();
  readonly #refused: Record<RefuseReason, number> = { 'per-source': 0, rate: 0 };
  readonly #closed = { idle: 0, 'time-limit': 0 };

  constructor(options: SourceLimitOptions = {}) {
    this.perSource = checkNumber('perSource', options.perSource);
    this.rate = checkNumber('rate', options.rate);
  }

  /** Open connections from `address` now. */
  count(address: string): number {
    return this.#open.get(unmapIPv4(address)) ?? 0;
  }

  /**
   * Take a place for a new connection from `address`, or say why not. A place
   * taken must be given back with release(); a refusal takes nothing.
   */
  take(address: string, now = Date.now()): { ok: true; count: number } | { ok: false; reason: RefuseReason } {
    const source = unmapIPv4(address);
    const open = this.#open.get(source) ?? 0;
    if (this.perSource > 0 && open >= this.perSource) {
      this.#refused['per-source']++;
      return { ok: false, reason: 'per-source' };
    }
    if (this.rate > 0 && !this.#spend(source, now)) {
      this.#refused.rate++;
      return { ok: false, reason: 'rate' };
    }
    this.#open.set(source, open + 1);
    return { ok: true, count: open + 1 };
  }

  /** Give back the place of a connection from `address`. */
  release(address: string): void {
    const source = unmapIPv4(address);
    const open = this.#open.get(source) ?? 0;
    if (open <= 1) this.#open.delete(source);
    else this.#open.set(source, open - 1);
  }

  /** Count a connection closed by a limit while it was served. */
  closedBy(reason: 'idle' | 'time-limit'): void {
    this.#closed[reason]++;
  }

  /** A token bucket per source: `rate` tokens a second, at most `rate` saved up. */
  #spend(source: string, now: number): boolean {
    if (this.#buckets.size >= SWEEP_AT) this.#sweep(now);
    const b = this.#buckets.get(source) ?? { tokens: this.rate, at: now };
    b.tokens = Math.min(this.rate, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    this.#buckets.set(source, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Forget buckets that have refilled: they hold nothing a new bucket would not. */
  #sweep(now: number): void {
    for (const [source, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.rate >= this.rate) this.#buckets.delete(source);
    }
  }

  stats(): LimitStats {
    return { refused: { ...this.#refused }, closed: { ...this.#closed }, sources: this.#open.size };
  }
}
