/**
 * The option table: every option of `tcpkit serve`/`check`, of createServer and of a
 * configuration file's service, stated once (OPTIONS below) with its flag, config
 * field, type, default, bounds, help text and the models it applies to. The CLI's
 * flags and --help, the config schema, Server's defaults and checks (resolveOptions)
 * and `tcpkit check` are derived from it, so the three ways in accept and refuse the
 * same values with the same message; only the name differs, spelled as the user
 * wrote it:
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

/** V2_MAX_LENGTH: the longest v2 PROXY header the format allows, 16 bytes plus a 16-bit length (proxyV2Limit's maximum). */
export const V2_MAX_LENGTH = 16 + 0xffff;

/** Where an option is given: `server` ones are ServerOptions fields too (library, CLI, config). */
export type OptionScope = 'server' | 'cli';

/** What every option of the table states. */
interface OptionBase {
  /** The `serve`/`check` flag, without dashes; none when only the library and config files have it. */
  flag?: string;
  /** One-letter flag. */
  short?: string;
  /** The flag's value as the help text names it (`N`, `SECONDS`); none for a switch. */
  arg?: string;
  /**
   * Where the option sits in a service of a configuration file (`grace`, `limits.maxConns`);
   * none when a file cannot set it.
   */
  config?: string;
  /** `server`: a ServerOptions field (its name is the table's key); `cli`: only the command line has it. */
  scope: OptionScope;
  /** One line (or several, joined by \n) for `serve --help`; the default is appended from the table. */
  help: string;
  /** The help text's default when the value is computed or absent ("the CPU count", "never"). */
  defaultText?: string;
  /** The models it applies to (every model when absent): help text and documentation; ignored under the others. */
  models?: readonly string[];
  /** Refuse a value other than the default under a model not in `models`, instead of ignoring it. */
  strictModels?: boolean;
  /** Which services it applies to (every service when absent): `program` is a service that runs a program per connection. */
  services?: 'program';
}

/** A numeric option: an integer count, or seconds (fractions allowed). */
export interface NumericOption extends OptionBase {
  kind: 'integer' | 'seconds';
  min: number;
  /** Values must be greater than `min`, not equal (a timeout of 0 would refuse everything). */
  aboveMin?: boolean;
  /** The documented maximum (README options table). */
  max: number;
  /** The default; undefined when the model decides (workers) or there is none (fd). */
  default: number | undefined;
}

/** A choice among words. `choices` come from a registry (models, services) when not listed here. */
export interface ChoiceOption extends OptionBase {
  kind: 'choice';
  choices: readonly string[] | (() => readonly string[]);
  default: string | undefined;
}

/** A switch (no value). */
export interface BooleanOption extends OptionBase {
  kind: 'boolean';
  default: boolean;
  /** Words the library and config files also take besides true/false (proxyProtocol's 'v1', 'v2'). */
  words?: readonly string[];
}

/** A word, an address, a path: checked where it is used (addresses by checkHost, files when opened). */
export interface StringOption extends OptionBase {
  kind: 'string';
  default: string | undefined;
  /** The flag may be repeated; the values form a list (config: a list of strings). */
  multiple?: boolean;
}

export type OptionSpec = NumericOption | ChoiceOption | BooleanOption | StringOption;

const seconds = <E extends Partial<NumericOption>>(flag: string, def: number, help: string, extra: E) => ({
  kind: 'seconds' as const,
  flag,
  arg: 'SECONDS',
  scope: 'server' as const,
  min: 0,
  max: MAX_SECONDS,
  default: def,
  help,
  ...extra,
});

/** Names the registry of models provides for a choice, filled in when they load. */
const registries: { model?: () => readonly string[] } = {};

/**
 * The models' registry (models/index.ts) names its choices here, so that the
 * table stays below them: options.ts imports neither.
 */
export function provideChoices(option: 'model', names: () => readonly string[]): void {
  registries[option] = names;
}

const POOLS = ['prefork', 'threads'] as const;

/**
 * THE option table: every option of `serve` (and `check`, which takes the same), of
 * createServer and of a configuration file's service, stated once. The CLI's flags
 * and help text (cli/serve.ts), the config schema and its numeric checks
 * (super/config.ts), resolveOptions and ServerOptions' defaults (server.ts) and
 * `tcpkit check` are derived from it. Keys are ServerOptions' names (camelCase) for
 * `server` options, the flag's name otherwise. Order: the help text's.
 *
 * Extension point: options of other commands (status, client, bench) are not here
 * yet; an entry with scope `cli` and a flag is what they would add.
 */
