/**
 * One status snapshot: `netstat -a` and `ps -o pid,ppid,stat,wchan` for one server,
 * joined. Sockets and processes come from /proc (any pid); roles, connection ids
 * and byte counts come from the server's own `stats()` when it is a tcpkit server
 * that reports them (through its admin endpoint, or in-process). Plain data:
 * the same object is the admin's `/status`, `tcpkit status --json`, and what the
 * dashboard draws.
 */
import os from 'node:os';
import { formatEndpoint, type Endpoint } from '../address.js';
import type { ServerStats } from '../server.js';
import type { ModelProcess } from '../models/types.js';
import {
  bootTimeMs,
  listPids,
  parentMap,
  procAvailability,
  processTree,
  readProcess,
  decodeTcpTables,
  readTcpTables,
  readUnixSockets,
  type UnixSocket,
  readThreads,
  socketOwners,
  type TcpSocket,
  type TcpTables,
  type TcpState,
  type ThreadInfo,
} from './procfs.js';

/** A socket row: a /proc/net/tcp line plus who holds it. */
export interface SocketView extends TcpSocket {
  /** Processes holding it (several after fork or in a prefork pool); empty for TIME_WAIT. */
  pids: number[];
  /** The server's connection id, when the server reports the connection. */
  connection?: number;
  /** Bytes this side received and sent (kernel tcp_info; see tcpinfo.ts), when known. */
  bytesIn?: number;
  bytesOut?: number;
}

/** Roles a process or thread plays; `process` when nothing more is known. */
export type Role = ModelProcess['role'] | 'process';

/** A connection a process serves, with its TCP state from /proc when visible. */
export interface ServedConnection {
  /** The server's connection id (undefined when the server does not report it). */
  id?: number;
  /** The peer, `host:port` (the client a PROXY header named, if one did). */
  remote: string;
  /** The real peer, `host:port`, when a PROXY header named another (the load balancer). Default absent. */
  via?: string;
  state?: TcpState;
  acceptedAt?: number;
  bytesIn?: number;
  bytesOut?: number;
}

/** A process row (or a thread row: `tid` set and `role` `thread`). */
export interface ProcessView {
  pid: number;
  /** Thread id for a thread row (a worker thread's threadId), else 0. */
  tid: number;
  ppid: number;
  comm: string;
  cmdline: string;
  /** ps's STAT letter (S, R, D, Z, T, ...), or `?` when /proc does not show it. */
  stat: string;
  /** Kernel wait channel, `-` when running or unknown. */
  wchan: string;
  threads: number;
  role: Role;
  /** The model's own state word for it (`serving`, `idle`, `terminating`, ...), if the server reports one. */
  state?: string;
  connections: ServedConnection[];
  /** Connections it has finished (as the server reports). */
  served?: number;
  startedAt: number;
  ageMs: number;
  bytesIn?: number;
  bytesOut?: number;
  /** Kernel threads of the process (/proc/PID/task), when asked for. */
  tasks?: ThreadInfo[];
}

/** The whole view. */
export interface StatusSnapshot {
  /** When it was taken, ms since the epoch. */
  time: number;
  hostname: string;
  platform: NodeJS.Platform;
  /** Whether /proc could be read; when not, `reason` says what cannot be shown. */
  proc: { available: boolean; reason?: string };
  /** What was asked for. */
  target: { pid?: number; port?: number };
  /** The pid the process tree starts from (the server's), when known. */
  root?: number;
  /** Ports the view is about (the server's listening ports, or `--port`). */
  ports: number[];
  /** The server's own snapshot, when it is a tcpkit server that gave one. */
  server?: ServerStats;
  /** Under `serve --config`: each service's snapshot by `SERVICE ADDRESS` (then `server` is absent). */
  services?: Record<string, ServerStats>;
  sockets: SocketView[];
  /** The UNIX-domain sockets the process tree holds with a path (listeners and their connections, /proc/net/unix). Default absent. */
  unix?: Array<UnixSocket & { pids: number[] }>;
  processes: ProcessView[];
  /** Sockets in TIME_WAIT on the view's ports, listed or not. */
  timeWait?: number;
  /** Sockets left out of `sockets` by a cap (maxSockets, maxTimeWait); `notes` says "and N more". Default absent. */
  omitted?: number;
  /** What this view could not show, and why. */
  notes: string[];
}

