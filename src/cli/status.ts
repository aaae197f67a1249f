/**
 * `tcpkit status [--pid PID | --port PORT]`: argv → a status snapshot (from the
 * server's admin endpoint when it has one, else from /proc) → text or JSON.
 * Also the `--admin` glue that `tcpkit serve` uses.
 */
import { parseHostPort } from '../address.js';
import { InvalidOptionError, NotFoundError, UsageError } from '../errors.js';
import fs from 'node:fs';
import type { StatusSource } from '../status/source.js';
import { isLoopback, startAdmin, SNAPSHOT_MAX_SOCKETS, SNAPSHOT_MAX_TIME_WAIT, type AdminEndpoint } from '../status/admin.js';
import { listStates, readState } from '../status/discovery.js';
import { formatStatus } from '../status/format.js';
import { listPids, procAvailability, readProcess, type ProcInfo } from '../status/procfs.js';
import { PROCESS_NAME } from '../process-title.js';
import { collectStatus, listenerOf, type StatusSnapshot } from '../status/snapshot.js';
import { attachBytes, readSocketBytes } from '../status/tcpinfo.js';
import { intOption, parse } from './args.js';

/** The text of `tcpkit status --help`. */
export const statusHelp = `usage: tcpkit status [--pid PID | --port PORT] [options]

netstat -a and ps -o pid,ppid,stat,wchan in one view: the sockets (protocol,
Recv-Q, Send-Q, local and foreign address, TCP state, owning pid) and the processes
and threads (pid, ppid, state, wait channel, role, the connections each serves,
age, bytes in and out when the server reports them).

  --pid PID           this process and its descendants, and every socket on the
                      ports it listens on (TIME_WAIT included: those have no owner)
  --port PORT         every socket on PORT, and the processes of whoever listens on it
                      (without --pid or --port: the tcpkit server running on this
                      host, found by its process name; the others are named below it)
  --all               every TCP socket on this host (netstat -a), not only tcpkit's
  --admin ADDR        ask this admin endpoint (HOST:PORT or URL); by default a
                      tcpkit server started with --admin is found from its pid
  --admin-token-file FILE
                      the bearer token of an admin endpoint started with
                      --admin-token-file (FILE's first line)
  --json              print the snapshot as JSON
  --watch [SECONDS]   print again every SECONDS (default 1, at least 0.2)
  --count N           with --watch: stop after N views (default: until interrupted)
  --threads           list each process's kernel threads (/proc/PID/task)
  -h, --help          this text

At most ${SNAPSHOT_MAX_SOCKETS} sockets are listed (${SNAPSHOT_MAX_TIME_WAIT} in TIME_WAIT), as the admin
endpoint's snapshot; a note says how many more there are.
Linux only for sockets and processes (/proc); elsewhere only what an admin
endpoint reports is shown, and the output says so.
Exit codes: 0 success, 100 usage error, 111 no such process or admin endpoint failure.`;

/** Where admin endpoints are asked, and how long we wait. */
const FETCH_TIMEOUT_MS = 10_000;

/** util.parseArgs has no optional values: `--watch` alone means `--watch 1`. */
function normalizeWatch(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--watch') {
      const next = argv[i + 1];
      if (next !== undefined && /^\d+(\.\d+)?$/.test(next)) {
        out.push(`--watch=${next}`);
        i++;
      } else out.push('--watch=1');
    } else out.push(a);
  }
  return out;
}

function adminUrl(text: string): string {
  if (/^https?:\/\//.test(text)) return text.replace(/\/+$/, '');
  try {
    const { host, port } = parseHostPort(text, '127.0.0.1', 'admin');
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  } catch (err) {
    throw new UsageError(`status: --${(err as InvalidOptionError).message}`);
  }
}

async function fetchSnapshot(url: string, token: string | undefined): Promise<StatusSnapshot> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), headers });
  if (res.status === 401) throw new Error(`HTTP 401: ${token === undefined ? 'it wants a token: give --admin-token-file FILE' : 'the token was refused'}`);
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return (await res.json()) as StatusSnapshot;
}

interface Target {
  pid?: number;
  port?: number;
  admin?: string;
  /** --admin-token-file's token. */
  token?: string;
  /** --all: every TCP socket, not only tcpkit servers'. */
  all: boolean;
  threads: boolean;
}

/** Other tcpkit servers the default view names in notes; the rest are counted. 20. */
const MAX_OTHER_SERVERS = 20;

/** The same caps as the admin endpoint's snapshot: a busy host has hundreds of thousands of TIME_WAIT sockets. */
const BOUNDS = { maxTimeWait: SNAPSHOT_MAX_TIME_WAIT, maxSockets: SNAPSHOT_MAX_SOCKETS };

/** A `tcpkit serve` process: named `tcpkit` (src/process-title.ts), or an older one by its command line. */
function isServer(p: ProcInfo): boolean {
  return p.comm === PROCESS_NAME || /(^|\/)tcpkit(\.js)? serve\b/.test(p.cmdline);
}

