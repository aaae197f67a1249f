/**
 * The admin endpoint: a small HTTP server beside a tcpkit server.
 *
 *   GET /         the live dashboard (one static page, no build step, no CDN)
 *   GET /status   the status snapshot as JSON (server.stats() joined with /proc)
 *   GET /metrics  Prometheus text
 *   GET /events   server-sent events: `snapshot` (at most every 200 ms while things
 *                 happen, and every second regardless) and `log` (each server event:
 *                 `{ time, line, event }`, line as the server logs it)
 *
 * It consumes only what the server publishes (`'event'` records and `stats()`).
 * Loopback only unless `allowPublic`: the snapshot names every peer, and the
 * endpoint has no authentication. For the same reason it answers only requests
 * whose Host header names a loopback address, so a web page elsewhere cannot reach
 * it through DNS rebinding.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { formatAddress, formatEndpoint, type Endpoint, type Family } from '../address.js';
import { InvalidOptionError, SystemCallError } from '../errors.js';
import { formatEvent, type ServerEvent } from '../events.js';
import type { Server } from '../server.js';
import { removeState, writeState } from './discovery.js';
import { createMetrics } from './metrics.js';
import { readTcpTablesAsync } from './procfs.js';
import { collectStatus, type CollectOptions, type StatusSnapshot } from './snapshot.js';
import { attachBytes, readSocketBytes } from './tcpinfo.js';

/** Options of startAdmin. */
export interface AdminOptions {
  /** Address to bind. Default `127.0.0.1`. */
  host?: string;
  /** Port; 0 lets the kernel choose. Default 0. */
  port?: number;
  /** Allow a non-loopback address (the endpoint has no authentication). Default false. */
  allowPublic?: boolean;
  /** Write a state file so `tcpkit status --pid` finds the endpoint. Default true. */
  stateFile?: boolean;
  /** Milliseconds between snapshots pushed to dashboards when nothing happens. Default 1000. */
  intervalMs?: number;
}

/** A running admin endpoint. */
export interface AdminEndpoint {
  /** Base URL, e.g. `http://127.0.0.1:9900`. */
  readonly url: string;
  readonly address: Endpoint;
  /** Stop: end event streams, close the HTTP server, remove the state file. Idempotent. */
  close(): Promise<void>;
}

/** The dashboard page, read once per process (it ships beside the sources: see package.json `files`). */
const DASHBOARD = new URL('../../src/status/dashboard.html', import.meta.url);

/** Shortest gap between two pushed snapshots, so a burst of connections costs a few /proc scans, not one each. */
const MIN_PUSH_MS = 200;

/** Whether `host` is a loopback address or `localhost`. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || h.startsWith('::ffff:127.');
  return false;
}

/** The host part of a Host header (`127.0.0.1:9900`, `[::1]:9900`, `localhost`). */
function hostOfHeader(value: string | undefined): string {
  if (!value) return '';
  const v6 = /^\[([^\]]+)\]/.exec(value);
  if (v6) return v6[1]!;
  return value.replace(/:\d+$/, '');
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new InvalidOptionError(name, `must be a positive integer, got ${JSON.stringify(value)}`);
  return value;
}

/**
 * Start the admin endpoint of `server` (which should already be listening, so the
 * state file can name its address). Throws InvalidOptionError for a non-loopback
 * host without `allowPublic`; rejects with `listen EADDRINUSE ...` if it cannot bind.
 */
