/**
 * Bytes in and out of each connection, as the kernel counts them (struct tcp_info:
 * tcpi_bytes_received, tcpi_bytes_sent). /proc/net/tcp does not carry them and
 * Node cannot ask netlink, so they are read through `ss -tin` (iproute2), which
 * asks the kernel's sock_diag for every socket, whoever holds it: this works for
 * every model, and for servers that are not tcpkit's. Without `ss`, nothing breaks:
 * the bytes columns stay empty and the snapshot says why.
 */
import { execFile } from 'node:child_process';
import { formatEndpoint } from '../address.js';
import type { ServedConnection, StatusSnapshot } from './snapshot.js';

/** Bytes of one socket, from its own side: `bytesIn` received, `bytesOut` sent. */
export interface SocketBytes {
  bytesIn: number;
  bytesOut: number;
}

/** How long `ss` may take before the view goes on without bytes. */
const SS_TIMEOUT_MS = 2000;

/** `local|remote` with addresses as Node prints them (no brackets), the key of a socket. */
export function socketKey(local: string, remote: string): string {
  return `${local}|${remote}`;
}

/** `[::1]:9877` or `127.0.0.1:9877` or `[::ffff:127.0.0.1]:9877` → `host:port` as formatEndpoint writes it. */
function normalize(text: string): string {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(text);
  if (!m) return text;
  const host = m[1]!.replace(/%.*$/, '');
  return formatEndpoint({ address: host, port: Number(m[2]), family: host.includes(':') ? 'IPv6' : 'IPv4' });
}

/** Parse `ss -tinH` output: a socket line, then its indented tcp_info line. */
export function parseSs(text: string): Map<string, SocketBytes> {
  const out = new Map<string, SocketBytes>();
  let key: string | undefined;
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    if (!/^\s/.test(line)) {
      // STATE RECV-Q SEND-Q LOCAL PEER [PROCESS]
      const f = line.trim().split(/\s+/);
      key = f.length >= 5 ? socketKey(normalize(f[3]!), normalize(f[4]!)) : undefined;
      continue;
    }
    if (!key) continue;
    const received = /\bbytes_received:(\d+)/.exec(line);
    // bytes_sent (Linux 4.19+) counts retransmissions too; bytes_acked is the fallback on older kernels.
    const sent = /\bbytes_sent:(\d+)/.exec(line) ?? /\bbytes_acked:(\d+)/.exec(line);
    out.set(key, { bytesIn: received ? Number(received[1]) : 0, bytesOut: sent ? Number(sent[1]) : 0 });
    key = undefined;
  }
  return out;
}

/**
 * Kernel byte counts of the TCP sockets on `ports` (all when empty), or undefined
 * with the reason when `ss` is missing or fails.
 */
export function readSocketBytes(ports: number[]): Promise<{ bytes: Map<string, SocketBytes> } | { bytes: undefined; reason: string }> {
  const filter = ports.length > 0 ? [`( ${ports.map((p) => `sport = :${p} or dport = :${p}`).join(' or ')} )`] : [];
  return new Promise((resolve) => {
    if (process.platform !== 'linux') {
      resolve({ bytes: undefined, reason: 'bytes per connection come from Linux tcp_info' });
      return;
    }
    execFile('ss', ['-tinH', ...filter], { timeout: SS_TIMEOUT_MS, maxBuffer: 16 << 20 }, (err, stdout) => {
      if (err) {
        const e = err as NodeJS.ErrnoException;
        resolve({
          bytes: undefined,
          reason: e.code === 'ENOENT' ? 'bytes per connection need ss (Debian package iproute2)' : `ss failed: ${e.message.split('\n')[0]}`,
        });
        return;
      }
      resolve({ bytes: parseSs(stdout) });
    });
  });
}

/**
 * Add kernel byte counts to a snapshot: to each socket, to each served connection
 * the server did not count itself, and to each process's totals. Mutates `snap`.
 */
export function attachBytes(snap: StatusSnapshot, read: Awaited<ReturnType<typeof readSocketBytes>>): StatusSnapshot {
  if (!read.bytes) {
    snap.notes.push(read.reason);
    return snap;
  }
  const bytes = read.bytes;
  const ports = new Set(snap.ports);
  for (const s of snap.sockets) {
    const b = bytes.get(socketKey(formatEndpoint(s.local), formatEndpoint(s.remote)));
    if (b) Object.assign(s, b);
  }
  const sum = (list: ServedConnection[], k: 'bytesIn' | 'bytesOut') =>
    list.some((c) => c[k] !== undefined) ? list.reduce((n, c) => n + (c[k] ?? 0), 0) : undefined;
  for (const p of snap.processes) {
    for (const c of p.connections) {
      if (c.bytesIn !== undefined) continue;
      const s = snap.sockets.find(
        (x) =>
          (ports.size === 0 ? x.pids.includes(p.pid) : ports.has(x.local.port)) &&
          formatEndpoint(x.remote) === c.remote &&
          x.state !== 'LISTEN',
      );
      if (s?.bytesIn !== undefined) {
        c.bytesIn = s.bytesIn;
        c.bytesOut = s.bytesOut;
      }
    }
    p.bytesIn = sum(p.connections, 'bytesIn');
    p.bytesOut = sum(p.connections, 'bytesOut');
  }
  return snap;
}
