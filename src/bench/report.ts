/**
 * The report of one run: a plain object (what `--json` prints) and its text form.
 */
import type { IdleResult } from './idle.js';
import type { LoadRun } from './load.js';
import type { BenchMode } from './options.js';
import type { ServerCost } from './server-probe.js';

/** Latency of the connections that completed, in milliseconds. */
export interface LatencySummary {
  samples: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

/** What one run measured. Every field is present; ones that do not apply are null. */
export interface BenchReport {
  mode: BenchMode;
  /** `host:port` of the server. */
  target: string;
  /** The options the run used, defaults filled in. */
  options: {
    clients: number;
    conns: number;
    bytes: number;
    lines: number;
    size: number;
    idle: number;
    hold: number;
    sources: string[];
    duration: number;
    timeout: number;
  };
  /** ISO time the run started. */
  startedAt: string;
  elapsedSeconds: number;
  /** True when the duration cap stopped the run before its work was done. */
  truncated: boolean;
  /** True when a signal (SIGINT/SIGTERM) or the caller's AbortSignal ended the run early. */
  interrupted: boolean;
  connections: {
    attempted: number;
    completed: number;
    failed: number;
    /** Cut by the duration cap (not the server's fault, not counted as failed). */
    aborted: number;
    /** Completed connections per second of the run. */
    perSecond: number;
  };
  /** Request/response exchanges completed: echo lines, requests, bulk transfers, idle connections held. */
  exchanges: number;
  bytes: { sent: number; received: number };
  /** Bytes received per second (for bulk echo: the echo rate; the same bytes also went out). */
  throughput: { bytesPerSecond: number; mibPerSecond: number };
  /** Per connection: connect() to its last byte (idle: connect() to established). */
  latencyMs: LatencySummary | null;
  /** Failed connections by error code (`ECONNREFUSED`, `ETIMEDOUT`, `TCPKIT_PREMATURE_CLOSE`, ...). */
  errors: Record<string, number>;
  /** The first failure's message, for the reader; null without failures. */
  firstError: string | null;
  idle: IdleResult | null;
  server: ServerCost | null;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

const round = (n: number, digits = 3) => Number(n.toFixed(digits));

/** Summarize latencies (milliseconds); null when there are none. */
export function summarizeLatency(values: readonly number[]): LatencySummary | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    samples: sorted.length,
    p50: round(percentile(sorted, 50)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted[sorted.length - 1]!),
    mean: round(sum / sorted.length),
  };
}

/** Build the report of a finished run. */
export function buildReport(run: LoadRun, startedAt: Date, idle: IdleResult | null, server: ServerCost | null): BenchReport {
  const o = run.options;
  const seconds = run.elapsedMs() / 1000;
  return {
    mode: o.mode,
    target: run.address,
    options: {
      clients: o.clients,
      conns: o.conns,
      bytes: o.bytes,
      lines: o.lines,
      size: o.size,
      idle: o.idle,
      hold: o.hold,
      sources: o.sources,
      duration: o.duration,
      timeout: o.timeout,
    },
    startedAt: startedAt.toISOString(),
    elapsedSeconds: round(seconds),
    // A run ended by a signal is interrupted, not truncated by --duration.
    truncated: run.state === 'stopped' && !run.interrupted,
    interrupted: run.interrupted,
    connections: {
      attempted: run.attempted,
      completed: run.completed,
      failed: run.failed,
      aborted: run.aborted,
      perSecond: round(seconds > 0 ? run.completed / seconds : 0, 1),
    },
    exchanges: run.exchanges,
    bytes: { sent: run.bytesSent, received: run.bytesReceived },
    throughput: {
      bytesPerSecond: Math.round(seconds > 0 ? run.bytesReceived / seconds : 0),
      mibPerSecond: round(seconds > 0 ? run.bytesReceived / seconds / 2 ** 20 : 0, 1),
    },
    latencyMs: summarizeLatency(run.latencies),
    errors: Object.fromEntries([...run.errors].sort((a, b) => b[1] - a[1])),
    firstError: run.firstError ?? null,
    idle,
    server,
  };
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

function describe(r: BenchReport): string {
  const o = r.options;
  switch (r.mode) {
    case 'requests':
      return `${o.clients} clients x ${o.conns} connections x ${o.bytes} bytes`;
    case 'echo':
      return `${o.clients} clients x ${o.conns} connections x ${o.lines} lines of ${o.bytes} bytes`;
    case 'bulk':
      return `${o.clients} x ${mib(o.size)} through one connection each`;
    case 'idle':
      return `${o.idle} idle connections from ${o.sources.length || 1} source address(es), held ${o.hold} s`;
  }
}

/** The report as a few aligned lines for a terminal. */
export function formatReport(r: BenchReport): string {
  const lines = [`tcpkit bench ${r.mode} ${r.target}: ${describe(r)}${r.truncated ? ' (truncated by --duration)' : r.interrupted ? ' (interrupted)' : ''}`];
  const c = r.connections;
  lines.push(
    `connections  ${c.completed} completed, ${c.failed} failed${c.aborted ? `, ${c.aborted} aborted` : ''} in ${r.elapsedSeconds.toFixed(2)} s: ${c.perSecond} /s`,
  );
  if (r.latencyMs) {
    const l = r.latencyMs;
    lines.push(`latency      p50 ${l.p50} ms  p99 ${l.p99} ms  max ${l.max} ms`);
  }
  lines.push(`throughput   ${mib(r.bytes.received)} received, ${mib(r.bytes.sent)} sent: ${r.throughput.mibPerSecond} MiB/s`);
  if (r.idle) {
    const sources = Object.entries(r.idle.bySource)
      .map(([a, n]) => `${a} ${n}`)
      .join(', ');
    lines.push(`idle         ${r.idle.held} held of ${r.idle.requested} (peak ${r.idle.peakHeld}; ${sources || 'none opened'})`);
  }
  const errors = Object.entries(r.errors);
  lines.push(`errors       ${errors.length === 0 ? 'none' : errors.map(([code, n]) => `${code} ${n}`).join(', ')}`);
  if (r.firstError) lines.push(`first error  ${r.firstError}`);
  if (r.server) {
    const s = r.server;
    const per = s.cpu.perConnectionMs === null ? '' : ` = ${s.cpu.perConnectionMs} ms/connection`;
    lines.push(
      `server       pid ${s.pid}: cpu ${s.cpu.totalSeconds} s (user ${s.cpu.userSeconds}, sys ${s.cpu.systemSeconds})${per}`,
    );
    const m = s.memory;
    if (m.held) lines.push(`held         rss ${mib(m.held.rssBytes)} (pss ${mib(m.held.pssBytes)}) with the connections open, ${mib(m.before.rssBytes)} before`);
    lines.push(
      `memory       rss ${mib(m.after.rssBytes)} after, peak ${mib(m.peak.rssBytes)} (pss ${mib(m.peak.pssBytes)}) in ${m.peak.processes} process(es)`,
    );
  }
  return lines.join('\n');
}
