/**
 * FoldedLines: at most one line per REPORT_MS for a flood of the same kind of failure (refused
 * PROXY headers, failed TLS handshakes). The first of a second is reported as it is; the rest are
 * counted, and when that second is over one more line stands for them (the last one, with how many
 * it folds). The proxy gate and the TLS gate each word their line; the timing is this one place.
 */
import { REPORT_MS } from '../options.js';

export class FoldedLines<E> {
  readonly #report: (last: E, folded: number) => void;
  #lastReport = -Infinity;
  #folded = 0;
  #last: E | undefined;
  #timer: NodeJS.Timeout | undefined;

  /** `report(last, folded)`: write one line; `folded` is 0 for a line reported as it came. */
  constructor(report: (last: E, folded: number) => void) {
    this.#report = report;
  }

  /** One more occurrence: reported now, or counted into the line at the end of this second. */
  take(event: E): void {
    this.#last = event;
    const wait = this.#lastReport + REPORT_MS - Date.now();
    if (wait > 0) {
      this.#folded++;
      // The count of a burst is reported when its second is over, not at the next burst.
      this.#timer ??= setTimeout(() => this.#flush(), wait);
      this.#timer.unref();
      return;
    }
    this.#flush();
  }

  #flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const last = this.#last;
    if (last === undefined) return;
    const folded = this.#folded;
    this.#lastReport = Date.now();
    this.#folded = 0;
    this.#last = undefined;
    this.#report(last, folded);
  }

  /** Report what is still counted and stop the timer. Idempotent. */
  close(): void {
    if (this.#folded > 0) {
      this.#lastReport = -Infinity;
      this.#flush();
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
