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
 * It consumes only what a StatusSource publishes (`'event'` records and `stats()`):
 * a Server, or the Supervisor of `serve --config` (then every service is shown).
 * Loopback only unless `allowPublic` or a `token`: the snapshot names every peer.
 * It answers only requests whose Host header names a loopback address (unless public
 * or token-protected), so a web page elsewhere cannot reach it through DNS rebinding.
 *
 * What a client can make it spend is bounded:
 *   - snapshots (/proc scans and `ss`) are shared: one in flight at a time, and a
 *     result is reused for SNAPSHOT_TTL_MS, however many requests and streams ask;
 *   - a snapshot lists at most a few TIME_WAIT sockets and counts the rest;
 *   - at most `maxStreams` /events streams; a stream whose unsent bytes pass
 *     `maxStreamBuffer` (a client that does not read) is dropped;
 *   - a browser request from another site (Sec-Fetch-Site other than same-origin or
 *     none, or a foreign Origin) gets 403 for everything but the static page, so a
 *     web page cannot make a visitor's browser run /status in a loop (`no-cors`);
 *   - with `token`, every request needs `Authorization: Bearer TOKEN` (or `?token=`,
 *     which the dashboard passes on to /events).
 */
import { timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { formatAddress, formatEndpoint, type Endpoint, type Family } from '../address.js';
import { InvalidOptionError, SystemCallError } from '../errors.js';
import { formatEvent, type ServerEvent } from '../events.js';
import { isSupervisorStats, servicesOf, type StatusSource } from './source.js';
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
  /**
   * A secret every request must present (`Authorization: Bearer TOKEN`, or `?token=TOKEN`).
   * With it, a non-loopback address is allowed without `allowPublic`. Default none.
   */
  token?: string;
  /** Concurrent /events streams; more get 503. Default 16. */
  maxStreams?: number;
  /** Bytes a stream may have queued unsent before it is dropped (a client that does not read). Default 1 MiB. */
  maxStreamBuffer?: number;
}

/** How long one snapshot (a /proc scan and an `ss` run) answers every request: 250 ms. */
export const SNAPSHOT_TTL_MS = 250;
/** TIME_WAIT sockets a snapshot lists (the rest are counted): 64. */
export const SNAPSHOT_MAX_TIME_WAIT = 64;
/** Sockets a snapshot lists in all: 2000. */
export const SNAPSHOT_MAX_SOCKETS = 2000;
/** Recent events a new /events stream gets first, so the dashboard's Events panel does not open empty: 100. */
export const EVENT_BACKLOG = 100;

/** Where the page's first snapshot goes (inlined, so it draws at once instead of "connecting…"). */
const INITIAL_MARK = '<!--tcpkit:initial-->';

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

