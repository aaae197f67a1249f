/**
 * `tcpkit serve [SERVICE]`: argv → createServer, logs to stderr, signals → close.
 */
import { createServer, type ServerOptions } from '../server.js';
import { containStderrErrors } from '../log.js';
import { modelNames } from '../models/index.js';
import { serviceNames } from '../services/index.js';
import { UsageError } from '../errors.js';
import { chooseSocket, listenFds } from '../net/activation.js';
import { closeOnExecInherited } from '../net/fdutil.js';
import { notifyReady, takeNotifyFd } from '../net/restart.js';
import { choiceOption, intOption, parse } from './args.js';
import { ACCEPT_MODES, checkChoice, DEFAULT_BACKLOG, DEFAULT_PORT, MAX_SECONDS, parseFlag } from '../options.js';
import { parseAdminArg, startAdminFromArg } from './status.js';
import { dropFromFlags, eventWriter, serveConfig, superHelp, superOptions, superServerOptions } from './superserve.js';
import { startAdmin } from '../status/admin.js';

export const serveHelp = `usage: tcpkit serve [SERVICE] [options]

Serve SERVICE (default: echo) on a TCP port.

  --host ADDR             address to bind (IPv4/IPv6 literal or name; default 0.0.0.0)
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
  --log-format FORMAT     text (default) or json
  --admin HOST:PORT       serve /status, /metrics and the live dashboard there (loopback only; off by default)
  --admin-public          allow a non-loopback --admin address (it has no authentication)
  -q, --quiet             log only errors and lifecycle, not each connection
${superHelp}
  -h, --help              this text

Socket activation: with LISTEN_FDS/LISTEN_PID set for this process (systemd, systemd-socket-activate)
tcpkit serves on the passed socket; it takes precedence over --fd, which takes precedence over
--host/--port. SIGUSR2 restarts without downtime: a new tcpkit with the same arguments takes over
the listening socket, then this one stops accepting, drains and exits 0.

Services: ${serviceNames().join(', ')}.
Exit codes: 0 after a clean shutdown, 100 usage error, 111 system failure (cannot bind).`;

export async function serve(argv: string[]): Promise<number> {
  const { values, positionals } = parse('serve', argv, {
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
    'log-format': { type: 'string' },
    quiet: { type: 'boolean', short: 'q' },
    admin: { type: 'string' },
    'admin-public': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    ...superOptions,
  });
  if (values.help) {
    process.stdout.write(`${serveHelp}\n`);
    return 0;
  }
  const format = choiceOption('log-format', values['log-format'], ['text', 'json'] as const) ?? 'text';
  // A log target that fails (EPIPE, ENOSPC, EAGAIN) drops lines; it never stops the server.
  containStderrErrors();
  // This process is ours (the library's listen() leaves the host's descriptors alone): the descriptors
  // it inherited (a shell's or supervisor's pipes) must not reach a child or an exec'd program.
  closeOnExecInherited();
  if (values.config !== undefined) {
    const mixed = ['host', 'port', 'exec', 'model', 'max-conns', 'admin'].filter((k) => values[k as keyof typeof values] !== undefined);
    if (positionals.length > 0 || mixed.length > 0) {
      throw new UsageError(`serve: --config FILE names the services and addresses; drop ${[...mixed.map((k) => `--${k}`), ...positionals].join(' ')}`);
    }
    return serveConfig(values.config, values, { printPort: values['print-port'] ?? false, log: eventWriter(format, values.quiet ?? false) });
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
    ...superServerOptions(values, argv, positionals),
  };
  // Inherited sockets first (socket activation, or a restarting tcpkit), then --fd, then --host/--port.
  const notifyFd = takeNotifyFd();
  const inherited = chooseSocket(listenFds(), values['fd-name']);
  if (inherited) options.fd = inherited.fd;
  const serviceName = typeof options.service === 'string' ? options.service : options.service?.handler ? undefined : options.service?.name;
  if (!values.exec && serviceName !== undefined && !serviceNames().includes(serviceName)) {
    throw new UsageError(`serve: unknown service ${JSON.stringify(serviceName)} (known: ${serviceNames().join(', ')})`);
  }
  const adminArg = parseAdminArg(values.admin, values['admin-public']);

  const server = createServer(options);
  server.on('event', eventWriter(format, values.quiet ?? false));
  const local = await server.listen();
  let admin = adminArg && (await startAdminFromArg(server, adminArg, format));
  // Bind everything first (a port below 1024 needs root), then run as --user/--group.
  try {
    dropFromFlags(values);
  } catch (err) {
    await admin?.close();
    await server.destroy();
    throw err;
  }

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
          if (!admin && adminArg) admin = await startAdmin(server, adminArg).catch(() => undefined);
          restarting = false;
        }
      })();
    });
    // Only now: a script may signal the server the moment it reads the port.
    if (values['print-port']) process.stdout.write(`${local.port}\n`);
    if (notifyFd !== undefined) notifyReady(notifyFd);
  });
}
