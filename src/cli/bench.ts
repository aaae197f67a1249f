/**
 * `tcpkit bench [HOST] [PORT]`: argv → runBench, a progress bar on a terminal,
 * the report on stdout (text or `--json`).
 */
import net from 'node:net';
import { isUnixAddress, parsePort, SERV_PORT, UNIX_PREFIX } from '../address.js';
import { BENCH_MODES, formatReport, parseSize, ProgressBar, runBench, type BenchMode, type BenchOptions } from '../bench/index.js';
import { InvalidOptionError, UsageError } from '../errors.js';
import { choiceOption, intOption, parse, secondsOption } from './args.js';

/** Idle connections per source address when --source/--sources is not given (under the ~28k ephemeral ports). */
const IDLE_PER_SOURCE = 20_000;

export const benchHelp = `usage: tcpkit bench [HOST] [PORT] [options]
       tcpkit bench unix:PATH [options]

Load a server at HOST:PORT (default 127.0.0.1:${SERV_PORT}) and report connections/s,
latency p50/p99/max, throughput, errors by code and, with --server-pid, the server's
CPU (its children included) and memory.

  --mode MODE          requests (default): UNP ch. 30's client: each connection sends "K\\n"
                       to the bench service (tcpkit serve bench) and reads exactly K bytes;
                       echo: each connection sends --lines lines of --bytes bytes, one at a
                       time, and checks each comes back; bulk: --size bytes through one
                       connection per client, every byte checked; idle: see --idle
  --clients C          concurrent clients (default 1; idle: connects in flight, default 100)
  --conns M            connections per client, one after another (default 100)
  --bytes K            requests: bytes per reply (default 4000); echo: bytes per line (default 64)
  --lines L            echo: lines per connection (default 1)
  --size SIZE          bulk: bytes per client, e.g. 1GiB (default 64MiB)
  --idle N             hold N idle connections (implies --mode idle)
  --hold SECONDS       idle: how long to hold them once open (default 1)
  --source LIST        local addresses to connect from, in turn (comma-separated)
  --sources N          connect from 127.0.0.1 .. 127.0.0.N (idle default: one per ${IDLE_PER_SOURCE} connections)
  --duration SECONDS   cap on the whole run (default 120); the report then says truncated
  --timeout SECONDS    a connection making no progress this long fails ETIMEDOUT (default 10)
  --server-pid PID     measure this server's CPU (utime+stime+cutime+cstime) and memory
  --tls                speak TLS, a full handshake per connection (the server's certificate
                       is not checked); with --resume, each connection resumes the session
                       (ticket) the previous one got: handshakes/s with and without resumption
  --resume             with --tls: resume sessions
  --json               print the report as JSON
                       (SIGINT/SIGTERM end the run early and still print the report;
                       idle mode then releases its connections and reports them held)
  -q, --quiet          no progress bar
  -h, --help           this text

Every run is bounded in count (the options above have maxima) and in time (--duration).
Holding many connections needs \`ulimit -n\` raised on both sides.
Exit codes: 0 no connection failed, 100 usage error, 111 some connections failed.`;

/** The CLI's name for a library option, so messages name what the user typed. */
const FLAG: Record<string, string> = { serverPid: '--server-pid', sources: '--source', port: 'PORT', host: 'HOST' };

function sizeOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  try {
    return parseSize(value, name);
  } catch {
    throw new UsageError(`bench: --${name}: expected a byte count such as 4000, 64KiB or 1GiB, got ${JSON.stringify(value)}`);
  }
}