export const OPTIONS = {
  service: { kind: 'string', scope: 'server', default: 'echo', help: 'the service: a built-in name (SERVICE), a --handler module or --exec' },
  host: { kind: 'string', flag: 'host', arg: 'ADDR', scope: 'server', default: '0.0.0.0', help: 'address to bind (IPv4/IPv6 literal, [IPv6], or name)' },
  port: { kind: 'integer', flag: 'port', short: 'p', arg: 'PORT', scope: 'server', min: 0, max: 65535, default: DEFAULT_PORT, help: 'port to bind (0: the kernel picks)' },
  path: { kind: 'string', flag: 'unix', arg: 'PATH', scope: 'server', default: undefined, help: 'listen on the UNIX-domain socket PATH instead of a port (@NAME: abstract namespace);\na stale socket file is replaced, a live one or a non-socket refused' },
  unixMode: { kind: 'string', flag: 'unix-mode', arg: 'MODE', config: 'unixMode', scope: 'server', default: '0660', help: "octal permissions of the --unix socket file, set before it accepts anyone\n(0660: only its owner and group may connect, access given by group membership)" },
  unixOwner: { kind: 'string', flag: 'unix-owner', arg: 'USER[:GROUP]', config: 'unixOwner', scope: 'server', default: undefined, defaultText: "the server's", help: 'owner (and group) of the --unix socket file, set before it accepts anyone' },
  backlog: { kind: 'integer', flag: 'backlog', arg: 'N', config: 'backlog', scope: 'server', min: 1, max: 65535, default: DEFAULT_BACKLOG, help: 'listen(2) backlog' },
  printPort: { kind: 'boolean', flag: 'print-port', scope: 'cli', default: false, help: 'print the bound port (with --unix: unix:PATH) as the first line of stdout' },
  pidFile: { kind: 'string', flag: 'pid-file', arg: 'PATH', scope: 'cli', default: undefined, help: "write the server's pid to PATH once listening (atomically); removed on exit" },
  model: { kind: 'choice', flag: 'model', arg: 'NAME', config: 'model', scope: 'server', choices: () => registries.model?.() ?? [], default: 'fork', help: 'concurrency model: {choices}' },
  maxConns: { kind: 'integer', flag: 'max-conns', short: 'c', arg: 'N', config: 'limits.maxConns', scope: 'server', min: 1, max: 1_000_000, default: 40, help: 'concurrent connections; more wait in the backlog' },
  grace: seconds('grace', 10, 'on SIGTERM/SIGINT, let connections finish this long', { config: 'grace' }),
  workers: { kind: 'integer', flag: 'workers', arg: 'N', config: 'workers', scope: 'server', min: 1, max: 1024, default: undefined, defaultText: 'the CPU count', models: POOLS, help: 'workers in the pool' },
  spare: { kind: 'integer', flag: 'spare', arg: 'N', config: 'spare', scope: 'server', min: 0, max: 1024, default: 0, models: ['fork'], help: 'children started ahead of need, each serves one connection\n(not with a service that runs a program per connection)' },
  accept: { kind: 'choice', flag: 'accept', arg: 'MODE', config: 'accept', scope: 'server', choices: ['shared', 'pass'], default: 'shared', models: ['prefork'], strictModels: true, help: 'shared (workers accept) or pass (server accepts, passes the descriptor)' },
  maxConnsPerWorker: { kind: 'integer', flag: 'max-conns-per-worker', arg: 'K', config: 'maxConnsPerWorker', scope: 'server', min: 0, max: 1_000_000_000, default: 0, defaultText: '0: never', models: POOLS, help: 'recycle a worker after K connections' },
  maxReply: { kind: 'integer', flag: 'max-reply', arg: 'BYTES', scope: 'cli', min: 1, max: 2 ** 40, default: 16_777_216, help: 'bench: largest reply a client may ask for' },
  handler: { kind: 'string', flag: 'handler', arg: 'FILE', scope: 'cli', default: undefined, help: "serve with FILE's exported function of a connection instead of SERVICE" },
  fd: { kind: 'integer', flag: 'fd', arg: 'N', scope: 'server', min: 0, max: 2 ** 31 - 1, default: undefined, help: 'serve on the inherited listening descriptor N instead of binding' },
  fdName: { kind: 'string', flag: 'fd-name', arg: 'NAME', scope: 'cli', default: undefined, help: 'with socket activation passing several sockets: the one named NAME' },
  proxyProtocol: { kind: 'boolean', flag: 'proxy-protocol', config: 'proxyProtocol', scope: 'server', words: ['v1', 'v2'], default: false, help: 'expect a PROXY protocol header (v1 or v2) on every connection:\nthe client it names becomes the peer (logs, rules, TCPREMOTEIP)' },
  proxyTimeout: seconds('proxy-timeout', 5, 'time a connection has to send its PROXY header', { config: 'proxyTimeout', aboveMin: true }),
  proxyV2Limit: { kind: 'integer', scope: 'server', config: 'proxyV2Limit', min: 16, max: V2_MAX_LENGTH, default: 4096, help: 'largest PROXY v2 header accepted, in bytes (16 + length)' },
  proxyFrom: { kind: 'string', flag: 'proxy-from', arg: 'ADDR[/LEN]', config: 'proxyFrom', scope: 'server', multiple: true, default: undefined, defaultText: 'every peer may', help: 'only this peer (a load balancer) may send a PROXY header; repeatable;\nothers are refused (reason proxy-untrusted)' },
  proxyUntrusted: { kind: 'choice', flag: 'proxy-untrusted', arg: 'MODE', config: 'proxyUntrusted', scope: 'server', choices: ['refuse', 'direct'], default: 'refuse', help: 'a peer not in --proxy-from: refuse, or direct (served as itself, no header read)' },
  tlsCert: { kind: 'string', flag: 'tls-cert', arg: 'FILE', config: 'tls.cert', scope: 'server', default: undefined, defaultText: 'off', help: 'terminate TLS: the certificate (PEM; the chain may follow it in FILE);\nread before --user takes effect, and again on SIGHUP' },
  tlsKey: { kind: 'string', flag: 'tls-key', arg: 'FILE', config: 'tls.key', scope: 'server', default: undefined, help: "--tls-cert's private key (PEM)" },
  tlsSni: { kind: 'string', flag: 'tls-sni', arg: 'NAME=CERT,KEY', config: 'tls.sni', scope: 'server', multiple: true, default: undefined, help: 'for clients asking for NAME (SNI; *.example.com matches one label) use CERT\nand KEY; repeatable; others get --tls-cert' },
  tlsCa: { kind: 'string', flag: 'tls-ca', arg: 'FILE', config: 'tls.ca', scope: 'server', default: undefined, help: 'CA certificates (PEM) that client certificates are checked against' },
  tlsClient: { kind: 'choice', flag: 'tls-client', arg: 'MODE', config: 'tls.client', scope: 'server', choices: ['none', 'request', 'require'], default: 'none', help: 'client certificates: none, request (checked against --tls-ca if sent)\nor require (a client without a valid one is refused)' },
  tlsMinVersion: { kind: 'choice', flag: 'tls-min-version', arg: 'VERSION', config: 'tls.minVersion', scope: 'server', choices: ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'], default: 'TLSv1.2', help: 'oldest protocol version accepted' },
  tlsCiphers: { kind: 'string', flag: 'tls-ciphers', arg: 'LIST', config: 'tls.ciphers', scope: 'server', default: undefined, defaultText: "Node's default", help: 'OpenSSL cipher list (TLS 1.2 and older; TLS 1.3 suites: TLS_AES_...)' },
  tlsAlpn: { kind: 'string', flag: 'tls-alpn', arg: 'PROTO', config: 'tls.alpn', scope: 'server', multiple: true, default: undefined, defaultText: 'none', help: 'an ALPN protocol to offer (repeatable, in order of preference)' },
  tlsTicketRotate: seconds('tls-ticket-rotate', 3600, 'session tickets (resumption): a new ticket key this often, shared by\nevery worker (0: no tickets)', { config: 'tls.ticketRotate' }),
  tlsHandshakeTimeout: seconds('tls-handshake-timeout', 10, 'time a connection has to complete its TLS handshake', { config: 'tls.handshakeTimeout', aboveMin: true }),
  tlsMaxPending: { kind: 'integer', flag: 'tls-max-pending', arg: 'N', config: 'tls.maxPending', scope: 'server', min: 1, max: 1_000_000, default: 256, help: 'handshakes in progress at once (per process that accepts); more are\nrefused (reason tls-busy)' },
  tlsMaxPendingPerSource: { kind: 'integer', flag: 'tls-max-pending-per-source', arg: 'N', config: 'tls.maxPendingPerSource', scope: 'server', min: 1, max: 1_000_000, default: 32, help: 'handshakes in progress at once from one address' },
  logFormat: { kind: 'choice', flag: 'log-format', arg: 'FORMAT', scope: 'cli', choices: ['text', 'json'], default: 'text', help: 'log line format' },
  logTimestamps: { kind: 'boolean', flag: 'log-timestamps', scope: 'cli', default: false, help: 'start each text log line with its time (ISO 8601, UTC); JSON lines always have it' },
  admin: { kind: 'string', flag: 'admin', arg: 'HOST:PORT', scope: 'cli', default: undefined, defaultText: 'off', help: 'serve /status, /metrics and the live dashboard there (loopback only;\nwith --config, one endpoint for every service)' },
  adminPublic: { kind: 'boolean', flag: 'admin-public', scope: 'cli', default: false, help: 'allow a non-loopback --admin address (it has no authentication)' },
  adminTokenFile: { kind: 'string', flag: 'admin-token-file', arg: 'FILE', scope: 'cli', default: undefined, help: 'require "Authorization: Bearer TOKEN" (TOKEN: FILE\'s first line) on every\nadmin request; allows a non-loopback --admin address' },
  quiet: { kind: 'boolean', flag: 'quiet', short: 'q', scope: 'cli', default: false, help: 'log only errors and lifecycle, not each connection' },
  exec: { kind: 'boolean', flag: 'exec', arg: '-- PROGRAM ARGS', scope: 'cli', default: false, help: 'run PROGRAM for each connection, socket on its fds 0 and 1 (no shell),\nUCSPI environment (PROTO=TCP, TCPREMOTEIP, TCPREMOTEPORT, ...)' },
  resolve: { kind: 'boolean', flag: 'resolve', scope: 'cli', services: 'program', default: false, help: 'exec: also set TCPREMOTEHOST/TCPLOCALHOST by name lookup (tcpserver -h)' },
  envClear: { kind: 'boolean', flag: 'env-clear', scope: 'cli', services: 'program', default: false, help: "exec: pass the program none of the server's environment (default: all of it),\nonly the UCSPI variables, the access rule's and the --env-pass names" },
  execStderr: { kind: 'choice', flag: 'exec-stderr', arg: 'MODE', scope: 'cli', services: 'program', choices: ['log', 'inherit'], default: 'log', help: "exec: the program's stderr: log (each line as `stderr pid P id I text T`)\nor inherit (the server's own stderr, untouched, as tcpserver)" },
  envPass: { kind: 'string', flag: 'env-pass', arg: 'NAME', scope: 'cli', services: 'program', multiple: true, default: undefined, help: "with --env-clear: pass the server's NAME on as well; repeatable" },
  allow: { kind: 'string', flag: 'allow', arg: 'ADDR[/LEN]', scope: 'cli', multiple: true, default: undefined, help: 'access rule; repeatable, in order, first match wins (IPv4, IPv6, "all";\nUNIX peers: uid:N, gid:N, user:NAME, group:NAME)' },
  deny: { kind: 'string', flag: 'deny', arg: 'ADDR[/LEN]', scope: 'cli', multiple: true, default: undefined, help: 'access rule; with any --allow, unmatched peers are denied' },
  allowCert: { kind: 'string', flag: 'allow-cert', arg: 'SUBJECT|SHA256', scope: 'cli', multiple: true, default: undefined, help: 'TLS access rule: a client certificate with this subject (CN=...) or SHA-256\nfingerprint; in order with --allow/--deny (needs --tls-client)' },
  denyCert: { kind: 'string', flag: 'deny-cert', arg: 'SUBJECT|SHA256', scope: 'cli', multiple: true, default: undefined, help: 'TLS access rule: refuse that client certificate' },
  perSource: { kind: 'integer', flag: 'per-source', arg: 'N', config: 'limits.perSource', scope: 'server', min: 0, max: 1_000_000, default: 0, defaultText: '0: unlimited', help: 'concurrent connections from one address (UNIX: one uid)' },
  rate: { kind: 'integer', flag: 'rate', arg: 'N', config: 'limits.rate', scope: 'server', min: 0, max: 1_000_000, default: 0, defaultText: '0: unlimited', help: 'new connections per second from one address (UNIX: one uid)' },
  idleTimeout: seconds('idle-timeout', 0, 'close a connection without traffic this long', { config: 'limits.idleTimeout', defaultText: '0: never' }),
  timeLimit: seconds('time-limit', 0, 'close a connection open this long', { config: 'limits.timeLimit', defaultText: '0: never' }),
  user: { kind: 'string', flag: 'user', arg: 'USER', scope: 'cli', default: undefined, help: 'after binding, run as USER (name or uid; needs root)' },
  group: { kind: 'string', flag: 'group', arg: 'GROUP', scope: 'cli', default: undefined, defaultText: "USER's group", help: 'after binding, run as GROUP' },
  config: { kind: 'string', flag: 'config', arg: 'FILE', scope: 'cli', default: undefined, help: 'run the services of a YAML file (see README); SIGHUP reloads it' },
  help: { kind: 'boolean', flag: 'help', short: 'h', scope: 'cli', default: false, help: 'this text' },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;

type NumericKeys<T> = { [K in keyof T]: T[K] extends { kind: 'integer' | 'seconds' } ? K : never }[keyof T];
export type NumericOptionName = NumericKeys<typeof OPTIONS>;

/** The numeric options (a view of OPTIONS), by their ServerOptions name. */
export const NUMERIC_OPTIONS = Object.fromEntries(
  Object.entries(OPTIONS).filter(([, o]) => o.kind === 'integer' || o.kind === 'seconds'),
) as { [K in NumericOptionName]: (typeof OPTIONS)[K] };

/** `--accept`: how prefork workers get connections. */
export const ACCEPT_MODES = OPTIONS.accept.choices;
export type AcceptMode = (typeof ACCEPT_MODES)[number];

/** Default cap on a v2 PROXY header (16 + length), in bytes: 4096. Real senders put two
 * addresses (at most 216 bytes, for AF_UNIX) and a few short TLVs; 4 KiB leaves ample
 * room and keeps what one unauthenticated connection can make the server hold small. */
export const DEFAULT_V2_LIMIT = OPTIONS.proxyV2Limit.default;

/** The choices of a choice option, its registry's when it has one. */
export function choicesOf(o: ChoiceOption): readonly string[] {
  return typeof o.choices === 'function' ? o.choices() : o.choices;
}

/** What the help text and the docs say the default is. */
export function defaultText(o: OptionSpec): string | undefined {
  if (o.defaultText !== undefined) return o.defaultText;
  if (o.default === undefined || o.default === false) return undefined;
  return String(o.default);
}

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

/**
 * A UNIX socket file's permission bits: an octal string (`0660`, `600`) or a number (0o660), at most 0777.
 * Undefined gives the table's default. Throws InvalidOptionError naming `label`.
 */
export function parseUnixMode(value: unknown, label = 'unixMode'): number {
  const v = value ?? OPTIONS.unixMode.default;
  const n = typeof v === 'string' && /^0?[0-7]{1,3}$/.test(v) ? parseInt(v, 8) : typeof v === 'number' && Number.isInteger(v) ? v : NaN;
  if (!(n >= 0 && n <= 0o777)) throw new InvalidOptionError(label, `must be octal permissions from 0000 to 0777, got ${JSON.stringify(value)}`);
  return n;
}

/** The longest UNIX socket path (sun_path holds 108 bytes with the terminating NUL). */
export const MAX_UNIX_PATH = 107;

/** Check a UNIX socket path or `@name`: not empty, no NUL, fits sun_path. Throws InvalidOptionError naming `label`. */
export function checkUnixPath(value: unknown, label = 'path'): string {
  if (typeof value !== 'string' || value === '' || value === '@' || value.includes('\0')) {
    throw new InvalidOptionError(label, `must be a socket path or @name, got ${JSON.stringify(value)}`);
  }
  if (Buffer.byteLength(value) > MAX_UNIX_PATH) {
    throw new InvalidOptionError(label, `${JSON.stringify(value)} is longer than a UNIX socket address holds (${MAX_UNIX_PATH} bytes)`);
  }
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

/** A ServerOptions field that the table describes. */
export type ServerOptionName = { [K in OptionName]: (typeof OPTIONS)[K]['scope'] extends 'server' ? K : never }[OptionName];

/** util.parseArgs's option config for `serve`/`check`, from the table. */
export function parseArgsOptions(): Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> {
  const out: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const o of Object.values(OPTIONS) as OptionSpec[]) {
    if (o.flag === undefined) continue;
    out[o.flag] = {
      type: o.kind === 'boolean' ? 'boolean' : 'string',
      ...(o.short !== undefined && { short: o.short }),
      ...(o.kind === 'string' && o.multiple && { multiple: true }),
    };
  }
  return out;
}

/** The help text's column where descriptions start. */
const HELP_COLUMN = 26;

/** `serve --help`'s option lines, from the table: flag, value, text, applicability and default. */
export function optionHelp(): string {
  const lines: string[] = [];
  for (const o of Object.values(OPTIONS) as OptionSpec[]) {
    if (o.flag === undefined) continue;
    const head = `  ${o.short ? `-${o.short}, ` : ''}--${o.flag}${o.arg ? ` ${o.arg}` : ''}`;
    let text = o.help;
    if (o.kind === 'choice') text = text.replace('{choices}', choicesOf(o).join(', '));
    const where = [o.models ? o.models.join('/') : undefined].filter(Boolean);
    const def = defaultText(o);
    const [first, ...rest] = text.split('\n');
    const tail = `${def !== undefined ? ` (default ${def})` : ''}`;
    const body = [`${where.length ? `${where.join(' ')}: ` : ''}${first}`, ...rest];
    body[body.length - 1] += tail;
    const pad = head.length + 1 >= HELP_COLUMN ? `${head} ` : head.padEnd(HELP_COLUMN);
    lines.push(`${pad}${body[0]}`, ...body.slice(1).map((l) => `${' '.repeat(HELP_COLUMN)}${l}`));
  }
  return lines.join('\n');
}

/** The JSON Schema of one option's value in a config file. */
function schemaOf(o: OptionSpec): Record<string, unknown> {
  switch (o.kind) {
    case 'integer':
      return { type: 'integer' };
    case 'seconds':
      return { type: 'number' };
    case 'choice':
      return { type: 'string', enum: [...choicesOf(o)] };
    case 'boolean':
      return o.words ? { enum: [true, false, ...o.words] } : { type: 'boolean' };
    case 'string':
      return o.multiple ? { type: 'array', items: { type: 'string' } } : { type: 'string' };
  }
}

/**
 * The config schema's properties of a service that come from the table (numbers
 * only by type: their bounds and messages are checkConfigOption's, as on the CLI),
 * nested as their paths say (`limits.maxConns` → limits: { properties: { maxConns } }).
 */
export function configSchemaProperties(): Record<string, Record<string, unknown>> {
  const props: Record<string, Record<string, unknown>> = {};
  for (const o of Object.values(OPTIONS) as OptionSpec[]) {
    if (o.config === undefined) continue;
    const [first, second] = o.config.split('.') as [string, string | undefined];
    if (second === undefined) props[first] = schemaOf(o);
    else {
      const group = (props[first] ??= { type: 'object', additionalProperties: false, properties: {} }) as { properties: Record<string, unknown> };
      group.properties[second] = schemaOf(o);
    }
  }
  return props;
}

/** The options a config file's service may set, by their path in the service: [name, path]. */
export function configOptions(): Array<[ServerOptionName, string]> {
  return (Object.entries(OPTIONS) as Array<[OptionName, OptionSpec]>)
    .filter(([, o]) => o.config !== undefined && o.scope === 'server')
    .map(([name, o]) => [name as ServerOptionName, o.config!]);
}

/** The numeric option at a config path, if any (for the schema's type errors). */
export function numericAtConfigPath(configPath: string): NumericOptionName | undefined {
  for (const [name, o] of Object.entries(NUMERIC_OPTIONS) as Array<[NumericOptionName, NumericOption]>) {
    if (o.config === configPath) return name;
  }
  return undefined;
}

type FlagOf<K extends OptionName> = (typeof OPTIONS)[K] extends { flag: infer F extends string } ? F : never;

/** The parsed `serve` flags, by flag name, as util.parseArgs gives them. */
export type ServeFlags = {
  [K in OptionName as FlagOf<K>]?: (typeof OPTIONS)[K]['kind'] extends 'boolean' ? boolean : (typeof OPTIONS)[K] extends { multiple: true } ? string[] : string;
};

/**
 * The rule on `spare` and programs, stated once: a spare is a Node process waiting to
 * run a service, and a program (a service whose module exports `program`) cannot be
 * started before its socket exists. Server.check (serve, `tcpkit check`) throws it.
 */
export function spareWithProgram(service: string): InvalidOptionError {
  return new InvalidOptionError('spare', `does not apply to a service that runs a program per connection (${service}): each program is started when its connection arrives`);
}
