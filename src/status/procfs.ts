/**
 * The /proc reader: what `netstat -a` and `ps -o pid,ppid,stat,wchan` read, as
 * plain data. Linux only; everywhere else `procAvailability()` says why nothing
 * can be read, and every reader returns empty results rather than throwing.
 *
 *   /proc/net/tcp, tcp6   one line per TCP socket: addresses in hex, state code,
 *                         tx_queue:rx_queue (Send-Q/Recv-Q), inode
 *   /proc/PID/fd/N        `socket:[INODE]` links: which process holds which socket
 *   /proc/PID/stat        state, ppid, start time (clock ticks since boot), threads
 *   /proc/PID/wchan       the kernel function a sleeping process waits in
 *   /proc/PID/task/TID    the same for each thread
 *
 * Every read races with processes exiting and sockets closing: a file that
 * vanishes between readdir and read is skipped, never an error.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { Endpoint } from '../address.js';

/** Where procfs is mounted. Default `/proc`; tests and containers may point elsewhere. */
export const PROC_ROOT = '/proc';

/**
 * Clock ticks per second (sysconf(_SC_CLK_TCK)), the unit of start times in
 * /proc/PID/stat. Node cannot call sysconf; USER_HZ is 100 on every Linux
 * architecture Node runs on (x86, arm, arm64, ppc64, s390x).
 */
export const CLOCK_TICKS = 100;

/** TCP states as the kernel numbers them (include/net/tcp_states.h), named as netstat names them. */
export const TCP_STATES: Readonly<Record<number, TcpState>> = {
  0x01: 'ESTABLISHED',
  0x02: 'SYN_SENT',
  0x03: 'SYN_RECV',
  0x04: 'FIN_WAIT1',
  0x05: 'FIN_WAIT2',
  0x06: 'TIME_WAIT',
  0x07: 'CLOSE',
  0x08: 'CLOSE_WAIT',
  0x09: 'LAST_ACK',
  0x0a: 'LISTEN',
  0x0b: 'CLOSING',
  0x0c: 'NEW_SYN_RECV',
};

/** A TCP state name, as netstat prints it. */
export type TcpState =
  | 'ESTABLISHED'
  | 'SYN_SENT'
  | 'SYN_RECV'
  | 'FIN_WAIT1'
  | 'FIN_WAIT2'
  | 'TIME_WAIT'
  | 'CLOSE'
  | 'CLOSE_WAIT'
  | 'LAST_ACK'
  | 'LISTEN'
  | 'CLOSING'
  | 'NEW_SYN_RECV'
  | 'UNKNOWN';

/** One line of /proc/net/tcp or tcp6. */
export interface TcpSocket {
  /** `tcp` (from /proc/net/tcp) or `tcp6` (from /proc/net/tcp6, which includes IPv4-mapped sockets). */
  proto: 'tcp' | 'tcp6';
  local: Endpoint;
  remote: Endpoint;
  state: TcpState;
  /** Bytes received and not yet read by the process (for LISTEN: connections waiting in the accept queue). */
  recvQ: number;
  /** Bytes sent and not yet acknowledged by the peer. */
  sendQ: number;
  /** Socket inode: matches `socket:[INODE]` in /proc/PID/fd. 0 for sockets no process holds (TIME_WAIT). */
  inode: number;
  uid: number;
}

/** A process as /proc/PID/stat, wchan and cmdline describe it. */
export interface ProcInfo {
  pid: number;
  ppid: number;
  /** The executable's name (comm), at most 15 characters. */
  comm: string;
  /** The command line, arguments joined by spaces ('' for kernel threads and zombies). */
  cmdline: string;
  /** One letter, as ps prints STAT: R running, S sleeping, D disk wait, Z zombie, T stopped, I idle. */
  state: string;
  /** Kernel function it sleeps in (`do_epoll_wait`, `wait_for_connect`, ...); `-` when running or unknown. */
  wchan: string;
  /** Number of threads. */
  threads: number;
  /** Milliseconds since the epoch when it started. */
  startedAt: number;
}

/** One thread of a process (/proc/PID/task/TID). */
export interface ThreadInfo {
  tid: number;
  comm: string;
  state: string;
  wchan: string;
}