/** Every tcpkit server on this host (not its children), oldest first: by process name and by state file. */
function findServers(): number[] {
  // Each process is read from /proc once (stat, cmdline, wchan); the parent test and the sort use that reading.
  const found = new Map<number, ProcInfo>();
  for (const pid of listPids()) {
    const p = readProcess(pid);
    if (p && isServer(p)) found.set(pid, p);
  }
  for (const s of listStates()) {
    const p = found.has(s.pid) ? undefined : readProcess(s.pid);
    if (p) found.set(s.pid, p);
  }
  // A server's own descendants (a successor during SIGUSR2, a `serve` run by --exec) are shown in its tree.
  const top = [...found.values()].filter((p) => !found.has(p.ppid));
  return top.sort((a, b) => a.startedAt - b.startedAt || a.pid - b.pid).map((p) => p.pid);
}

/** One view, with the kernel's byte counts of each connection. */
async function take(t: Target): Promise<StatusSnapshot> {
  const snap = await view(t);
  // Elsewhere than Linux the admin endpoint's snapshot (bytes included) is all there is.
  if (!procAvailability().available) return snap;
  return attachBytes(snap, await readSocketBytes(snap.ports));
}

/** The admin endpoint's snapshot if there is one (falling back to /proc), else /proc. */
async function view(t: Target): Promise<StatusSnapshot> {
  let pid = t.pid;
  if (pid === undefined && t.port !== undefined) pid = listenerOf(t.port);
  let others: number[] = [];
  if (pid === undefined && t.port === undefined && t.admin === undefined && !t.all && procAvailability().available) {
    // By default, tcpkit's own sockets: the server on this host (netstat -a's every socket is --all).
    [pid, ...others] = findServers();
    if (pid === undefined) {
      const snap = collectStatus({ threads: t.threads, maxSockets: 0, maxTimeWait: 0 });
      snap.omitted = undefined;
      snap.notes = ['no tcpkit server is running on this host (tcpkit status --all lists every TCP socket)'];
      return snap;
    }
  }
  const snap = await viewOf({ ...t, pid });
  for (const o of others.slice(0, MAX_OTHER_SERVERS)) snap.notes.push(`another tcpkit server: pid ${o} (tcpkit status --pid ${o})`);
  if (others.length > MAX_OTHER_SERVERS) snap.notes.push(`and ${others.length - MAX_OTHER_SERVERS} more tcpkit servers`);
  return snap;
}

/** The view of one target: its admin endpoint's snapshot if there is one, else /proc. */
async function viewOf(t: Target): Promise<StatusSnapshot> {
  const pid = t.pid;
  let admin = t.admin;
  if (admin === undefined && pid !== undefined) {
    admin = readState(pid, { startedAt: readProcess(pid)?.startedAt })?.admin;
  }
  if (admin !== undefined) {
    try {
      const snap = await fetchSnapshot(admin, t.token);
      // Read /proc here rather than take the server's reading: inside the server the
      // parent is always running (it is answering us), not waiting as it otherwise would.
      if (!procAvailability().available || !snap.server) return snap;
      return collectStatus({ port: t.port, pid: pid ?? snap.server.pid, threads: t.threads, server: snap.server, ...BOUNDS });
    } catch (err) {
      if (t.admin !== undefined && t.pid === undefined && t.port === undefined) {
        throw new NotFoundError(`status: admin endpoint ${admin} did not answer (${(err as Error).message})`);
      }
      const snap = collectStatus({ pid, port: t.port, threads: t.threads, ...BOUNDS });
      snap.notes.unshift(`admin endpoint ${admin} did not answer (${(err as Error).message}); showing /proc only`);
      return snap;
    }
  }
  const snap = collectStatus({ pid, port: t.port, threads: t.threads, ...BOUNDS });
  if (t.pid === undefined && t.port === undefined) {
    for (const s of listStates()) snap.notes.push(`tcpkit server pid ${s.pid} on ${s.listen}, admin ${s.admin}: tcpkit status --pid ${s.pid}`);
  }
  return snap;
}

