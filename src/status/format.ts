/**
 * A status snapshot as text: a netstat-like socket table, then a ps-like process
 * table, then what could not be shown. Columns are padded to their widest cell.
 */
import type { ServerStats } from '../server.js';
import net from 'node:net';
import { formatEndpoint, sanitize, type Endpoint } from '../address.js';
import type { ProcessView, SocketView, StatusSnapshot } from './snapshot.js';

/**
 * An address as netstat prints it: `*` for the wildcard address and for port 0
 * (the seed: "netstat prints an asterisk for an IP address of 0 ... or for a port of 0").
 */
export function netstatAddress(e: Endpoint): string {
  const wildcard = e.address === '0.0.0.0' || e.address === '::';
  const host = wildcard ? '*' : net.isIPv6(e.address) ? `[${e.address}]` : e.address;
  return `${host}:${e.port === 0 ? '*' : e.port}`;
}

/** Milliseconds as a short age: `850ms`, `12s`, `3m04s`, `2h05m`, `3d04h`. */
export function formatAge(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const two = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${two(Math.floor(s / 3600) % 24)}h`;
}

/** Pad a table: every column as wide as its widest cell; numeric columns (`right`) aligned right. */
export function table(header: string[], rows: string[][], right: ReadonlySet<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function socketRows(sockets: SocketView[], tlsPorts: ReadonlySet<number> = new Set()): string[][] {
  return sockets.map((s) => [
    s.proto,
    String(s.recvQ),
    String(s.sendQ),
    netstatAddress(s.local),
    netstatAddress(s.remote),
    // A listener that terminates TLS is marked: its port speaks TLS, not plain TCP.
    s.state === 'LISTEN' && tlsPorts.has(s.local.port) ? 'LISTEN tls' : s.state,
    s.pids.length > 0 ? s.pids.join(',') : '-',
    s.connection === undefined ? '' : `#${s.connection}`,
  ]);
}

/** A command line made short for a table: the program's basename, other absolute paths cut to their last two parts. */
export function shortCommand(cmdline: string, max = 72): string {
  const short = cmdline
    .split(' ')
    .map((t, i) => (t.startsWith('/') ? t.split('/').slice(i === 0 ? -1 : -2).join('/') : t))
    .join(' ');
  return short.length > max ? `${short.slice(0, max - 3)}...` : short;
}

const bytes = (n: number | undefined) => (n === undefined ? '-' : String(n));

function processRows(processes: ProcessView[], now: number): string[][] {
  const rows: string[][] = [];
  for (const p of processes) {
    const conns = p.connections.map((c) => `${c.id === undefined ? '' : `#${c.id} `}${c.remote}${c.via ? ` via ${c.via}` : ''}${c.state ? ` ${c.state}` : ''}`);
    rows.push([
      p.tid ? `${p.pid}/${p.tid}` : String(p.pid),
      p.ppid ? String(p.ppid) : '-',
      p.stat,
      p.wchan,
      p.role + (p.state ? `(${p.state})` : ''),
      formatAge(p.ageMs ?? now - p.startedAt),
      bytes(p.bytesIn),
      bytes(p.bytesOut),
      conns.length > 0 ? conns.join('; ') : '-',
      shortCommand(p.cmdline || p.comm),
    ]);
    for (const t of p.tasks ?? []) {
      rows.push([`  ${p.pid}/${t.tid}`, String(p.pid), t.state, t.wchan, 'thread', '', '', '', '', t.comm]);
    }
  }
  return rows;
}

/** A server's TLS counters in one line: `tls handshakes 12 resumed 3 pending 0 failures tls-timeout=1 protocols TLSv1.3=12`. */
export function tlsLine(t: NonNullable<ServerStats['tls']>): string {
  const list = (r: Record<string, number>) => Object.entries(r).map(([k, v]) => `${k}=${v}`).join(',') || '-';
  return `tls handshakes ${t.handshakes}  resumed ${t.resumed}  pending ${t.pending}  failures ${list(t.failures)}  protocols ${list(t.protocols)}  ciphers ${list(t.ciphers)}`;
}

/** The snapshot as netstat-and-ps text. */
export function formatStatus(snap: StatusSnapshot): string {
  const out: string[] = [];
  const s = snap.server;
  if (s) {
    const where = s.local ? (s.local.family === 'unix' ? formatEndpoint(s.local) : `${s.local.address}:${s.local.port}`) : '-';
    out.push(
      `tcpkit server pid ${s.pid}  ${where}  model ${s.model}  service ${s.service}  ${s.state}/${s.listener}  ` +
        `accepted ${s.accepted}  active ${s.active}/${s.maxConns}  ended ${s.ended}` +
        (s.models ? `  spawned ${s.models.spawned}  crashed ${s.models.crashed}` : ''),
      ...(s.tls ? [tlsLine(s.tls)] : []),
      '',
    );
  }
  const tlsPorts = new Set([snap.server, ...Object.values(snap.services ?? {})].flatMap((x) => (x?.tls && x.local ? [x.local.port] : [])));
  const scope =
    snap.target.port !== undefined
      ? ` (port ${snap.target.port})`
      : snap.ports.length > 0
        ? ` (port${snap.ports.length > 1 ? 's' : ''} ${snap.ports.join(', ')})`
        : '';
  out.push(`Active Internet connections${scope}`);
  out.push(
    snap.sockets.length > 0
      ? table(['Proto', 'Recv-Q', 'Send-Q', 'Local Address', 'Foreign Address', 'State', 'PID', 'Conn'], socketRows(snap.sockets, tlsPorts), new Set([1, 2]))
      : '(no sockets)',
  );
  if (snap.unix && snap.unix.length > 0) {
    out.push('', 'Active UNIX domain sockets');
    out.push(table(['Path', 'State', 'Inode', 'PID'], snap.unix.map((u) => [sanitize(u.path), u.state, String(u.inode), u.pids.join(',') || '-'])));
  }
  if (snap.processes.length > 0 || snap.root !== undefined) {
    out.push('', 'Processes');
    out.push(
      snap.processes.length > 0
        ? table(
            ['PID', 'PPID', 'STAT', 'WCHAN', 'ROLE', 'AGE', 'IN', 'OUT', 'CONNECTIONS', 'COMMAND'],
            processRows(snap.processes, snap.time),
            new Set([6, 7]),
          )
        : `(no process ${snap.root})`,
    );
  }
  for (const note of snap.notes) out.push(`note: ${note}`);
  return `${out.join('\n')}\n`;
}
