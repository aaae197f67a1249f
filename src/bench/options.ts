/**
 * What a load-generator run is asked to do, with its defaults and the one
 * validator that checks every field at construction (InvalidOptionError naming it).
 *
 * Every run is bounded twice: in count (clients × connections, lines, bytes, idle
 * connections all have maxima) and in time (`duration`, after which the run stops
 * starting work, destroys what is open and reports itself as truncated).
 */
import net from 'node:net';
import { InvalidOptionError } from '../errors.js';
import { parsePort } from '../address.js';

/**
 * The kinds of load:
 * - `requests`: UNP ch. 30's client.c. Each connection sends `"K\n"` to the bench
 *   service, reads exactly K bytes, closes.
 * - `echo`: each connection sends `lines` lines of `bytes` bytes (newline included),
 *   one at a time, waits for each to come back unchanged, closes.
 * - `bulk`: each client sends `size` bytes through one connection while reading the
 *   echo, half-closes, and checks every byte came back in order.
 * - `idle`: open `idle` connections, hold them `hold` seconds without a byte, close.
 */
export type BenchMode = 'requests' | 'echo' | 'bulk' | 'idle';

/** The modes, in the order `--help` lists them. */
export const BENCH_MODES: readonly BenchMode[] = ['requests', 'echo', 'bulk', 'idle'];

/** Options of one run. Absent fields take the defaults in BENCH_DEFAULTS. */
export interface BenchOptions {
  /** Server address (name or literal). Default `127.0.0.1`. */
  host?: string;
  /** Server port, 1..65535. Required (ignored with `path`). */
  port: number;
  /** A UNIX-domain socket path to load instead of host:port (`sources` does not apply). Default none. */
  path?: string;
  /** Kind of load. Default `requests`. */
  mode?: BenchMode;
  /** Concurrent clients (requests/echo/bulk), or connects in flight at once (idle). Default 1 (idle: 100). */
  clients?: number;
  /** Connections each client makes one after another (requests/echo). Default 100. */
  conns?: number;
  /** requests: bytes asked for per connection; echo: bytes per line, newline included. Default 4000 (echo: 64). */
  bytes?: number;
  /** echo: request/response lines per connection. Default 1. */
  lines?: number;
  /** bulk: bytes each client sends through its one connection. Default 64 MiB. */
  size?: number;
  /** idle: connections to open and hold. Default 0 (idle mode requires it). */
  idle?: number;
  /** idle: seconds to hold the connections once all are open. Default 1. */
  hold?: number;
  /**
   * Local addresses to connect from, used in turn (`localAddress`), so that a run can pass the
   * ~28,000 ephemeral ports one source address has. Default: none (the kernel picks).
   */
  sources?: string[];
  /** Cap on the whole run, in seconds; when reached the run stops and reports `truncated`. Default 120. */
  duration?: number;
  /** A connection that makes no progress for this many seconds fails with ETIMEDOUT. Default 10. */
  timeout?: number;
  /** Pid of the server, to measure its CPU (with children) and memory before and after. Default: none. */
  serverPid?: number;
  /**
   * Speak TLS (the server's certificate is not checked: a load generator measures, it does not
   * trust): `full` makes a full handshake per connection, `resume` resumes the session the
   * previous connection of the run got (tickets). Default `off`.
   */
  tls?: 'off' | 'full' | 'resume';
}

/** The options with every default filled in. */
export type ResolvedBenchOptions = Required<Omit<BenchOptions, 'serverPid' | 'path'>> & { serverPid: number | undefined; path: string | undefined };

/** Defaults; `clients` and `bytes` depend on the mode (see BenchOptions). */
export const BENCH_DEFAULTS = {
  host: '127.0.0.1',
  mode: 'requests' as BenchMode,
  conns: 100,
  lines: 1,
  size: 64 * 1024 * 1024,
  idle: 0,
  hold: 1,
  duration: 120,
  timeout: 10,
  tls: 'off' as 'off' | 'full' | 'resume',
} as const;