/** Options of collectStatus. */
export interface CollectOptions {
  /** Show this process and its descendants, and the sockets of the ports it listens on. Default: the server's pid. */
  pid?: number;
  /** Show the sockets of this port (local or foreign) and the process tree of whoever listens on it. */
  port?: number;
  /** A tcpkit server's `stats()`, for roles, connection ids and bytes. Default: none (/proc only). */
  server?: ServerStats;
  /** A supervisor's servers (`serve --config`), by label; they share one process. Default: none. */
  services?: Record<string, ServerStats>;
  /** List at most this many TIME_WAIT sockets (the rest are counted in `timeWait`). Default: all. */
  maxTimeWait?: number;
  /** List at most this many sockets in all (LISTEN and ESTABLISHED first). Default: all. */
  maxSockets?: number;
  /** List each process's kernel threads. Default false. */
  threads?: boolean;
  /** /proc/net/tcp and tcp6 already read (the admin endpoint reads them without blocking). Default: read now. */
  tables?: TcpTables;
}

type Conn = ServerStats['connections'][number] & { bytesIn?: unknown; bytesOut?: unknown };

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

const sameEndpoint = (a: Endpoint, b: Endpoint) =>
  a.port === b.port && (a.address === b.address || a.address === `::ffff:${b.address}` || b.address === `::ffff:${a.address}`);

const STATE_ORDER: Partial<Record<TcpState, number>> = { LISTEN: 0 };

