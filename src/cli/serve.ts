/**
 * `tcpkit serve [SERVICE]`: argv → createServer, logs to stderr, signals → close.
 */
import { createServer, type ServerOptions } from '../server.js';
import { containStderrErrors } from '../log.js';
import { setProcessTitle } from '../process-title.js';
import { modelNames } from '../models/index.js';
import { serviceNames } from '../services/index.js';
import { UsageError } from '../errors.js';
import { chooseSocket, listenFds } from '../net/activation.js';
import { closeOnExecInherited } from '../net/fdutil.js';
import { proxyTrust } from '../net/proxy-gate.js';
import { notifyReady, takeNotifyFd } from '../net/restart.js';
import { choiceOption, intOption, parse } from './args.js';
import { ACCEPT_MODES, checkChoice, DEFAULT_BACKLOG, DEFAULT_PORT, MAX_SECONDS, parseFlag } from '../options.js';
import type { AdminArg } from './status.js';
import { checkUserFlags, eventWriter, serveConfig, superHelp, superOptions, superServerOptions } from './superserve.js';
import { dropPrivileges } from '../super/privileges.js';

export const serveHelp = `usage: tcpkit serve [SERVICE] [options]

Serve SERVICE (default: echo) on a TCP port.

  --host ADDR             address to bind (IPv4/IPv6 literal, [IPv6], or name; default 0.0.0.0)
  -p, --port PORT         port to bind (default ${DEFAULT_PORT}; 0: the kernel picks)
  --backlog N             listen(2) backlog (default ${DEFAULT_BACKLOG})
  --print-port            print the bound port as the first line of stdout
  --model NAME            concurrency model: ${modelNames().join(', ')} (default fork)
  -c, --max-conns N       concurrent connections; more wait in the backlog (default 40)
  --grace SECONDS         on SIGTERM/SIGINT, let connections finish this long (default 10; at most ${MAX_SECONDS})
  --workers N             prefork/threads: workers in the pool (default: the CPU count)
  --spare N               fork: children started ahead of need, each serves one connection (default 0)
  --accept MODE           prefork: shared (workers accept; default) or pass (server accepts, passes the descriptor)
  --max-conns-per-worker K  prefork/threads: recycle a worker after K connections (default 0: never)
  --max-reply BYTES       bench: largest reply a client may ask for (default 16777216)
  --handler FILE          serve with FILE's exported function of a connection instead of SERVICE
  --fd N                  serve on the inherited listening descriptor N instead of binding
  --fd-name NAME          with socket activation passing several sockets: the one named NAME
  --proxy-protocol        expect a PROXY protocol header (v1 or v2) on every connection:
                          the client it names becomes the peer (logs, rules, TCPREMOTEIP)
  --proxy-timeout SECONDS time a connection has to send its PROXY header (default 5)
  --proxy-from ADDR[/LEN] only this peer (a load balancer) may send a PROXY header; repeatable
                          (default: every peer may); others are refused (reason proxy-untrusted)
  --proxy-untrusted MODE  a peer not in --proxy-from: refuse (default) or direct (served as
                          itself, no header read)
  --log-format FORMAT     text (default) or json
  --admin HOST:PORT       serve /status, /metrics and the live dashboard there (loopback only; off by default;
                          with --config, one endpoint for every service)
  --admin-public          allow a non-loopback --admin address (it has no authentication)
  --admin-token-file FILE require "Authorization: Bearer TOKEN" (TOKEN: FILE's first line) on every
                          admin request; allows a non-loopback --admin address
  -q, --quiet             log only errors and lifecycle, not each connection
${superHelp}
  -h, --help              this text

Socket activation: with LISTEN_FDS/LISTEN_PID set for this process (systemd, systemd-socket-activate)
tcpkit serves on the passed socket; it takes precedence over --fd, which takes precedence over
--host/--port. SIGUSR2 restarts without downtime: a new tcpkit with the same arguments takes over
the listening socket, then this one stops accepting, drains and exits 0 (with --config, SIGUSR2 is
logged and ignored; SIGHUP reloads the file).

Services: ${serviceNames().join(', ')}.
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
  const mode = choiceOption('proxy-untrusted', untrusted, ['refuse', 'direct'] as const);
  if (mode !== undefined) out.proxyUntrusted = mode;
  return out;
}

/** The flags of `serve` (and of `check`, which takes the same). */
const serveFlags = {
  host: { type: 'string' },
  port: { type: 'string', short: 'p' },
  backlog: { type: 'string' },
  'print-port': { type: 'boolean' },
  model: { type: 'string' },
  'max-conns': { type: 'string', short: 'c' },
  grace: { type: 'string' },
  workers: { type: 'string' },
  spare: { type: 'string' },
  accept: { type: 'string' },
  'max-conns-per-worker': { type: 'string' },
  'max-reply': { type: 'string' },
  handler: { type: 'string' },
  fd: { type: 'string' },
  'fd-name': { type: 'string' },
  'proxy-protocol': { type: 'boolean' },
  'proxy-timeout': { type: 'string' },
  'proxy-from': { type: 'string', multiple: true },
  'proxy-untrusted': { type: 'string' },
  'log-format': { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  admin: { type: 'string' },
  'admin-public': { type: 'boolean' },
  'admin-token-file': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  ...superOptions,
} as const;

/** What `serve`'s arguments say, checked, before anything is bound or changed in this process. */
export interface ServeArgs {
  values: ReturnType<typeof parseServeFlags>['values'];
  format: 'text' | 'json';
  /** `--config FILE`: the services come from the file. */
  config?: string;
  /** Without --config: the server's options (an inherited socket not yet applied). */
  options?: ServerOptions;
  adminArg: AdminArg | undefined;
}

function parseServeFlags(command: string, argv: string[]) {
  return parse(command, argv, serveFlags);
}

/**
 * argv → checked options, as `serve` and `check` both need them: every usage error
 * (a flag, a number beyond its maximum, an unknown service, a bad CIDR) throws here.
 */
export async function parseServeArgs(argv: string[], command = 'serve'): Promise<ServeArgs> {
  const { values, positionals } = parseServeFlags(command, argv);
  const format = choiceOption('log-format', values['log-format'], ['text', 'json'] as const) ?? 'text';
  // The admin endpoint's modules (HTTP, metrics) load only when asked for: a plain server's heap stays
  // small, and every garbage collection of a busy server walks it.
  const wantsAdmin = values.admin !== undefined || values['admin-public'] !== undefined || values['admin-token-file'] !== undefined;
  const adminArg = wantsAdmin ? (await import('./status.js')).parseAdminArg(values.admin, values['admin-public'], values['admin-token-file']) : undefined;
  if (values.config !== undefined) {
    const mixed = ['host', 'port', 'exec', 'model', 'max-conns'].filter((k) => values[k as keyof typeof values] !== undefined);
    if (positionals.length > 0 || mixed.length > 0) {
      throw new UsageError(`serve: --config FILE names the services and addresses; drop ${[...mixed.map((k) => `--${k}`), ...positionals].join(' ')}`);
    }
    return { values, format, config: values.config, adminArg };
  }
  if (positionals.length > 1 && !values.exec) throw new UsageError(`serve: one service expected, got ${positionals.join(' ')}`);
  if (values.handler !== undefined && (positionals.length > 0 || values.exec)) {
    throw new UsageError(`serve: --handler replaces SERVICE and --exec; give one of them`);
  }
  const maxReply = intOption('max-reply', values['max-reply'], { min: 1, max: 2 ** 40 });
  const options: ServerOptions = {
    host: values.host,
    // Numbers and choices are checked by the option table (src/options.ts), as config files are.
    port: parseFlag('port', values.port),
    backlog: parseFlag('backlog', values.backlog),
    model: choiceOption('model', values.model, modelNames()),
    service:
      values.handler !== undefined
        ? { name: 'handler', handler: values.handler }
        : maxReply !== undefined
          ? { name: positionals[0] ?? 'echo', options: { maxReply } }
          : (positionals[0] ?? 'echo'),
    maxConns: parseFlag('maxConns', values['max-conns']),
    grace: parseFlag('grace', values.grace),
    workers: parseFlag('workers', values.workers),
    spare: parseFlag('spare', values.spare),
    accept: checkChoice('--accept', values.accept, ACCEPT_MODES),
    maxConnsPerWorker: parseFlag('maxConnsPerWorker', values['max-conns-per-worker']),
    fd: parseFlag('fd', values.fd),
    proxyProtocol: values['proxy-protocol'] ?? false,
    proxyTimeout: parseFlag('proxyTimeout', values['proxy-timeout']),
    ...proxyTrustFlags(values['proxy-protocol'], values['proxy-from'] as string[] | undefined, values['proxy-untrusted']),
    ...superServerOptions(values, argv, positionals),
  };
  const serviceName = typeof options.service === 'string' ? options.service : options.service?.handler ? undefined : options.service?.name;
  if (!values.exec && serviceName !== undefined && !serviceNames().includes(serviceName)) {
    throw new UsageError(`serve: unknown service ${JSON.stringify(serviceName)} (known: ${serviceNames().join(', ')})`);
  }
  return { values, format, options, adminArg };
}

export async function serve(argv: string[]): Promise<number> {
  const { values, format, config, options, adminArg } = await parseServeArgs(argv);
  if (values.help) {
    process.stdout.write(`${serveHelp}\n`);
    return 0;
  }
  // A log target that fails (EPIPE, ENOSPC, EAGAIN) drops lines; it never stops the server.
  containStderrErrors();
  // `pidof tcpkit`, `pgrep -x tcpkit` and ps name the server, not `node` (src/process-title.ts).
  setProcessTitle('serve', argv);
  // This process is ours (the library's listen() leaves the host's descriptors alone): the descriptors
  // it inherited (a shell's or supervisor's pipes) must not reach a child or an exec'd program.
  closeOnExecInherited();
  if (config !== undefined || !options) {
    return serveConfig(config!, values, {
      printPort: values['print-port'] ?? false,
      log: eventWriter(format, values.quiet ?? false),
      admin: adminArg,
      format,
    });
  }
  // Inherited sockets first (socket activation, or a restarting tcpkit), then --fd, then --host/--port.
  const notifyFd = takeNotifyFd();
  const inherited = chooseSocket(listenFds(), values['fd-name']);
  if (inherited) options.fd = inherited.fd;

  // Everything that depends on --user is checked before binding: an unknown user, a program it cannot run.
  const ids = checkUserFlags(values, options.service);

  const server = createServer(options);
  server.on('event', eventWriter(format, values.quiet ?? false));
  // Bind first (a port below 1024 needs root), then run as --user/--group before any
  // worker, spare child or thread starts; the admin endpoint (and its state file) comes after.
  const local = await server.listen({ beforeServe: () => void dropPrivileges(ids.user, ids.group) });
  let admin = adminArg && (await (await import('./status.js')).startAdminFromArg(server, adminArg, format));

  return new Promise<number>((resolve) => {
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
    if (values['print-port']) process.stdout.write(`${local.port}\n`);
    if (notifyFd !== undefined) notifyReady(notifyFd);
  });
}
