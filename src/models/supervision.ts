/**
 * Supervision shared by the models that start processes or threads ahead of need:
 * the pool (prefork workers, threads) and the fork model's spares. Two things, each
 * stated once: how long start() waits for them to be ready, and how a member that
 * dies unasked is restarted (after a delay that doubles while it keeps dying).
 */
import { StateError } from '../errors.js';

/** First restart delay after a member died; doubles on each quick death, up to RESTART_MAX_MS. */
export const RESTART_MIN_MS = 100;
export const RESTART_MAX_MS = 10_000;
/** A member that lived this long resets its slot's backoff. */
export const HEALTHY_MS = 10_000;
/** How long start() waits for the members to report ready. */
export const READY_TIMEOUT_MS = 30_000;

/**
 * Restarts with backoff, per slot (a pool's worker slot; slot 0 for fork's spares).
 * Every timer it sets is cleared by close().
 */
export class RestartBackoff {
  readonly #failures = new Map<number, number>();
  readonly #timers = new Map<number, NodeJS.Timeout>();
  #closed = false;

  /** Deaths counted against `slot` since it last got ready. */
  failures(slot: number): number {
    return this.#failures.get(slot) ?? 0;
  }

  /** Whether a restart of `slot` is scheduled. */
  waiting(slot: number): boolean {
    return this.#timers.has(slot);
  }

  /**
   * A member of `slot` died (or could not start): run `start` after the slot's
   * delay. `livedMs`: how long it ran; HEALTHY_MS or more resets the backoff first.
   * One restart per slot at a time; nothing after close().
   */
  retry(slot: number, start: () => void, livedMs = 0): void {
    if (livedMs >= HEALTHY_MS) this.#failures.set(slot, 0);
    const n = this.failures(slot);
    this.#failures.set(slot, n + 1);
    if (this.#closed || this.#timers.has(slot)) return;
    const timer = setTimeout(() => {
      this.#timers.delete(slot);
      if (!this.#closed) start();
    }, Math.min(RESTART_MIN_MS * 2 ** n, RESTART_MAX_MS));
    this.#timers.set(slot, timer);
  }

  /** A member of `slot` is ready: its next death starts the backoff over. */
  ready(slot: number): void {
    this.#failures.set(slot, 0);
  }

  /** No more restarts (the model is closing). Idempotent. */
  close(): void {
    this.#closed = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
  }
}

/**
 * Resolve once `check()` says `true`, reject with its Error, or with a StateError
 * (`${what} not ready within 30 s`) after `timeoutMs`. `check` runs now and then each
 * time the caller calls the function `watch` gives it (on every member state change);
 * `watch` returns how to stop.
 */
export function readyWithin(
  what: string,
  check: () => boolean | Error,
  watch: (recheck: () => void) => () => void,
  timeoutMs = READY_TIMEOUT_MS,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let unwatch = () => {};
    const done = (err?: Error) => {
      clearTimeout(timer);
      unwatch();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => done(new StateError(`${what} not ready within ${timeoutMs / 1000} s`)), timeoutMs);
    const recheck = () => {
      const r = check();
      if (r instanceof Error) done(r);
      else if (r) done();
    };
    unwatch = watch(recheck);
    recheck();
  });
}