/** `tcpkit status ARGV`: print one view (or, with --watch, a bounded series); resolves the exit code. */
export async function status(argv: string[]): Promise<number> {
  const { values, positionals } = parse('status', normalizeWatch(argv), {
    pid: { type: 'string' },
    port: { type: 'string' },
    admin: { type: 'string' },
    'admin-token-file': { type: 'string' },
    all: { type: 'boolean' },
    json: { type: 'boolean' },
    watch: { type: 'string' },
    count: { type: 'string' },
    threads: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(`${statusHelp}\n`);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`status: unexpected argument ${positionals[0]} (see tcpkit status --help)`);
  if (values.pid !== undefined && values.port !== undefined) throw new UsageError('status: give --pid or --port, not both');
  if (values.all && (values.pid !== undefined || values.port !== undefined)) throw new UsageError('status: --all is every socket: give it without --pid or --port');
  const t: Target = {
    pid: intOption('pid', values.pid, { min: 1, max: 2 ** 22 }),
    port: intOption('port', values.port, { min: 1, max: 65535 }),
    admin: values.admin === undefined ? undefined : adminUrl(values.admin),
    token: values['admin-token-file'] === undefined ? undefined : readTokenFile(values['admin-token-file'], 'status'),
    all: values.all ?? false,
    threads: values.threads ?? false,
  };
  let watch: number | undefined;
  if (values.watch !== undefined) {
    watch = Number(values.watch);
    if (!/^\d+(\.\d+)?$/.test(values.watch) || watch < 0.2 || watch > 3600) {
      throw new UsageError(`--watch: must be a number of seconds from 0.2 to 3600, got ${JSON.stringify(values.watch)}`);
    }
  }
  const count = intOption('count', values.count, { min: 1, max: 1_000_000 });
  if (count !== undefined && watch === undefined) throw new UsageError('status: --count needs --watch');
  if (t.pid !== undefined && procAvailability().available && !readProcess(t.pid)) {
    throw new NotFoundError(`status: no process ${t.pid}`);
  }

  const print = (snap: StatusSnapshot) => {
    if (values.json) process.stdout.write(`${JSON.stringify(snap, null, watch === undefined ? 2 : 0)}\n`);
    else process.stdout.write(formatStatus(snap));
  };
  if (watch === undefined) {
    print(await take(t));
    return 0;
  }
  // Watch: a bounded loop (--count), or until SIGINT/SIGTERM; each view replaces the last on a terminal.
  let stop = false;
  let wake: (() => void) | undefined;
  const onSignal = () => {
    stop = true;
    wake?.();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (let i = 0; !stop && (count === undefined || i < count); i++) {
      const snap = await take(t);
      if (!values.json) {
        process.stdout.write(process.stdout.isTTY ? '\x1b[H\x1b[2J' : i > 0 ? '\n' : '');
        process.stdout.write(`${new Date(snap.time).toISOString()}  every ${watch}s\n`);
      }
      print(snap);
      if (count !== undefined && i + 1 >= count) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, watch! * 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return 0;
}

/** Parsed `--admin HOST:PORT` of `tcpkit serve`; checked before the server binds. */
export interface AdminArg {
  host: string;
  port: number;
  allowPublic: boolean;
  /** The bearer token read from --admin-token-file, if given. */
  token?: string;
}

/** Largest --admin-token-file read: a token is a line, not a document. */
const TOKEN_FILE_MAX = 4096;

/** Read --admin-token-file: its first line, trimmed; a usage error if missing, empty or too long. */
function readTokenFile(file: string, command = 'serve'): string {
  let text: string;
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      if (!fs.fstatSync(fd).isFile()) throw new UsageError(`${command}: --admin-token-file: ${file} is not a regular file`);
      const buf = Buffer.alloc(TOKEN_FILE_MAX + 1);
      const n = fs.readSync(fd, buf, 0, buf.length, 0);
      if (n > TOKEN_FILE_MAX) throw new UsageError(`${command}: --admin-token-file: ${file} is longer than ${TOKEN_FILE_MAX} bytes`);
      text = buf.subarray(0, n).toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${command}: --admin-token-file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const token = text.split('\n')[0]!.trim();
  if (token === '' || /\s/.test(token)) throw new UsageError(`${command}: --admin-token-file: ${file} must hold one token (a line without spaces)`);
  return token;
}

/** Check `serve --admin ADDR [--admin-public]`; undefined when --admin is absent. */
export function parseAdminArg(value: string | undefined, allowPublic: boolean | undefined, tokenFile?: string): AdminArg | undefined {
  if (value === undefined) {
    if (allowPublic) throw new UsageError('serve: --admin-public needs --admin HOST:PORT');
    if (tokenFile !== undefined) throw new UsageError('serve: --admin-token-file needs --admin HOST:PORT');
    return undefined;
  }
  const token = tokenFile === undefined ? undefined : readTokenFile(tokenFile);
  let parsed: { host: string; port: number };
  try {
    parsed = parseHostPort(value, '127.0.0.1', 'admin');
  } catch (err) {
    throw new UsageError(`serve: --${(err as InvalidOptionError).message}`);
  }
  if (!allowPublic && token === undefined && !isLoopback(parsed.host)) {
    throw new UsageError(
      `serve: --admin: ${parsed.host} is not a loopback address; the admin endpoint has no authentication (add --admin-token-file FILE, or --admin-public to serve it there anyway)`,
    );
  }
  return { ...parsed, allowPublic: allowPublic ?? false, ...(token !== undefined && { token }) };
}

/**
 * Start the admin endpoint for `serve` (a Server, or the Supervisor of `--config`) and
 * log its URL (`admin URL pid P`, or the same as JSON); on failure the server is destroyed first.
 */
export async function startAdminFromArg(
  server: StatusSource & { destroy(): Promise<unknown> },
  arg: AdminArg,
  format: 'text' | 'json' = 'text',
): Promise<AdminEndpoint> {
  try {
    const admin = await startAdmin(server, arg);
    const url = `${admin.url}/`;
    process.stderr.write(
      format === 'json'
        ? `${JSON.stringify({ time: new Date().toISOString(), type: 'admin', url, pid: process.pid })}\n`
        : `admin ${url} pid ${process.pid}\n`,
    );
    return admin;
  } catch (err) {
    await server.destroy();
    throw err;
  }
}
