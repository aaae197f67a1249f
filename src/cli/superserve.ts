/**
 * The super-server's part of `tcpkit serve`: `--exec -- PROGRAM ARGS...`, access
 * rules, per-source limits, privilege drop, and `--config FILE` (several services,
 * SIGHUP reloads). argv → library calls, nothing else; the flags are the option
 * table's (src/options.ts).
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
import { checkChoice, OPTIONS, type ServeFlags } from '../options.js';
import type { AdminArg } from './status.js';
import { removePidFile, writePidFileOrRelease } from './pidfile.js';

/** The parsed flags (--allow/--deny are read from argv, in order, by accessRules). */
type Values = ServeFlags;

/** --allow/--deny/--allow-cert/--deny-cert in the order written (first match wins), from argv before `--`. */
function accessRules(argv: string[]): AccessRuleSpec[] {
  const rules: AccessRuleSpec[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    const m = /^--(allow|deny)(-cert)?(?:=(.*))?$/.exec(a);
    if (!m) continue;
    const value = m[3] ?? argv[++i];
    if (value === undefined) continue;
    // --allow-cert / --deny-cert: a TLS client certificate's subject or fingerprint, from any address.
    rules.push(m[2] ? { action: m[1] as 'allow' | 'deny', from: 'all', cert: value } : { action: m[1] as 'allow' | 'deny', from: value });
  }
  return rules;
}

/** The ServerOptions the super-server flags set (the service only with --exec). */
export function superServerOptions(values: Values, argv: string[], positionals: string[]): Partial<ServerOptions> {
  // The numeric limits (--per-source, --rate, ...) are checked with every table option in serve.ts.
  const options: Partial<ServerOptions> = { access: accessRules(argv) };
  if (values.exec) {
    if (positionals.length === 0) throw new UsageError('serve: --exec needs a program: tcpkit serve --exec -- PROGRAM [ARGS...]');
    // With `--`, everything after it is PROGRAM ARGS; a word before it would silently become the program.
    const dashes = argv.indexOf('--');
    const before = dashes < 0 ? 0 : positionals.length - (argv.length - dashes - 1);
    if (before > 0) {
      throw new UsageError(`serve: with --exec, give no SERVICE (got ${positionals.slice(0, before).join(' ')}); the program goes after --`);
    }
    const env = values['env-clear'] ? { env: { clear: true, pass: values['env-pass'] ?? [] } } : {};
    const stderr = checkChoice('--exec-stderr', values['exec-stderr'] ?? OPTIONS.execStderr.default, OPTIONS.execStderr.choices);
    options.service = { name: 'exec', options: { argv: positionals, resolve: values.resolve ?? false, ...env, ...(stderr !== 'log' && { stderr }) } };
  } else if (values.resolve || values['env-clear'] || values['exec-stderr'] !== undefined) {
    throw new UsageError(`serve: --${values.resolve ? 'resolve' : values['env-clear'] ? 'env-clear' : 'exec-stderr'} applies to --exec`);
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
export function eventWriter(format: 'text' | 'json', quiet: boolean, timestamps = false): (e: ServerEvent) => void {
  const writer = new LogWriter({ format, quiet, timestamps });
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
  {
    printPort,
    log,
    admin: adminArg,
    format = OPTIONS.logFormat.default,
    pidFile,
  }: { printPort: boolean; log: (e: ServerEvent) => void; admin?: AdminArg; format?: 'text' | 'json'; pidFile?: string },
): Promise<number> {
  // Loaded here, not at the top: the config schema validator is a few MiB of heap a plain `serve` does without.
  const { loadCheckedConfig } = await import('../super/check.js');
  // Everything start would refuse, before anything is bound: the same check as `tcpkit check` and SIGHUP.
  const config: Config = await loadCheckedConfig(file, { user: values.user, group: values.group });
  const user = values.user ?? config.user;
  const group = values.group ?? config.group;
  const supervisor = new Supervisor();
  supervisor.on('event', log);
  // Every address is bound as started (root, for a port below 1024); every service starts as `user`.
  await supervisor.start(config, { beforeServe: () => void dropPrivileges(user, group) });
  // Every service on one admin endpoint: status, metrics (a `binding` label each) and the dashboard.
  const admin = adminArg && (await (await import('./status.js')).startAdminFromArg(supervisor, adminArg, format));
  await writePidFileOrRelease(pidFile, async () => {
    await supervisor.destroy();
    await admin?.close();
  });
  const reload = async () => {
    try {
      // What `tcpkit check --config FILE` accepts, a reload accepts: the same function.
      const next = await loadCheckedConfig(file, { user: values.user, group: values.group });
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
      if (signals === 1) {
        void supervisor
          .close({ signal })
          .then(() => admin?.close())
          .then(() => {
            if (pidFile !== undefined) removePidFile(pidFile);
            resolve(0);
          });
      }
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
