/**
 * The serve options, each stated once: its default, its check and its documented
 * maximum. `Server` (resolveOptions), the `serve` flags and configuration files all
 * check through this table, so the three accept and refuse the same values with
 * the same message; only the name differs, spelled as the user wrote it:
 *
 *     grace: must be a number of seconds >= 0 and <= 2147483, got 1e+308
 *     --grace: must be a number of seconds >= 0 and <= 2147483, got "2592000"
 *     tcpkit.yaml: services.echo.grace: must be a number of seconds >= 0 and <= 2147483, got 1e+308
 *
 * Every duration has a maximum that a Node timer can hold: a longer delay would
 * fire after 1 ms (Node's overflow), turning a 30-day limit into an instant one.
 */
import os from 'node:os';
import { SERV_PORT } from './address.js';
import { InvalidOptionError } from './errors.js';
import { DEFAULT_V2_LIMIT, V2_MAX_LENGTH } from './net/proxy-protocol.js';

/** The longest delay a Node timer (setTimeout, socket.setTimeout) holds: 2^31-1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The longest duration option, in seconds: 2147483 (24.8 days), so that seconds × 1000 fits a timer. */
export const MAX_SECONDS = Math.floor(MAX_TIMER_MS / 1000);

/** The port when none is given: the seed's SERV_PORT (9877). */
export const DEFAULT_PORT = SERV_PORT;

/** listen(2) backlog when none is given: Node's own default. */
export const DEFAULT_BACKLOG = 511;

/**
 * Workers of the prefork and threads models: one per CPU this process may use
 * (os.availableParallelism()). More workers than cores cost CPU per connection
 * (issue 14: 4 on 2 cores, about twice a plain Node server's) and win nothing.
 */
export const DEFAULT_WORKERS = os.availableParallelism();

/** How long a child or worker gets after SIGTERM before SIGKILL (limits, end of grace); not an option. */
export const TERM_TO_KILL_MS = 2000;

/**
 * Rate-limited log lines (descriptor exhaustion, PROXY headers of peers gone before
 * their address could be read): at most one per this many ms, with a count of the
 * rest. Fixed at 1000; not an option.
 */
export const REPORT_MS = 1000;

/** A numeric option: an integer count, or seconds (fractions allowed). */
export interface NumericOption {
  kind: 'integer' | 'seconds';
  /** The `serve` flag, without dashes; none when only the library and config files have it. */
  flag?: string;
  min: number;
  /** Values must be greater than `min`, not equal (a timeout of 0 would refuse everything). */
  aboveMin?: boolean;
  /** The documented maximum (README options table). */
  max: number;
  /** The default; undefined when the model decides (workers, spare) or there is none (fd). */
  default: number | undefined;
}

/** A choice among words. */
export interface ChoiceOption {
  kind: 'choice';
  flag?: string;
  choices: () => readonly string[];
  default: string | undefined;
}

const seconds = (flag: string, def: number, aboveMin = false) => ({
  kind: 'seconds' as const,
  flag,
  min: 0,
  aboveMin,
  max: MAX_SECONDS,
  default: def,
});

/**
 * The numeric serve options by their ServerOptions name (also the config key;
 * maxConns, perSource, rate, idleTimeout and timeLimit sit under `limits:` there).
 */
