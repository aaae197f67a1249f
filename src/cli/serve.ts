/**
 * `tcpkit serve [SERVICE]`: argv → createServer, logs to stderr, signals → close.
 */
import { formatEndpoint } from '../address.js';
import { createServer, type ServerOptions } from '../server.js';
import { containStderrErrors } from '../log.js';
import '../models/index.js'; // the --model choices
import { setProcessTitle } from '../process-title.js';
import { serviceNames } from '../services/index.js';
import { ExitCode, TcpkitError, UsageError } from '../errors.js';
import { chooseSocket, listenFds } from '../net/activation.js';
import { closeOnExecInherited } from '../net/fdutil.js';
import { proxyTrust } from '../net/proxy-gate.js';
import { notifyReady, takeNotifyFd } from '../net/restart.js';
import { parse } from './args.js';
import { checkPidFile, removePidFile, writePidFileOrRelease } from './pidfile.js';
import { checkChoice, checkUnixPath, parseUnixMode, choicesOf, MAX_SECONDS, OPTIONS, optionHelp, parseArgsOptions, parseFlag, type NumericOptionName, type OptionName, type OptionSpec, type ServeFlags } from '../options.js';
import type { AdminArg } from './status.js';
import { checkUserFlags, eventWriter, serveConfig, superServerOptions } from './superserve.js';
import { dropPrivileges, unixOwner } from '../super/privileges.js';

export const serveHelp = `usage: tcpkit serve [SERVICE] [options]

Serve SERVICE (default: ${OPTIONS.service.default}) on a TCP port, or on a UNIX-domain socket (--unix).

${optionHelp()}

Socket activation: with LISTEN_FDS/LISTEN_PID set for this process (systemd, systemd-socket-activate)
tcpkit serves on the passed socket; it takes precedence over --fd, which takes precedence over
--host/--port. SIGUSR2 restarts without downtime: a new tcpkit with the same arguments takes over
the listening socket, then this one stops accepting, drains and exits 0 (with --config, SIGUSR2 is
logged and ignored; SIGHUP reloads the file).

Services: ${serviceNames().join(', ')}.
Durations (SECONDS) take fractions and are at most ${MAX_SECONDS}.
Exit codes: 0 after a clean shutdown, 100 usage error, 111 system failure (cannot bind).`;

/** --proxy-from / --proxy-untrusted, checked here so a bad CIDR is a usage error (exit 100). */
function proxyTrustFlags(proxy: boolean | undefined, from: string[] | undefined, untrusted: string | undefined): Partial<ServerOptions> {
  if ((from !== undefined || untrusted !== undefined) && !proxy) {
    throw new UsageError(`serve: ${from !== undefined ? '--proxy-from' : '--proxy-untrusted'} needs --proxy-protocol`);
  }
  const out: Partial<ServerOptions> = {};
  if (from !== undefined) {
    try {
      proxyTrust(from);
    } catch (err) {
      throw new UsageError(`serve: --proxy-from: ${(err as Error).message.replace(/^proxyFrom\[\d+\]\.allow: /, '')}`);
    }
    out.proxyFrom = from;
  }
  if (untrusted !== undefined) out.proxyUntrusted = untrusted as ServerOptions['proxyUntrusted'];
  return out;
}

/** The flags of `serve` (and of `check`, which takes the same): the option table's. */
const serveFlags = parseArgsOptions();

/** What `serve`'s arguments say, checked, before anything is bound or changed in this process. */
export interface ServeArgs {
  values: ServeFlags;
  format: 'text' | 'json';
  /** `--config FILE`: the services come from the file. */
  config?: string;
  /** Without --config: the server's options (an inherited socket not yet applied). */
  options?: ServerOptions;
  adminArg: AdminArg | undefined;
}

/**
 * parseArgs with the table's flags. `--exec cat -n` (no `--`) is an unknown option
 * `-n`: the message then says where the program's arguments go.
 */
function parseServeFlags(command: string, argv: string[]): { values: ServeFlags; positionals: string[] } {
  try {
    return parse(command, argv, serveFlags) as unknown as { values: ServeFlags; positionals: string[] };
  } catch (err) {
    const dashes = argv.indexOf('--');
    const exec = argv.findIndex((a) => a === '--exec');
    if (err instanceof UsageError && exec >= 0 && (dashes < 0 || dashes > exec + 1) && /unknown option|needs a value|takes no value/.test(err.message)) {
      throw new UsageError(`${err.message}; with --exec, the program and its arguments go after --: tcpkit ${command} --exec -- PROGRAM [ARGS...]`);
    }
    throw err;
  }
}