/** Whether /proc can be read here, and if not, why. */
export function procAvailability(): { available: true } | { available: false; reason: string } {
  if (process.platform !== 'linux') {
    return {
      available: false,
      reason: `sockets and processes come from Linux's /proc, which ${process.platform} does not have; only what a server's admin endpoint reports can be shown`,
    };
  }
  if (!fs.existsSync(`${PROC_ROOT}/net/tcp`)) {
    return { available: false, reason: `${PROC_ROOT}/net/tcp cannot be read (is /proc mounted?)` };
  }
  return { available: true };
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

const littleEndian = os.endianness() === 'LE';

/** Four bytes of one 32-bit word the kernel printed in host byte order. */
function wordBytes(hex8: string): number[] {
  const n = Number.parseInt(hex8, 16) >>> 0;
  const be = [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  return littleEndian ? be.reverse() : be;
}

/** Text of an IPv6 address in 16 bytes: RFC 5952 (longest zero run as `::`), IPv4-mapped as `::ffff:a.b.c.d`. */
function formatIPv6(b: number[]): string {
  if (b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) {
    return `::ffff:${b.slice(12).join('.')}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/**
 * Decode `0100007F:2694` (tcp) or a 32-digit tcp6 address into an Endpoint.
 * The kernel prints each 32-bit word of the address in host byte order and the
 * port in network order as a plain hex number.
 */
export function parseHexEndpoint(text: string): Endpoint {
  const [addrHex = '', portHex = '0'] = text.split(':');
  const port = Number.parseInt(portHex, 16);
  if (addrHex.length === 8) {
    return { address: wordBytes(addrHex).join('.'), port, family: 'IPv4' };
  }
  if (addrHex.length === 32) {
    const bytes: number[] = [];
    for (let i = 0; i < 32; i += 8) bytes.push(...wordBytes(addrHex.slice(i, i + 8)));
    return { address: formatIPv6(bytes), port, family: 'IPv6' };
  }
  throw new Error(`unexpected address ${JSON.stringify(text)} in /proc/net/tcp`);
}

/**
 * Which lines of a table to decode: those with a local or foreign port in `ports`,
 * or an inode in `inodes`. A busy host has 100,000 sockets (most in TIME_WAIT);
 * decoding only the lines asked for keeps a view of one server cheap.
 */
export interface TcpSelect {
  ports: ReadonlySet<number>;
  inodes: ReadonlySet<number>;
}

/** The raw text of /proc/net/tcp and tcp6 ('' where missing), read once and decoded as often as needed. */
export interface TcpTables {
  tcp: string;
  tcp6: string;
}

/** Read /proc/net/tcp and tcp6. */
export function readTcpTables(root = PROC_ROOT): TcpTables {
  return { tcp: readText(`${root}/net/tcp`) ?? '', tcp6: readText(`${root}/net/tcp6`) ?? '' };
}

/**
 * Read /proc/net/tcp and tcp6 without blocking the event loop: on a host with many
 * sockets the kernel takes a noticeable time to print them, and a server must go on accepting.
 */
export async function readTcpTablesAsync(root = PROC_ROOT): Promise<TcpTables> {
  const read = (f: string) => fs.promises.readFile(f, 'utf8').catch(() => '');
  const [tcp, tcp6] = await Promise.all([read(`${root}/net/tcp`), read(`${root}/net/tcp6`)]);
  return { tcp, tcp6 };
}

/** Decode both tables (only the selected lines, when `select` is given). */
export function decodeTcpTables(tables: TcpTables, select?: TcpSelect): TcpSocket[] {
  return [...parseTcpTable(tables.tcp, 'tcp', select), ...parseTcpTable(tables.tcp6, 'tcp6', select)];
}

/** The inode: the tenth field of a line (sl local rem st tx:rx tr:when retrnsmt uid timeout inode). */
const INODE_FIELD = /^\s*\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\d+)/;

/**
 * Parse the text of /proc/net/tcp (proto `tcp`) or /proc/net/tcp6 (`tcp6`), all
 * lines or the selected ones. Malformed lines are skipped.
 */
export function parseTcpTable(text: string, proto: 'tcp' | 'tcp6', select?: TcpSelect): TcpSocket[] {
  const out: TcpSocket[] = [];
  const addrLen = proto === 'tcp' ? 8 : 32;
  const portHex = select && new Set([...select.ports].map((p) => p.toString(16).toUpperCase().padStart(4, '0')));
  const wantInodes = select !== undefined && select.inodes.size > 0;
  for (const line of text.split('\n').slice(1)) {
    if (portHex) {
      // The kernel prints "%4d: %0*X:%04X %0*X:%04X ...": both ports sit at fixed offsets after the first colon.
      const local = line.indexOf(':') + 2;
      const lp = line.substr(local + addrLen + 1, 4);
      const rp = line.substr(local + 2 * addrLen + 7, 4);
      if (!portHex.has(lp) && !portHex.has(rp)) {
        const inode = wantInodes ? INODE_FIELD.exec(line)?.[1] : undefined;
        if (inode === undefined || !select!.inodes.has(Number(inode))) continue;
      }
    }
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [tx = '0', rx = '0'] = f[4]!.split(':');
    try {
      out.push({
        proto,
        local: parseHexEndpoint(f[1]!),
        remote: parseHexEndpoint(f[2]!),
        state: TCP_STATES[Number.parseInt(f[3]!, 16)] ?? 'UNKNOWN',
        sendQ: Number.parseInt(tx, 16),
        recvQ: Number.parseInt(rx, 16),
        uid: Number(f[7]),
        inode: Number(f[9]),
      });
    } catch {
      // a line we do not understand is not worth failing the whole view
      continue;
    }
    if (select) {
      // The quick test reads fixed offsets; check the decoded line too.
      const s = out[out.length - 1]!;
      if (!select.ports.has(s.local.port) && !select.ports.has(s.remote.port) && !select.inodes.has(s.inode)) out.pop();
    }
  }
  return out;
}

/** One named UNIX stream socket of /proc/net/unix (a listening socket, or a connection accepted on one). */
export interface UnixSocket {
  /** Its path (`@name` in the abstract namespace): an accepted connection shows its listener's. */
  path: string;
  /** `LISTEN` (accepting), `CONNECTED`, or `UNCONNECTED`/`CONNECTING`/`DISCONNECTING`. */
  state: 'LISTEN' | 'UNCONNECTED' | 'CONNECTING' | 'CONNECTED' | 'DISCONNECTING' | 'UNKNOWN';
  /** Socket inode: matches `socket:[INODE]` in /proc/PID/fd. */
  inode: number;
}

/** The socket states of /proc/net/unix's `St` column (SS_*). */
const UNIX_STATES: Record<number, UnixSocket['state']> = { 1: 'UNCONNECTED', 2: 'CONNECTING', 3: 'CONNECTED', 4: 'DISCONNECTING' };
/** __SO_ACCEPTCON in the Flags column: the socket listens. */
const SO_ACCEPTCON = 0x10000;
/** SOCK_STREAM in the Type column. */
const UNIX_STREAM = 1;

/**
 * Parse /proc/net/unix (`Num RefCount Protocol Flags Type St Inode Path`): the named stream sockets, those
 * whose inode is in `inodes` when given. Unnamed ones (socketpairs, clients) are left out: they are not
 * a server's listeners or connections. A path with spaces is kept whole.
 */
export function parseUnixTable(text: string, inodes?: ReadonlySet<number>): UnixSocket[] {
  const out: UnixSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const m = /^\s*\S+:\s+\S+\s+\S+\s+([0-9A-Fa-f]+)\s+([0-9A-Fa-f]+)\s+([0-9A-Fa-f]+)\s+(\d+)(?: (.+))?$/.exec(line);
    if (!m || m[5] === undefined) continue;
    const inode = Number(m[4]);
    if (inodes && !inodes.has(inode)) continue;
    if (Number.parseInt(m[2]!, 16) !== UNIX_STREAM) continue;
    const listening = (Number.parseInt(m[1]!, 16) & SO_ACCEPTCON) !== 0;
    out.push({ path: m[5], state: listening ? 'LISTEN' : (UNIX_STATES[Number.parseInt(m[3]!, 16)] ?? 'UNKNOWN'), inode });
  }
  return out;
}

/** The named UNIX stream sockets (/proc/net/unix), those of `inodes` when given; empty where /proc is missing. */
export function readUnixSockets(root = PROC_ROOT, inodes?: ReadonlySet<number>): UnixSocket[] {
  return parseUnixTable(readText(`${root}/net/unix`) ?? '', inodes);
}

/** Every TCP socket in this network namespace (/proc/net/tcp and tcp6). Empty where /proc is missing. */
export function readTcpSockets(root = PROC_ROOT, select?: TcpSelect): TcpSocket[] {
  return decodeTcpTables(readTcpTables(root), select);
}

/** Pids of every process we can see. */
export function listPids(root = PROC_ROOT): number[] {
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return [];
  }
  return names.filter((n) => /^\d+$/.test(n)).map(Number);
}

/** Socket inodes a process holds, each with the descriptor numbers that refer to it. */
export function socketInodesOf(pid: number, root = PROC_ROOT): Map<number, number[]> {
  const out = new Map<number, number[]>();
  const dir = `${root}/${pid}/fd`;
  let fds: string[];
  try {
    fds = fs.readdirSync(dir);
  } catch {
    return out; // exited, or not ours to read
  }
  for (const fd of fds) {
    let target: string;
    try {
      target = fs.readlinkSync(`${dir}/${fd}`);
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (!m) continue;
    const inode = Number(m[1]);
    const list = out.get(inode);
    if (list) list.push(Number(fd));
    else out.set(inode, [Number(fd)]);
  }
  return out;
}

/**
 * Which processes hold each socket inode (what `netstat -p` does). A socket shared
 * after fork or by prefork workers has several owners. Only processes whose fd
 * directory we may read are seen (all of them as root, our own otherwise).
 */
export function socketOwners(pids: Iterable<number> = listPids(), root = PROC_ROOT): Map<number, number[]> {
  const owners = new Map<number, number[]>();
  for (const pid of pids) {
    for (const inode of socketInodesOf(pid, root).keys()) {
      const list = owners.get(inode);
      if (list) list.push(pid);
      else owners.set(inode, [pid]);
    }
  }
  return owners;
}

/** Seconds since boot (/proc/uptime), or undefined. */
function uptimeSeconds(root: string): number | undefined {
  const text = readText(`${root}/uptime`);
  const n = text ? Number(text.split(' ')[0]) : Number.NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** The fields of a stat line after `(comm)`; comm may itself hold spaces and parentheses. */
function parseStatLine(text: string): { comm: string; rest: string[] } | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  return { comm: text.slice(open + 1, close), rest: text.slice(close + 2).trim().split(' ') };
}

function readWchan(dir: string): string {
  const w = readText(`${dir}/wchan`)?.trim();
  // "0" is what the kernel prints for a running task (and when it hides addresses).
  return !w || w === '0' ? '-' : w;
}

/** A process's stat, wchan and cmdline; undefined if it is gone. `bootTime` saves re-reading /proc/uptime. */
export function readProcess(pid: number, root = PROC_ROOT, bootTime = bootTimeMs(root)): ProcInfo | undefined {
  const dir = `${root}/${pid}`;
  const stat = readText(`${dir}/stat`);
  const parsed = stat ? parseStatLine(stat) : undefined;
  if (!parsed) return undefined;
  const f = parsed.rest;
  // rest[0] is field 3 (state); ppid is field 4, num_threads field 20, starttime field 22.
  const startTicks = Number(f[19]);
  const cmdline = (readText(`${dir}/cmdline`) ?? '').split('\0').filter(Boolean).join(' ');
  return {
    pid,
    ppid: Number(f[1]),
    comm: parsed.comm,
    cmdline,
    state: f[0] ?? '?',
    wchan: readWchan(dir),
    threads: Number(f[17]) || 1,
    startedAt: bootTime + (startTicks / CLOCK_TICKS) * 1000,
  };
}

/** When the machine booted, in ms since the epoch (from /proc/uptime). */
export function bootTimeMs(root = PROC_ROOT): number {
  const up = uptimeSeconds(root);
  return up === undefined ? 0 : Date.now() - up * 1000;
}

/** The threads of a process (/proc/PID/task), each with its name, state and wchan. */
export function readThreads(pid: number, root = PROC_ROOT): ThreadInfo[] {
  let tids: string[];
  try {
    tids = fs.readdirSync(`${root}/${pid}/task`);
  } catch {
    return [];
  }
  const out: ThreadInfo[] = [];
  for (const t of tids) {
    const dir = `${root}/${pid}/task/${t}`;
    const stat = readText(`${dir}/stat`);
    const parsed = stat ? parseStatLine(stat) : undefined;
    if (!parsed) continue;
    out.push({ tid: Number(t), comm: parsed.comm, state: parsed.rest[0] ?? '?', wchan: readWchan(dir) });
  }
  return out.sort((a, b) => a.tid - b.tid);
}

/** Parent pid of every visible process. */
export function parentMap(pids: Iterable<number> = listPids(), root = PROC_ROOT): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    const stat = readText(`${root}/${pid}/stat`);
    const parsed = stat ? parseStatLine(stat) : undefined;
    if (parsed) out.set(pid, Number(parsed.rest[1]));
  }
  return out;
}

/** `pid` and all its descendants, parents before children. */
export function processTree(pid: number, parents: Map<number, number>): number[] {
  const children = new Map<number, number[]>();
  for (const [child, parent] of parents) {
    const list = children.get(parent);
    if (list) list.push(child);
    else children.set(parent, [child]);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0 && out.length < 100_000) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...(children.get(p) ?? []).sort((a, b) => a - b));
  }
  return out;
}
