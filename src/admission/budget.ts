/**
 * The connection budget of one service: its concurrent-connection limit and its
 * per-source limits, shared by every Server that serves it. Under `serve --config`
 * a service on three addresses runs three Servers; with one budget between them,
 * `maxConns: 1, perSource: 1` means one connection for the service, not one per
 * address.
 *
 * At the limit every member stops accepting (new connections wait in the kernel's
 * backlog, none is refused); below it, every member accepts again.
 */
import { checkNumber } from '../options.js';
import { SourceLimits } from './limits.js';

/** A Server taking part in a budget: told to stop and resume accepting. */
export interface BudgetMember {
  /** `hold`: only stop accepting, with no `pause` event (the limit is reached by connections still starting). */
  pause(hold?: boolean): void;
  resume(): void;
}

/** Limits a budget enforces; defaults and checks are the option table's. */
export interface BudgetOptions {
  /** Concurrent connections of the service. Default 40. */
  maxConns?: number;
  /** Concurrent connections from one source address, across the service. Default 0 (unlimited). */
  perSource?: number;
  /** New connections per second from one source address, across the service. Default 0 (unlimited). */
  rate?: number;
}

/** One service's shared counters; a Server without one given makes its own. */
export class ServiceBudget {
  readonly maxConns: number;
  readonly sources: SourceLimits;
  #active = 0;
  /** Admitted and not yet opened (a program still starting): counted against maxConns, so the limit is never exceeded. */
  #starting = 0;
  readonly #members = new Set<BudgetMember>();
  /**
   * Members may have been told to pause since they were last told to resume: only then does a
   * connection's end tell them all to resume (a loop over a Set allocates an iterator, once per
   * connection otherwise, for members that were never paused).
   */
  #paused = false;

  constructor(options: BudgetOptions = {}) {
    this.maxConns = checkNumber('maxConns', options.maxConns);
    this.sources = new SourceLimits({ perSource: options.perSource, rate: options.rate });
  }

  /** Connections open now, across every member. */
  get active(): number {
    return this.#active;
  }

  /** Add a member; it is paused at once if the service is at its limit. Pair with leave(). */
  join(member: BudgetMember): void {
    this.#members.add(member);
    if (this.#active + this.#starting >= this.maxConns) {
      this.#paused = true;
      member.pause();
    }
  }

  /** The last member to leave closes the per-source table's shared descriptor (its workers are stopping). */
  leave(member: BudgetMember): void {
    this.#members.delete(member);
    if (this.#members.size === 0) this.sources.unshare();
  }

  /**
   * Count a connection admitted that is not served yet (its program starts off the event
   * loop's thread): with those, at the limit every member pauses. Pair with opened(true)
   * or abandoned().
   */
  admitted(): void {
    this.#starting++;
    if (this.#active + this.#starting >= this.maxConns) this.#pauseAll(true);
  }

  /** An admitted connection ended without being served. */
  abandoned(): void {
    this.#starting = Math.max(0, this.#starting - 1);
    if (this.#active + this.#starting < this.maxConns) this.#resumeAll();
  }

  /** Count a connection opened (`wasAdmitted`: counted by admitted() until now); at the limit every member pauses. Returns the count now. */
  opened(wasAdmitted = false): number {
    if (wasAdmitted) this.#starting = Math.max(0, this.#starting - 1);
    this.#active++;
    // The `pause` event when the open connections reach the limit, as ever; a quiet hold while some still start.
    if (this.#active + this.#starting >= this.maxConns) this.#pauseAll(this.#active < this.maxConns);
    return this.#active;
  }

  /** Count a connection closed; below the limit every member resumes. Returns the count now. */
  closed(): number {
    this.#active = Math.max(0, this.#active - 1);
    if (this.#active + this.#starting < this.maxConns) this.#resumeAll();
    else if (this.#active < this.maxConns)
      for (const m of this.#members) {
        m.resume();
        m.pause(true);
      }
    return this.#active;
  }

  #pauseAll(hold: boolean): void {
    this.#paused = true;
    for (const m of this.#members) m.pause(hold);
  }

  /** Every member resumes, if any may have been paused (see #paused). */
  #resumeAll(): void {
    if (!this.#paused) return;
    this.#paused = false;
    for (const m of this.#members) m.resume();
  }
}