/**
 * argv → checked options, as `serve` and `check` both need them: every usage error
 * (a flag, a number beyond its maximum, an unknown service, a bad CIDR) throws here.
 */
export async function parseServeArgs(argv: string[], command = 'serve'): Promise<ServeArgs> {
  const { values, positionals } = parseServeFlags(command, argv);
  // Every problem is listed, not only the first (serve and check alike): each check runs on its own.
  const problems: string[] = [];
  const take = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      if (!(err instanceof TcpkitError) || err.exitCode !== ExitCode.USAGE) throw err;
      problems.push(err.message);
      return undefined;
    }
  };
  const done = <T>(result: T): T => {
    if (problems.length > 0) throw new UsageError(problems.join('\n'));
    return result;
  };
  const format = take(() => checkChoice('--log-format', values['log-format'], OPTIONS.logFormat.choices)) ?? OPTIONS.logFormat.default;
  // The admin endpoint's modules (HTTP, metrics) load only when asked for: a plain server's heap stays
  // small, and every garbage collection of a busy server walks it.
  const wantsAdmin = values.admin !== undefined || values['admin-public'] !== undefined || values['admin-token-file'] !== undefined;
  const parseAdminArg = wantsAdmin ? (await import('./status.js')).parseAdminArg : undefined;
  const adminArg = parseAdminArg && take(() => parseAdminArg(values.admin, values['admin-public'], values['admin-token-file']));
  if (values.config !== undefined) {
    const mixed = ['host', 'port', 'unix', 'exec', 'model', 'max-conns'].filter((k) => values[k as keyof typeof values] !== undefined);
    if (positionals.length > 0 || mixed.length > 0) {
      problems.push(`${command}: --config FILE names the services and addresses; drop ${[...mixed.map((k) => `--${k}`), ...positionals].join(' ')}`);
    }
    return done({ values, format, config: values.config, adminArg });
  }
  if (positionals.length > 1 && !values.exec) problems.push(`${command}: one service expected, got ${positionals.join(' ')}`);
  if (values.handler !== undefined && (positionals.length > 0 || values.exec)) {
    problems.push(`${command}: --handler replaces SERVICE and --exec; give one of them`);
  }
  // The table's numbers and choices given as flags, each checked as the table says (as config files are).
  const fromFlags: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(OPTIONS) as Array<[OptionName, OptionSpec]>) {
    const text = o.flag === undefined ? undefined : values[o.flag as keyof ServeFlags];
    if (text === undefined || typeof text !== 'string' || (o.scope !== 'server' && name !== 'maxReply')) continue;
    if (o.kind === 'integer' || o.kind === 'seconds') fromFlags[name] = take(() => parseFlag(name as NumericOptionName, text));
    else if (o.kind === 'choice') fromFlags[name] = take(() => checkChoice(`--${o.flag}`, text, choicesOf(o)));
  }
  // The TLS rows' files, lists and words as given (checked by the server: resolveTls).
  for (const name of ['tlsCert', 'tlsKey', 'tlsCa', 'tlsCiphers', 'tlsSni', 'tlsAlpn'] as const) {
    const value = values[OPTIONS[name].flag];
    if (value !== undefined) fromFlags[name] = value;
  }
  const { maxReply, ...numbers } = fromFlags as Partial<ServerOptions> & { maxReply?: number };
  const serviceName = positionals[0] ?? OPTIONS.service.default;
  if (values.unix !== undefined && (values.host !== undefined || values.port !== undefined)) {
    problems.push(`${command}: --unix PATH replaces --host and --port; give one or the other`);
  }
  if (values.unix === undefined && (values['unix-mode'] !== undefined || values['unix-owner'] !== undefined)) {
    problems.push(`${command}: ${values['unix-mode'] !== undefined ? '--unix-mode' : '--unix-owner'} needs --unix PATH`);
  }
  const options: ServerOptions = {
    ...numbers,
    host: values.host,
    ...(values.unix !== undefined && { path: take(() => checkUnixPath(values.unix, '--unix')) }),
    ...(values['unix-mode'] !== undefined && { unixMode: take(() => (parseUnixMode(values['unix-mode'], '--unix-mode'), values['unix-mode'])) }),
    ...(values['unix-owner'] !== undefined && { unixOwner: take(() => (unixOwner(values['unix-owner'], '--unix-owner'), values['unix-owner'])) }),
    service:
      values.handler !== undefined
        ? { name: 'handler', handler: values.handler }
        : maxReply !== undefined
          ? { name: serviceName, options: { maxReply } }
          : serviceName,
    proxyProtocol: values['proxy-protocol'] ?? OPTIONS.proxyProtocol.default,
    ...take(() => proxyTrustFlags(values['proxy-protocol'], values['proxy-from'], values['proxy-untrusted'])),
    ...take(() => superServerOptions(values, argv, positionals)),
  };
  if (!values.exec && values.handler === undefined && !serviceNames().includes(serviceName)) {
    problems.push(`${command}: unknown service ${JSON.stringify(serviceName)} (known: ${serviceNames().join(', ')})`);
  }
  return done({ values, format, options, adminArg });
}