/** Take a snapshot. Never throws for a process or socket that vanishes meanwhile. */
export function collectStatus(options: CollectOptions = {}): StatusSnapshot {
  const now = Date.now();
  const server = options.server;
  const services = options.services;
  // Every tcpkit server in the view: one, or each service of a supervisor (all in one process).
  const all: ServerStats[] = services ? Object.values(services) : server ? [server] : [];
  const serverPid = server?.pid ?? (services ? options.pid ?? process.pid : undefined);
  const avail = procAvailability();
  const notes: string[] = [];
  const snap: StatusSnapshot = {
    time: now,
    hostname: os.hostname(),
    platform: process.platform,
    proc: avail.available ? { available: true } : { available: false, reason: avail.reason },
    target: { pid: options.pid, port: options.port },
    ports: [],
    server,
    ...(services && { services }),
    sockets: [],
    processes: [],
    notes,
  };
  if (!avail.available) notes.push(avail.reason);

  const pids = avail.available ? listPids() : [];
  const owners = avail.available ? socketOwners(pids) : new Map<number, number[]>();
  const parents = avail.available ? parentMap(pids) : new Map<number, number>();
  const tables = avail.available ? options.tables ?? readTcpTables() : { tcp: '', tcp6: '' };
  const ownedBy = (set: Set<number>) => {
    const out = new Set<number>();
    for (const [inode, holders] of owners) if (holders.some((p) => set.has(p))) out.add(inode);
    return out;
  };
  const boot = avail.available ? bootTimeMs() : 0;

  // Whose view: the pid asked for, the server, or whoever listens on the port.
  let root = options.pid ?? serverPid;
  if (root === undefined && options.port !== undefined) {
    const listening = decodeTcpTables(tables, { ports: new Set([options.port]), inodes: new Set() }).filter(
      (s) => s.state === 'LISTEN' && s.local.port === options.port,
    );
    const holders = listening.flatMap((s) => owners.get(s.inode) ?? []);
    // The root is the holder whose parent does not also hold it (prefork workers share the socket).
    root = holders.find((p) => !holders.includes(parents.get(p) ?? -1)) ?? holders[0];
  }
  snap.root = root;
  const tree = root === undefined ? [] : avail.available ? processTree(root, parents) : [root];
  const inTree = new Set(tree);
  const treeInodes = ownedBy(inTree);

  const ports = new Set<number>();
  if (options.port !== undefined) ports.add(options.port);
  else if (all.some((s) => s.local)) {
    // tcpkit servers: their service ports only (not the admin endpoint's).
    for (const s of all) if (s.local && s.local.family !== 'unix') ports.add(s.local.port);
  } else {
    for (const s of decodeTcpTables(tables, { ports: new Set(), inodes: treeInodes })) {
      if (s.state === 'LISTEN') ports.add(s.local.port);
    }
  }
  snap.ports = [...ports].sort((a, b) => a - b);

  const connections = all.flatMap((s) => s.connections) as Conn[];
  // Every socket when nothing was asked for (netstat -a); else those of the ports, and for
  // a process that is not a tcpkit server, every socket it holds.
  const select =
    root === undefined && options.port === undefined ? undefined : { ports, inodes: all.length > 0 ? new Set<number>() : treeInodes };
  snap.sockets = decodeTcpTables(tables, select)
    .map((s): SocketView => {
      const view: SocketView = { ...s, pids: owners.get(s.inode) ?? [] };
      if (s.state !== 'LISTEN' && ports.has(s.local.port)) {
        // A connection that came with a PROXY header is matched by its real ends (`via`).
        const c = connections.find((c) => sameEndpoint((c.via ?? c).remote, s.remote) && sameEndpoint((c.via ?? c).local, s.local));
        if (c) view.connection = c.id;
      }
      return view;
    })
    .sort(
      (a, b) =>
        (STATE_ORDER[a.state] ?? 1) - (STATE_ORDER[b.state] ?? 1) ||
        a.local.port - b.local.port ||
        a.remote.port - b.remote.port ||
        a.local.address.localeCompare(b.local.address),
    );

  // UNIX-domain listeners and connections of the tree (a UNIX socket has no port to select by): for a server on
  // a UNIX socket, or any process looked at by pid; a TCP server's snapshot (the admin endpoint's, every second)
  // does not read the host's whole /proc/net/unix for nothing.
  const unixWanted = all.length === 0 || all.some((x) => x.local?.family === 'unix');
  if (avail.available && unixWanted && treeInodes.size > 0) {
    const unix = readUnixSockets(undefined, treeInodes).map((u) => ({ ...u, pids: owners.get(u.inode) ?? [] }));
    const max = options.maxSockets ?? Infinity;
    if (unix.length > 0) snap.unix = unix.sort((a, b) => (a.state === 'LISTEN' ? 0 : 1) - (b.state === 'LISTEN' ? 0 : 1) || a.inode - b.inode).slice(0, max);
    if (unix.length > max) notes.push(`and ${unix.length - max} more UNIX sockets not listed`);
  }

  // A peer that opens and closes quickly leaves thousands of TIME_WAIT sockets: count them, list a few.
  const waiting = snap.sockets.filter((k) => k.state === 'TIME_WAIT').length;
  snap.timeWait = waiting;
  const maxTw = options.maxTimeWait ?? Infinity;
  const maxAll = options.maxSockets ?? Infinity;
  if (waiting > maxTw || snap.sockets.length > maxAll) {
    let tw = 0;
    const kept = snap.sockets.filter((k) => k.state !== 'TIME_WAIT' || ++tw <= maxTw).slice(0, maxAll);
    const omitted = snap.sockets.length - kept.length;
    const twOmitted = waiting - kept.filter((k) => k.state === 'TIME_WAIT').length;
    snap.sockets = kept;
    snap.omitted = omitted;
    notes.push(`and ${omitted} more socket${omitted === 1 ? '' : 's'} not listed (${twOmitted} in TIME_WAIT; ${waiting} in TIME_WAIT in all)`);
  }

  // Processes: the tree from /proc, described by the model where it reports them.
  const modelProcs = all.flatMap((s) => s.models?.processes ?? []);
  const byId = new Map(connections.map((c) => [c.id, c]));
  const served = (ids: number[]): ServedConnection[] =>
    ids.map((id) => {
      const c = byId.get(id);
      if (!c) return { id, remote: '?' };
      const sock = snap.sockets.find((s) => s.connection === id);
      return {
        id,
        remote: formatEndpoint(c.remote),
        ...(c.via && { via: formatEndpoint(c.via.remote) }),
        state: sock?.state,
        acceptedAt: c.acceptedAt,
        bytesIn: num(c.bytesIn),
        bytesOut: num(c.bytesOut),
      };
    });
  const fromProc = (pid: number): ServedConnection[] =>
    snap.sockets
      // A process that listens nowhere (a child asked for by its own pid): every connection it holds.
      .filter((s) => s.state !== 'LISTEN' && s.pids.includes(pid) && (ports.size === 0 || ports.has(s.local.port)))
      .map((s) => {
        const c = s.connection === undefined ? undefined : byId.get(s.connection);
        return {
          id: s.connection,
          remote: formatEndpoint(s.remote),
          state: s.state,
          acceptedAt: c?.acceptedAt,
          bytesIn: num(c?.bytesIn),
          bytesOut: num(c?.bytesOut),
        };
      });
  const total = (list: ServedConnection[], key: 'bytesIn' | 'bytesOut') =>
    list.some((c) => c[key] !== undefined) ? list.reduce((n, c) => n + (c[key] ?? 0), 0) : undefined;

  const seen = new Set<number>();
  for (const pid of tree) {
    const p = avail.available ? readProcess(pid, undefined, boot) : undefined;
    const m = modelProcs.find((mp) => mp.pid === pid && mp.threadId === 0);
    if (!p && !m && pid !== serverPid) continue; // exited meanwhile
    seen.add(pid);
    const role: Role =
      m?.role ??
      roleFromCommand(p?.cmdline) ??
      (pid === root ? (ports.size > 0 || pid === serverPid ? 'parent' : 'process') : parents.get(pid) === root ? 'child' : 'process');
    const conns = m && m.connections.length > 0 ? served(m.connections) : fromProc(pid);
    const startedAt = p?.startedAt ?? m?.startedAt ?? all[0]?.startedAt ?? now;
    snap.processes.push({
      pid,
      tid: 0,
      ppid: p?.ppid ?? 0,
      comm: p?.comm ?? '',
      cmdline: p?.cmdline ?? '',
      stat: p?.state ?? '?',
      wchan: p?.wchan ?? '-',
      threads: p?.threads ?? 1,
      role,
      state: m?.state ?? (pid === serverPid ? server?.state ?? 'running' : undefined),
      connections: conns,
      served: m?.served,
      startedAt,
      ageMs: Math.max(0, now - startedAt),
      bytesIn: total(conns, 'bytesIn'),
      bytesOut: total(conns, 'bytesOut'),
      tasks: options.threads && avail.available ? readThreads(pid) : undefined,
    });
  }
  // Threads and processes the model reports that /proc did not show (threads; other platforms).
  for (const m of modelProcs) {
    if (m.threadId === 0 && seen.has(m.pid)) continue;
    const conns = served(m.connections);
    snap.processes.push({
      pid: m.pid,
      tid: m.threadId,
      ppid: m.threadId === 0 ? serverPid ?? 0 : m.pid,
      comm: '',
      cmdline: '',
      stat: '?',
      wchan: '-',
      threads: 1,
      role: m.role,
      state: m.state,
      connections: conns,
      served: m.served,
      startedAt: m.startedAt,
      ageMs: Math.max(0, now - m.startedAt),
      bytesIn: total(conns, 'bytesIn'),
      bytesOut: total(conns, 'bytesOut'),
    });
  }

  if (all.length === 0 && root !== undefined) {
    notes.push('roles come from the process tree; connection ids and the model\'s states need the server\'s admin endpoint (tcpkit serve --admin)');
  }
  if (avail.available && typeof process.getuid === 'function' && process.getuid() !== 0) {
    notes.push('sockets of other users\' processes show no owner (run as root to see them)');
  }
  return snap;
}