export async function startAdmin(server: Server, options: AdminOptions = {}): Promise<AdminEndpoint> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 0;
  const allowPublic = options.allowPublic ?? false;
  const intervalMs = positive('intervalMs', options.intervalMs ?? 1000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidOptionError('admin', `port must be an integer from 0 to 65535, got ${JSON.stringify(port)}`);
  }
  if (!allowPublic && !isLoopback(host)) {
    throw new InvalidOptionError('admin', `${host} is not a loopback address; the admin endpoint has no authentication (allow it with --admin-public)`);
  }
  const page = fs.readFileSync(DASHBOARD);
  const metrics = createMetrics(server);
  const streams = new Set<http.ServerResponse>();
  const snapshot = async (options: CollectOptions = {}): Promise<StatusSnapshot> => {
    // Read /proc/net/tcp off the event loop: on a busy host the kernel takes a while to print it.
    const tables = await readTcpTablesAsync();
    const snap = collectStatus({ ...options, tables, server: server.stats(), pid: process.pid });
    return attachBytes(snap, await readSocketBytes(snap.ports));
  };

  let lastPush = 0;
  let pushTimer: NodeJS.Timeout | undefined;
  let pushing = false;
  let again = false;
  let closed = false;
  const push = () => {
    pushTimer = undefined;
    // One snapshot at a time: a slow `ss` must not pile up reads.
    if (streams.size === 0) return;
    if (pushing) {
      again = true;
      return;
    }
    pushing = true;
    lastPush = Date.now();
    snapshot()
      .then((snap) => {
        if (closed) return;
        const data = `event: snapshot\ndata: ${JSON.stringify(snap)}\n\n`;
        for (const res of streams) res.write(data);
      })
      .catch(() => {})
      .finally(() => {
        pushing = false;
        if (again && !closed) {
          again = false;
          push();
        }
      });
  };
  const schedule = () => {
    if (pushTimer || streams.size === 0) return;
    pushTimer = setTimeout(push, Math.max(0, lastPush + MIN_PUSH_MS - Date.now()));
  };
  const ticker = setInterval(push, intervalMs);
  const onEvent = (e: ServerEvent) => {
    if (streams.size === 0) return;
    // The record and its log line: the dashboard prints the same grammar as the server's stderr.
    const data = `event: log\ndata: ${JSON.stringify({ time: Date.now(), line: formatEvent(e), event: e })}\n\n`;
    for (const res of streams) res.write(data);
    schedule();
  };
  server.on('event', onEvent);

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (!allowPublic && !isLoopback(hostOfHeader(req.headers.host))) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('admin: Host must be a loopback address\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://admin');
    res.setHeader('x-content-type-options', 'nosniff');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end(`admin: ${req.method} not allowed\n`);
      return;
    }
    switch (url.pathname) {
      case '/':
      case '/index.html':
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-store',
          // Everything is inline and same-origin: no CDN, nothing else may load.
          'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
        });
        res.end(req.method === 'HEAD' ? undefined : page);
        return;
      case '/status': {
        const body = `${JSON.stringify(await snapshot({ threads: url.searchParams.has('threads') }), null, 2)}\n`;
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      case '/metrics': {
        const body = await metrics.text();
        res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      case '/events':
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
        if (req.method === 'HEAD') {
          res.end();
          return;
        }
        // Registered before the first snapshot is read, so no event falls between the two.
        streams.add(res);
        res.on('close', () => streams.delete(res));
        res.write('retry: 1000\n\n');
        push();
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`admin: no such page ${url.pathname} (try /, /status, /metrics, /events)\n`);
    }
  };

  const http_ = http.createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`admin: ${err.message}\n`);
    });
  });
  const cleanup = () => {
    closed = true;
    clearInterval(ticker);
    if (pushTimer) clearTimeout(pushTimer);
    server.off('event', onEvent);
    metrics.close();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      http_.once('error', reject);
      http_.listen({ host, port }, () => {
        http_.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    cleanup();
    throw new SystemCallError('listen', formatAddress(host, port), err);
  }
  const a = http_.address() as net.AddressInfo;
  const address: Endpoint = { address: a.address, port: a.port, family: a.family as Family };
  const url = `http://${formatAddress(a.address, a.port)}`;
  const local = server.address();
  let file: string | undefined;
  try {
    file =
      options.stateFile === false
        ? undefined
        : writeState({
            pid: process.pid,
            admin: url,
            listen: local ? formatEndpoint(local) : '',
            startedAt: Math.round(Date.now() - process.uptime() * 1000),
          });
  } catch (err) {
    // An unsafe state directory (StateDirError): nothing of the endpoint stays open.
    cleanup();
    http_.close();
    http_.closeAllConnections();
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    url,
    address,
    close() {
      if (closing) return closing;
      cleanup();
      if (file) removeState(file);
      for (const res of streams) res.end();
      streams.clear();
      closing = new Promise<void>((resolve) => {
        http_.close(() => resolve());
        http_.closeAllConnections();
      });
      return closing;
    },
  };
}
