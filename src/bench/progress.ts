/**
 * A one-line progress bar for a terminal: redrawn in place with `\r`, at most a few
 * times a second, cleared when the run ends so the report starts on a clean line.
 */
import type { Writable } from 'node:stream';
import type { BenchProgress } from './index.js';

/** Draws BenchProgress on a TTY stream (stderr). */
export class ProgressBar {
  private readonly out: Writable & { columns?: number };
  private drawn = false;

  constructor(out: Writable & { columns?: number }) {
    this.out = out;
  }

  /** Redraw with the latest progress. */
  update(p: BenchProgress): void {
    const width = Math.max(10, Math.min(40, (this.out.columns ?? 80) - 50));
    const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
    const filled = Math.round(frac * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const failed = p.failed > 0 ? ` ${p.failed} failed` : '';
    this.out.write(`\r[${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${p.done}/${p.total} ${p.unit} ${p.elapsedSeconds.toFixed(1)}s${failed}\x1b[K`);
    this.drawn = true;
  }

  /** Erase the bar. Idempotent. */
  clear(): void {
    if (this.drawn) this.out.write('\r\x1b[K');
    this.drawn = false;
  }
}