export async function bench(argv: string[]): Promise<number> {
  const { values, positionals } = parse('bench', argv, {
    mode: { type: 'string' },
    clients: { type: 'string' },
    conns: { type: 'string' },
    bytes: { type: 'string' },
    lines: { type: 'string' },
    size: { type: 'string' },
    idle: { type: 'string' },
    hold: { type: 'string' },
    source: { type: 'string' },
    sources: { type: 'string' },
    duration: { type: 'string' },
    timeout: { type: 'string' },
    'server-pid': { type: 'string' },
    json: { type: 'boolean' },
    tls: { type: 'boolean' },
    resume: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(`${benchHelp}\n`);
    return 0;
  }
  if (positionals.length > 2) throw new UsageError(`bench: expected [HOST] [PORT], got ${positionals.join(' ')}`);
  // `unix:PATH`: a UNIX-domain socket instead of HOST PORT.
  const unixPath = positionals[0] !== undefined && isUnixAddress(positionals[0]) ? positionals[0].slice(UNIX_PREFIX.length) : undefined;
  if (unixPath !== undefined && positionals.length > 1) throw new UsageError(`bench: unix:PATH takes no PORT, got ${positionals[1]}`);
  if (unixPath !== undefined && (values.source !== undefined || values.sources !== undefined)) throw new UsageError('bench: --source and --sources do not apply to a UNIX socket');
  const host = unixPath !== undefined ? '127.0.0.1' : (positionals[0] ?? '127.0.0.1');
  let port: number;
  try {
    port = parsePort(unixPath !== undefined ? SERV_PORT : (positionals[1] ?? SERV_PORT), 'PORT');
  } catch (err) {
    throw new UsageError(`bench: ${(err as InvalidOptionError).message}`);
  }
  if (port === 0) throw new UsageError('bench: PORT: must be an integer from 1 to 65535, got "0"');

  const idle = intOption('idle', values.idle, { min: 1, max: 1_000_000 });
  const mode: BenchMode = choiceOption('mode', values.mode, BENCH_MODES) ?? (idle !== undefined ? 'idle' : 'requests');
  if (idle !== undefined && mode !== 'idle') throw new UsageError(`bench: --idle: only with --mode idle, not --mode ${mode}`);
  if (mode === 'idle' && idle === undefined) throw new UsageError('bench: --idle: --mode idle needs --idle N');

  let sources: string[] | undefined;
  if (values.source !== undefined && values.sources !== undefined) {
    throw new UsageError('bench: --source and --sources: give one or the other');
  }
  if (values.source !== undefined) {
    sources = values.source.split(',').map((s) => s.trim());
    const bad = sources.find((s) => net.isIP(s) === 0);
    if (bad !== undefined) throw new UsageError(`bench: --source: not an IP address: ${JSON.stringify(bad)}`);
  }
  const count = intOption('sources', values.sources, { min: 1, max: 254 });
  if (count !== undefined) sources = Array.from({ length: count }, (_, i) => `127.0.0.${i + 1}`);
  if (sources === undefined && mode === 'idle' && idle! > IDLE_PER_SOURCE && net.isIPv4(host) && host.startsWith('127.')) {
    sources = Array.from({ length: Math.min(254, Math.ceil(idle! / IDLE_PER_SOURCE)) }, (_, i) => `127.0.0.${i + 1}`);
  }

  const options: BenchOptions = {
    ...(unixPath !== undefined && { path: unixPath }),
    host,
    port,
    mode,
    clients: intOption('clients', values.clients, { min: 1, max: 100_000 }),
    conns: intOption('conns', values.conns, { min: 1, max: 10_000_000 }),
    bytes: sizeOption('bytes', values.bytes),
    lines: intOption('lines', values.lines, { min: 1, max: 1_000_000 }),
    size: sizeOption('size', values.size),
    idle,
    hold: secondsOption('hold', values.hold),
    sources,
    duration: secondsOption('duration', values.duration),
    timeout: secondsOption('timeout', values.timeout),
    serverPid: intOption('server-pid', values['server-pid'], { min: 1, max: 2 ** 31 - 1 }),
    tls: values.tls ? (values.resume ? 'resume' : 'full') : 'off',
  };
  if (values.resume && !values.tls) throw new UsageError('bench: --resume needs --tls');

  const bar = !values.quiet && process.stderr.isTTY ? new ProgressBar(process.stderr) : undefined;
  // The first SIGINT/SIGTERM ends the run early and still prints its report; idle mode
  // then reports the connections it held. A second one is not caught (default: exit).
  const interrupt = new AbortController();
  const onSignal = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let report;
  try {
    report = await runBench(options, { onProgress: bar && ((p) => bar.update(p)), signal: interrupt.signal });
  } catch (err) {
    if (err instanceof InvalidOptionError) {
      const flag = FLAG[err.option] ?? `--${err.option}`;
      throw new UsageError(`bench: ${flag}: ${err.message.slice(err.option.length + 2)}`);
    }
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    bar?.clear();
  }
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
  return report.connections.failed === 0 ? 0 : 111;
}