/** Whether a request from a browser came from the dashboard's own origin (or from no page at all). */
function sameOrigin(req: http.IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${req.headers.host ?? ''}`) return false;
  return true;
}

/** Whether the request carries `token` (constant-time comparison). */
function authorized(req: http.IncomingMessage, url: URL, token: Buffer): boolean {
  const header = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
  const given = Buffer.from(header ?? url.searchParams.get('token') ?? '');
  return given.length === token.length && timingSafeEqual(given, token);
}

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
 * Start the admin endpoint of `source` (a Server or a Supervisor, already listening,
 * so the state file can name its address). Throws InvalidOptionError for a
 * non-loopback host without `allowPublic` or `token`; rejects with
 * `listen EADDRINUSE ...` if it cannot bind.
 */
export async function startAdmin(source: StatusSource, options: AdminOptions = {}): Promise<AdminEndpoint> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 0;
  const token = options.token === undefined ? undefined : Buffer.from(options.token);
  if (token && (token.length === 0 || /\s/.test(options.token!))) {
    throw new InvalidOptionError('adminToken', 'must be a non-empty string without spaces');
  }
  // A token stands in for the loopback restriction (and for the Host check below).
  const allowPublic = (options.allowPublic ?? false) || token !== undefined;
  const intervalMs = positive('intervalMs', options.intervalMs ?? 1000);
  const maxStreams = positive('maxStreams', options.maxStreams ?? 16);
  const maxStreamBuffer = positive('maxStreamBuffer', options.maxStreamBuffer ?? 1 << 20);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidOptionError('admin', `port must be an integer from 0 to 65535, got ${JSON.stringify(port)}`);
  }
  if (!allowPublic && !isLoopback(host)) {
    throw new InvalidOptionError('admin', `${host} is not a loopback address; the admin endpoint has no authentication (allow it with --admin-public)`);
  }
  const page = fs.readFileSync(DASHBOARD, 'utf8');
  const metrics = createMetrics(source);
  const streams = new Set<http.ServerResponse>();
  const take = async (options: CollectOptions): Promise<StatusSnapshot> => {
    // Read /proc/net/tcp off the event loop: on a busy host the kernel takes a while to print it.
    const tables = await readTcpTablesAsync();
    const stats = source.stats();
    const bounds = { maxTimeWait: SNAPSHOT_MAX_TIME_WAIT, maxSockets: SNAPSHOT_MAX_SOCKETS };
    const snap = isSupervisorStats(stats)
      ? collectStatus({ ...options, ...bounds, tables, services: stats.services, pid: process.pid })
      : collectStatus({ ...options, ...bounds, tables, server: stats, pid: process.pid });
    return attachBytes(snap, await readSocketBytes(snap.ports));
  };
  // One snapshot in flight per kind, and each reused for SNAPSHOT_TTL_MS: a hundred requests cost one scan.
  const cache = new Map<string, { at: number; value: Promise<StatusSnapshot> }>();
  const snapshot = (options: CollectOptions = {}): Promise<StatusSnapshot> => {
    const key = options.threads ? 'threads' : 'plain';
    const hit = cache.get(key);
    if (hit && (hit.at === 0 || Date.now() - hit.at < SNAPSHOT_TTL_MS)) return hit.value;
    const entry = { at: 0, value: take(options) };
    cache.set(key, entry);
    entry.value.then(
      () => (entry.at = Date.now()),
      () => cache.delete(key),
    );
    return entry.value;
  };
  /** Write to a stream, or drop it if its client has stopped reading (bounded memory per stream). */
  const send = (res: http.ServerResponse, data: string) => {
    if (res.writableLength > maxStreamBuffer) {
      streams.delete(res);
      res.destroy();
      return;
    }
    res.write(data);
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
        for (const res of streams) send(res, data);
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
  // The record and its log line: the dashboard prints the same grammar as the server's stderr.
  const logMessage = ({ time, event }: { time: number; event: ServerEvent }) =>
    `event: log\ndata: ${JSON.stringify({ time, line: formatEvent(event), event })}\n\n`;
  /**
   * The last EVENT_BACKLOG events, oldest first: what a new stream is sent first. Kept as
   * records and encoded when a stream asks, so that with no dashboard open a connection's
   * events cost no JSON encoding or log line here.
   */
  const backlog: Array<{ time: number; event: ServerEvent }> = [];
  const onEvent = (e: ServerEvent) => {
    const record = { time: Date.now(), event: e };
    backlog.push(record);
    if (backlog.length > EVENT_BACKLOG) backlog.shift();
    if (streams.size === 0) return;
    const data = logMessage(record);
    for (const res of streams) send(res, data);
    schedule();
  };
  source.on('event', onEvent);

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (!allowPublic && !isLoopback(hostOfHeader(req.headers.host))) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('admin: Host must be a loopback address\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://admin');
    res.setHeader('x-content-type-options', 'nosniff');
    if (token && !authorized(req, url, token)) {
      res.writeHead(401, { 'www-authenticate': 'Bearer', 'content-type': 'text/plain' }).end('admin: a bearer token is required\n');
      return;
    }
    const isPage = url.pathname === '/' || url.pathname === '/index.html';
    if (!isPage && !sameOrigin(req)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('admin: cross-site request refused (only the dashboard itself may ask)\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end(`admin: ${req.method} not allowed\n`);
      return;
    }
    switch (url.pathname) {
      case '/':
      case '/index.html': {
        // The current snapshot inlined: the page draws the server at once, before its event stream opens.
        // `<` escaped so no text of the snapshot (a peer's address, a command line) can end the script element.
        const initial = req.method === 'HEAD' ? 'null' : JSON.stringify(await snapshot().catch(() => null)).replace(/</g, '\\u003c');
        const body = page.replace(INITIAL_MARK, `<script id="initial" type="application/json">${initial}</script>`);
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-store',
          // Everything is inline and same-origin: no CDN, nothing else may load.
          'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
        });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
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
        if (req.method === 'HEAD') {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
          res.end();
          return;
        }
        if (streams.size >= maxStreams) {
          res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '5' }).end(`admin: ${maxStreams} event streams are open already\n`);
          return;
        }
        // Registered before the first snapshot is read, so no event falls between the two.
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
        streams.add(res);
        res.on('close', () => streams.delete(res));
        res.write('retry: 1000\n\n');
        // The recent events first: the Events panel opens with what just happened, not empty.
        if (backlog.length > 0) send(res, backlog.map(logMessage).join(''));
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
    source.off('event', onEvent);
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
  const local = servicesOf(source.stats()).find(([, s]) => s.local)?.[1].local;
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
