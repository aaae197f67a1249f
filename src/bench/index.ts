/**
 * The load generator: `runBench(options)` runs one bounded load against a server and
 * resolves with a BenchReport. It never throws for the server's failures (refused,
 * reset, short replies are counted by code in the report); it throws at once for bad
 * options (InvalidOptionError naming the option).
 *
 *     const report = await runBench({ port, clients: 2, conns: 5000, bytes: 4000, serverPid });
 */
import { LoadRun } from './load.js';
import { resolveBenchOptions, type BenchOptions } from './options.js';
import { buildReport, type BenchReport } from './report.js';
import { ServerProbe } from './server-probe.js';
import { bulk } from './bulk.js';
import { echo } from './echo.js';
import { idle, type IdleResult } from './idle.js';
import { requests } from './requests.js';

export { BENCH_DEFAULTS, BENCH_LIMITS, BENCH_MODES, parseSize, resolveBenchOptions } from './options.js';
export type { BenchMode, BenchOptions, ResolvedBenchOptions } from './options.js';
export { formatReport, summarizeLatency } from './report.js';
export type { BenchReport, LatencySummary } from './report.js';
export type { IdleResult } from './idle.js';
export type { ServerCost } from './server-probe.js';
export { ProgressBar } from './progress.js';
export { cpuOf, memoryOf, processTree } from './procfs.js';

/** How far a run has come, for a progress bar. */
export interface BenchProgress {
  done: number;
  total: number;
  /** What `done` counts: connections, or bytes echoed in bulk mode. */
  unit: 'connections' | 'bytes';
  failed: number;
  elapsedSeconds: number;
}

/** Callbacks of a run. */
export interface BenchHooks {
  /** Called every `progressIntervalMs` while the run goes on. Default: none. */
  onProgress?: (progress: BenchProgress) => void;
  /** Interval of progress calls and server memory samples. Default 250 ms. */
  progressIntervalMs?: number;
  /** Ends the run early when aborted (idle mode: ends the hold); the report is still returned. Default: none. */
  signal?: AbortSignal;
}

function progressOf(run: LoadRun): BenchProgress {
  const o = run.options;
  const elapsedSeconds = run.elapsedMs() / 1000;
  switch (o.mode) {
    case 'bulk':
      return { done: run.bytesReceived, total: o.size * o.clients, unit: 'bytes', failed: run.failed, elapsedSeconds };
    case 'idle':
      return { done: run.openCount, total: o.idle, unit: 'connections', failed: run.failed, elapsedSeconds };
    default:
      return {
        done: run.completed + run.failed,
        total: o.clients * o.conns,
        unit: 'connections',
        failed: run.failed,
        elapsedSeconds,
      };
  }
}

/** Run one load against a server; see BenchOptions for what and how much. */
export async function runBench(options: BenchOptions, hooks: BenchHooks = {}): Promise<BenchReport> {
  const o = resolveBenchOptions(options);
  const probe = o.serverPid === undefined ? undefined : new ServerProbe(o.serverPid);
  const startedAt = new Date();
  const run = new LoadRun(o);
  const cap = setTimeout(() => run.stop(), o.duration * 1000);
  const ticker = setInterval(() => {
    probe?.sample();
    hooks.onProgress?.(progressOf(run));
  }, hooks.progressIntervalMs ?? 250);
  const onAbort = () => run.interrupt();
  if (hooks.signal?.aborted) run.interrupt();
  hooks.signal?.addEventListener('abort', onAbort);
  let idleResult: IdleResult | null = null;
  try {
    switch (o.mode) {
      case 'requests':
        await requests(run);
        break;
      case 'echo':
        await echo(run);
        break;
      case 'bulk':
        await bulk(run);
        break;
      case 'idle':
        idleResult = await idle(run, () => probe?.markHeld());
        break;
    }
  } finally {
    clearTimeout(cap);
    clearInterval(ticker);
    hooks.signal?.removeEventListener('abort', onAbort);
    run.finish();
    run.destroyAll();
  }
  hooks.onProgress?.(progressOf(run));
  const server = probe ? await probe.finish(run.completed) : null;
  return buildReport(run, startedAt, idleResult, server);
}
