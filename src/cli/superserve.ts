/**
 * The super-server's part of `tcpkit serve`: `--exec -- PROGRAM ARGS...`, access
 * rules, per-source limits, privilege drop, and `--config FILE` (several services,
 * SIGHUP reloads). argv → library calls, nothing else.
 */
import type { AccessRuleSpec } from '../admission/access.js';
import { formatEndpoint } from '../address.js';
import type { Config } from '../super/config.js';
import { TcpkitError, UsageError } from '../errors.js';
import type { ServerEvent } from '../events.js';
import { LogWriter } from '../log.js';
import { dropPrivileges, resolveIds } from '../super/privileges.js';
import { checkRunnableBy } from '../services/exec-options.js';
import type { ServerOptions } from '../server.js';
import { Supervisor } from '../super/supervisor.js';
import { parseFlag } from '../options.js';
import type { AdminArg } from './status.js';

/** parseArgs options the super-server adds to `serve`. */
export const superOptions = {
  exec: { type: 'boolean' },
  config: { type: 'string' },
  allow: { type: 'string', multiple: true },
  deny: { type: 'string', multiple: true },
  'per-source': { type: 'string' },
  rate: { type: 'string' },
  'idle-timeout': { type: 'string' },
  'time-limit': { type: 'string' },
  resolve: { type: 'boolean' },
  'env-clear': { type: 'boolean' },
  'env-pass': { type: 'string', multiple: true },
  user: { type: 'string' },
  group: { type: 'string' },
} as const;

/** The lines `serve --help` adds for them. */
export const superHelp = `  --exec -- PROGRAM ARGS  run PROGRAM for each connection, socket on its fds 0 and 1 (no shell),
                          UCSPI environment (PROTO=TCP, TCPREMOTEIP, TCPREMOTEPORT, ...)
  --resolve               exec: also set TCPREMOTEHOST/TCPLOCALHOST by name lookup (tcpserver -h)
  --env-clear             exec: pass the program none of the server's environment (default: all of it),
                          only the UCSPI variables, the access rule's and the --env-pass names
  --env-pass NAME         with --env-clear: pass the server's NAME on as well; repeatable
  --allow ADDR[/LEN]      access rule; repeatable, in order, first match wins (IPv4, IPv6, "all")
  --deny ADDR[/LEN]       access rule; with any --allow, unmatched peers are denied
  --per-source N          concurrent connections from one address (default unlimited)
  --rate N                new connections per second from one address (default unlimited)
  --idle-timeout SECONDS  close a connection without traffic this long (default never)
  --time-limit SECONDS    close a connection open this long (default never)
  --user USER             after binding, run as USER (name or uid; needs root)
  --group GROUP           after binding, run as GROUP (default USER's group)
  --config FILE           run the services of a YAML file (see README); SIGHUP reloads it`;

/** The parsed flags (--allow/--deny are read from argv, in order, by accessRules). */
type Values = {
  [K in keyof typeof superOptions]?: (typeof superOptions)[K]['type'] extends 'boolean'
    ? boolean
    : (typeof superOptions)[K] extends { multiple: true }
      ? string[]
      : string;
};

/** --allow/--deny in the order written (first match wins), from argv before `--`. */
function accessRules(argv: string[]): AccessRuleSpec[] {
  const rules: AccessRuleSpec[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    const m = /^--(allow|deny)(?:=(.*))?$/.exec(a);
    if (!m) continue;
    const from = m[2] ?? argv[++i];
    if (from !== undefined) rules.push({ action: m[1] as 'allow' | 'deny', from });
  }
  return rules;
}

/** The ServerOptions the super-server flags set (the service only with --exec). */
export function superServerOptions(values: Values, argv: string[], positionals: string[]): Partial<ServerOptions> {
  const options: Partial<ServerOptions> = {
    access: accessRules(argv),
    perSource: parseFlag('perSource', values['per-source']),
    rate: parseFlag('rate', values.rate),
    idleTimeout: parseFlag('idleTimeout', values['idle-timeout']),
    timeLimit: parseFlag('timeLimit', values['time-limit']),
  };
  if (values.exec) {
    if (positionals.length === 0) throw new UsageError('serve: --exec needs a program: tcpkit serve --exec -- PROGRAM [ARGS...]');
    // With `--`, everything after it is PROGRAM ARGS; a word before it would silently become the program.
    const dashes = argv.indexOf('--');
    const before = dashes < 0 ? 0 : positionals.length - (argv.length - dashes - 1);
    if (before > 0) {
      throw new UsageError(`serve: with --exec, give no SERVICE (got ${positionals.slice(0, before).join(' ')}); the program goes after --`);
    }
    const env = values['env-clear'] ? { env: { clear: true, pass: values['env-pass'] ?? [] } } : {};
    options.service = { name: 'exec', options: { argv: positionals, resolve: values.resolve ?? false, ...env } };
  } else if (values.resolve || values['env-clear']) {
    throw new UsageError(`serve: --${values.resolve ? 'resolve' : 'env-clear'} applies to --exec`);
  }
  if (values['env-pass'] && !values['env-clear']) throw new UsageError('serve: --env-pass applies with --env-clear (without it every variable is passed)');
  return options;
}