export async function serve(argv: string[]): Promise<number> {
  const { values, format, config, options, adminArg } = await parseServeArgs(argv);
  if (values.help) {
    process.stdout.write(`${serveHelp}\n`);
    return 0;
  }
  // A pid file that cannot be written is refused before anything is bound (as `tcpkit check` refuses it).
  if (values['pid-file'] !== undefined) checkPidFile(values['pid-file']);
  // A log target that fails (EPIPE, ENOSPC, EAGAIN) drops lines; it never stops the server.
  containStderrErrors();
  // `pidof tcpkit`, `pgrep -x tcpkit` and ps name the server, not `node` (src/process-title.ts).
  setProcessTitle('serve', argv);
  // This process is ours (the library's listen() leaves the host's descriptors alone): the descriptors
  // it inherited (a shell's or supervisor's pipes) must not reach a child or an exec'd program.
  closeOnExecInherited();
  const log = eventWriter(format, values.quiet ?? false, values['log-timestamps'] ?? false);
  if (config !== undefined || !options) {
    return serveConfig(config!, values, {
      printPort: values['print-port'] ?? false,
      log,
      admin: adminArg,
      format,
      pidFile: values['pid-file'],
    });
  }
  // Inherited sockets first (socket activation, or a restarting tcpkit), then --fd, then --host/--port.
  const notifyFd = takeNotifyFd();
  const inherited = chooseSocket(listenFds(), values['fd-name']);
  if (inherited) options.fd = inherited.fd;

  // Everything that depends on --user is checked before binding: an unknown user, a program it cannot run.
  const ids = checkUserFlags(values, options.service);

  const server = createServer(options);
  server.on('event', log);
  // Bind first (a port below 1024 needs root), then run as --user/--group before any
  // worker, spare child or thread starts; the admin endpoint (and its state file) comes after.
  const local = await server.listen({ beforeServe: () => void dropPrivileges(ids.user, ids.group) });
  let admin = adminArg && (await (await import('./status.js')).startAdminFromArg(server, adminArg, format));
  const pidFile = values['pid-file'];
  await writePidFileOrRelease(pidFile, async () => {
    await server.destroy();
    await admin?.close();
  });
  const done = (code: number) => {
    if (pidFile !== undefined) removePidFile(pidFile);
    return code;
  };

  return new Promise<number>((resolveExit) => {
    const resolve = (code: number) => resolveExit(done(code));
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals === 1) {
        void server.close({ signal }).then(() => admin?.close()).then(() => resolve(0));
      } else {
        // A second signal: stop waiting for the grace period.
        void server.destroy();
      }
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // SIGHUP under TLS: read the certificates and keys again (logged `reload ok` or `reload failed`).
    if (server.options.tls) process.on('SIGHUP', () => {
      try {
        server.reloadTls();
      } catch {
        // logged; the certificates in use stay
      }
    });
    // SIGUSR2: hand the listening socket to a new tcpkit; a failure is logged and we go on serving.
    let restarting = false;
    process.on('SIGUSR2', () => {
      if (signals > 0 || restarting) return;
      restarting = true;
      void (async () => {
        // A fixed admin port must be free for the successor's own admin endpoint.
        if (admin && adminArg && adminArg.port !== 0) {
          await admin.close();
          admin = undefined;
        }
        try {
          await server.handOver({ name: inherited?.name });
          await admin?.close();
          resolve(0);
        } catch {
          // Logged as `restart state failed`; serve on, with the admin endpoint back.
          if (!admin && adminArg) admin = await (await import('../status/admin.js')).startAdmin(server, adminArg).catch(() => undefined);
          restarting = false;
        }
      })();
    });
    // Only now: a script may signal the server the moment it reads the port.
    // A UNIX socket has no port: its address (`unix:/run/x.sock`) is the line.
    if (values['print-port']) process.stdout.write(`${local.family === 'unix' ? formatEndpoint(local) : local.port}\n`);
    if (notifyFd !== undefined) notifyReady(notifyFd);
  });
}