/** Upper bounds: a run must stay bounded in count whatever it is asked. */
export const BENCH_LIMITS = {
  clients: 100_000,
  conns: 10_000_000,
  bytes: 1024 * 1024 * 1024,
  lines: 1_000_000,
  size: 64 * 1024 * 1024 * 1024,
  idle: 1_000_000,
  hold: 3600,
  duration: 24 * 3600,
  timeout: 3600,
} as const;

function integer(option: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(option, `must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function seconds(option: string, value: unknown, max: number, min = 0): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new InvalidOptionError(option, `must be a number of seconds from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Fill in defaults and check every field; throws InvalidOptionError naming the first bad one. */
export function resolveBenchOptions(options: BenchOptions): ResolvedBenchOptions {
  // Absent and undefined both mean "the default" (a CLI passes undefined for flags not given).
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as BenchOptions;
  const o = { ...BENCH_DEFAULTS, ...given };
  if (!(BENCH_MODES as readonly unknown[]).includes(o.mode)) {
    throw new InvalidOptionError('mode', `must be one of ${BENCH_MODES.join(', ')}, got ${JSON.stringify(o.mode)}`);
  }
  if (typeof o.host !== 'string' || o.host === '') throw new InvalidOptionError('host', 'must be a non-empty string');
  const port = parsePort(o.port, 'port');
  if (port === 0) throw new InvalidOptionError('port', 'must be an integer from 1 to 65535, got 0');
  const sources = o.sources ?? [];
  if (!Array.isArray(sources)) throw new InvalidOptionError('sources', 'must be a list of IP addresses');
  for (const s of sources) {
    if (typeof s !== 'string' || net.isIP(s) === 0) {
      throw new InvalidOptionError('sources', `must be IP address literals, got ${JSON.stringify(s)}`);
    }
  }
  if (o.path !== undefined && (typeof o.path !== 'string' || o.path === '' || o.path.startsWith('@'))) {
    throw new InvalidOptionError('path', `must be a socket file's path (an abstract @name cannot be reached from Node 20), got ${JSON.stringify(o.path)}`);
  }
  if (o.path !== undefined && sources.length > 0) throw new InvalidOptionError('sources', 'do not apply to a UNIX socket');
  const resolved: ResolvedBenchOptions = {
    path: o.path,
    host: o.host,
    port,
    mode: o.mode,
    clients: integer('clients', o.clients ?? (o.mode === 'idle' ? 100 : 1), 1, BENCH_LIMITS.clients),
    conns: integer('conns', o.conns, 1, BENCH_LIMITS.conns),
    bytes: integer('bytes', o.bytes ?? (o.mode === 'echo' ? 64 : 4000), o.mode === 'echo' ? 1 : 0, BENCH_LIMITS.bytes),
    lines: integer('lines', o.lines, 1, BENCH_LIMITS.lines),
    size: integer('size', o.size, 1, BENCH_LIMITS.size),
    idle: integer('idle', o.idle, o.mode === 'idle' ? 1 : 0, BENCH_LIMITS.idle),
    hold: seconds('hold', o.hold, BENCH_LIMITS.hold),
    sources,
    duration: seconds('duration', o.duration, BENCH_LIMITS.duration, 0.001),
    timeout: seconds('timeout', o.timeout, BENCH_LIMITS.timeout, 0.001),
    serverPid: o.serverPid === undefined ? undefined : integer('serverPid', o.serverPid, 1, 2 ** 31 - 1),
    tls: o.tls,
  };
  if (!['off', 'full', 'resume'].includes(resolved.tls)) throw new InvalidOptionError('tls', `must be off, full or resume, got ${JSON.stringify(o.tls)}`);
  return resolved;
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
};

/**
 * Parse a byte count: `4000`, `64KiB`, `1GiB`, `1.5MB`, `2G` (K/M/G alone are binary).
 * Throws InvalidOptionError naming `option`.
 */
export function parseSize(text: string, option = 'size'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new InvalidOptionError(option, `expected a byte count such as 4000, 64KiB or 1GiB, got ${JSON.stringify(text)}`);
  }
  const n = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n)) throw new InvalidOptionError(option, `too large: ${JSON.stringify(text)}`);
  return n;
}