/**
 * Check --user/--group before anything is bound: the user and group exist, and an
 * exec program can be run by them. Returns them for dropPrivileges.
 */
export function checkUserFlags(values: Values, service: ServerOptions['service']): { user?: string; group?: string } {
  const ids = resolveIds(values.user, values.group);
  if (typeof service === 'object' && service.name === 'exec') {
    const argv = (service.options as { argv?: string[] } | undefined)?.argv;
    if (argv?.[0] !== undefined) checkRunnableBy(argv[0], ids, 'exec');
  }
  return { user: values.user, group: values.group };
}

/** Write events to stderr as `serve` does: a failing stderr drops lines, never stops serving (src/log.ts). */
export function eventWriter(format: 'text' | 'json', quiet: boolean): (e: ServerEvent) => void {
  const writer = new LogWriter({ format, quiet });
  return (event) => writer.event(event);
}

/**
 * `serve --config FILE`: start every service, drop privileges, print the bound
 * ports if asked (`SERVICE LISTEN HOST:PORT` per line), reload on SIGHUP, drain on
 * SIGTERM/SIGINT. Resolves with the exit code.
 */
export async function serveConfig(
  file: string,
  values: Values,
  { printPort, log, admin: adminArg, format = 'text' }: { printPort: boolean; log: (e: ServerEvent) => void; admin?: AdminArg; format?: 'text' | 'json' },
): Promise<number> {
  // Loaded here, not at the top: the config schema validator is a few MiB of heap a plain `serve` does without.
  const { loadCheckedConfig } = await import('../super/check.js');
  // Everything start would refuse, before anything is bound: the same check as `tcpkit check` and SIGHUP.
  const config: Config = loadCheckedConfig(file, { user: values.user, group: values.group });
  const user = values.user ?? config.user;
  const group = values.group ?? config.group;
  const supervisor = new Supervisor();
  supervisor.on('event', log);
  // Every address is bound as started (root, for a port below 1024); every service starts as `user`.
  await supervisor.start(config, { beforeServe: () => void dropPrivileges(user, group) });
  // Every service on one admin endpoint: status, metrics (a `binding` label each) and the dashboard.
  const admin = adminArg && (await (await import('./status.js')).startAdminFromArg(supervisor, adminArg, format));
  const reload = async () => {
    try {
      // What `tcpkit check --config FILE` accepts, a reload accepts: the same function.
      const next = loadCheckedConfig(file, { user: values.user, group: values.group });
      // The server has already dropped to `user`; a new file cannot ask for another.
      if (String(next.user ?? '') !== String(config.user ?? '') || String(next.group ?? '') !== String(config.group ?? '')) {
        throw new UsageError(`${file}: user, group: cannot change on reload (restart the server)`);
      }
      const r = await supervisor.reload(next);
      log({ type: 'reload', ok: true, ...r });
    } catch (err) {
      const message = err instanceof TcpkitError ? err.message : (err as Error)?.message ?? String(err);
      log({ type: 'reload', ok: false, kept: 0, started: 0, stopped: 0, message: `${message}; the previous configuration stays` });
    }
  };
  process.on('SIGHUP', () => void reload());
  // A handover passes one listening socket; a configuration has several. Without this
  // handler SIGUSR2's default action would kill every service at once.
  process.on('SIGUSR2', () =>
    log({ type: 'restart', state: 'failed', pid: 0, message: 'SIGUSR2 ignored: a --config server does not restart by handover; send SIGHUP to reload the file' }),
  );

  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals === 1) void supervisor.close({ signal }).then(() => admin?.close()).then(() => resolve(0));
      else void supervisor.destroy();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // Print last: whoever reads the ports may signal at once, and every handler is in place by now.
    if (printPort) {
      const lines = supervisor.bindings().map((b) => `${b.service} ${b.listen} ${b.local ? formatEndpoint(b.local) : '-'}\n`);
      process.stdout.write(lines.join(''));
    }
  });
}