/**
 * The pid that listens on `port` (the first holder of the LISTEN socket whose parent
 * does not also hold it), or undefined when nobody we can see listens there.
 */
export function listenerOf(port: number): number | undefined {
  if (!procAvailability().available) return undefined;
  const listening = decodeTcpTables(readTcpTables(), { ports: new Set([port]), inodes: new Set() }).filter(
    (s) => s.state === 'LISTEN' && s.local.port === port,
  );
  if (listening.length === 0) return undefined;
  const pids = listPids();
  const owners = socketOwners(pids);
  const parents = parentMap(pids);
  const holders = listening.flatMap((s) => owners.get(s.inode) ?? []);
  return holders.find((p) => !holders.includes(parents.get(p) ?? -1)) ?? holders[0];
}

/**
 * A tcpkit process's role from its command line, when the server's own stats are not
 * at hand: each kind of process runs its own entry point under src/workers/.
 */
function roleFromCommand(cmdline: string | undefined): Role | undefined {
  if (!cmdline) return undefined;
  if (/workers\/prefork-worker\.js\b/.test(cmdline)) return 'worker';
  if (/workers\/spare\.js\b/.test(cmdline)) return 'spare';
  if (/workers\/conn\.js\b/.test(cmdline)) return 'child';
  if (/tcpkit(\.js)? serve\b/.test(cmdline)) return 'parent';
  return undefined;
}