export const NUMERIC_OPTIONS = {
  port: { kind: 'integer', flag: 'port', min: 0, max: 65535, default: DEFAULT_PORT },
  backlog: { kind: 'integer', flag: 'backlog', min: 1, max: 65535, default: DEFAULT_BACKLOG },
  fd: { kind: 'integer', flag: 'fd', min: 0, max: 2 ** 31 - 1, default: undefined },
  maxConns: { kind: 'integer', flag: 'max-conns', min: 1, max: 1_000_000, default: 40 },
  grace: seconds('grace', 10),
  workers: { kind: 'integer', flag: 'workers', min: 1, max: 1024, default: undefined },
  spare: { kind: 'integer', flag: 'spare', min: 0, max: 1024, default: undefined },
  maxConnsPerWorker: { kind: 'integer', flag: 'max-conns-per-worker', min: 0, max: 1_000_000_000, default: undefined },
  perSource: { kind: 'integer', flag: 'per-source', min: 0, max: 1_000_000, default: 0 },
  rate: { kind: 'integer', flag: 'rate', min: 0, max: 1_000_000, default: 0 },
  idleTimeout: seconds('idle-timeout', 0),
  timeLimit: seconds('time-limit', 0),
  proxyTimeout: seconds('proxy-timeout', 5, true),
  proxyV2Limit: { kind: 'integer', flag: undefined, min: 16, max: V2_MAX_LENGTH, default: DEFAULT_V2_LIMIT },
} as const satisfies Record<string, NumericOption>;

export type NumericOptionName = keyof typeof NUMERIC_OPTIONS;

/** `--accept`: how prefork workers get connections. */
export const ACCEPT_MODES = ['shared', 'pass'] as const;
export type AcceptMode = (typeof ACCEPT_MODES)[number];

/** What a numeric option must be, as every error message says it. */
export function numericRule(name: NumericOptionName): string {
  const o: NumericOption = NUMERIC_OPTIONS[name];
  if (o.kind === 'integer') return `must be an integer from ${o.min} to ${o.max}`;
  return `must be a number of seconds ${o.aboveMin ? '>' : '>='} ${o.min} and <= ${o.max}`;
}

/** Whether `value` passes the option's check. */
function fits(o: NumericOption, value: unknown): value is number {
  if (typeof value !== 'number' || !Number.isFinite(value)) return false;
  if (o.kind === 'integer' && !Number.isInteger(value)) return false;
  return (o.aboveMin ? value > o.min : value >= o.min) && value <= o.max;
}

/**
 * Check a numeric option given to the library or in a config file: the value, or
 * the default when undefined. Throws InvalidOptionError naming `label` (default: the option's name).
 */
export function checkNumber<N extends NumericOptionName>(
  name: N,
  value: unknown,
  label: string = name,
): number | (typeof NUMERIC_OPTIONS)[N]['default'] {
  const o: NumericOption = NUMERIC_OPTIONS[name];
  if (value === undefined) return o.default as (typeof NUMERIC_OPTIONS)[N]['default'];
  if (!fits(o, value)) throw new InvalidOptionError(label, `${numericRule(name)}, got ${JSON.stringify(value) ?? String(value)}`);
  return value;
}

/**
 * Parse a numeric `serve` flag's text (undefined when absent): digits, with a
 * fraction for seconds, then the same check as checkNumber. Throws
 * InvalidOptionError naming `--flag` and quoting the text.
 */
export function parseFlag(name: NumericOptionName, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const o: NumericOption = NUMERIC_OPTIONS[name];
  const label = `--${o.flag ?? name}`;
  const syntax = o.kind === 'integer' ? /^\d+$/ : /^\d+(\.\d+)?$/;
  const value = syntax.test(text) ? Number(text) : NaN;
  if (!fits(o, value)) throw new InvalidOptionError(label, `${numericRule(name)}, got ${JSON.stringify(text)}`);
  return value;
}

/** Check a choice: one of `choices`, or undefined when absent. Throws InvalidOptionError naming `label`. */
export function checkChoice<T extends string>(label: string, value: unknown, choices: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
    throw new InvalidOptionError(label, `must be one of ${choices.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/**
 * Seconds (already checked) to timer milliseconds: never beyond MAX_TIMER_MS, and
 * never 0 for a positive value (0 means "no limit" to the limits, so 0.0001 s must
 * not become one).
 */
export function toTimerMs(secondsValue: number): number {
  if (secondsValue <= 0) return 0;
  return Math.min(MAX_TIMER_MS, Math.max(1, Math.round(secondsValue * 1000)));
}
