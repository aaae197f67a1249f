/**
 * Taking a PROXY protocol header off an accepted connection, and nothing else.
 *
 * The connection's socket is about to go to a child process or an exec'd program
 * as its descriptors 0 and 1, so the parent must consume exactly the header's bytes
 * and leave every byte of the client's in the kernel's queue. Node's streams read
 * whatever has arrived, so the reader works below them on the descriptor: recv with
 * MSG_PEEK|MSG_DONTWAIT looks at the first bytes without taking them until the
 * parser says the header is complete, then one recv of exactly its length takes it.
 *
 * The socket stays paused throughout (the listener accepts with pauseOnConnect),
 * so libuv is not reading it. Nothing tells us when more bytes arrive without
 * reading them, so the reader looks again on a short timer that backs off (1 ms,
 * doubling to 16 ms): a balancer sends the header with its first segment, so
 * nearly every header is complete at the first or second look.
 *
 *   accept ─► peek ─► parse: incomplete ─► wait, peek again (until --proxy-timeout)
 *                          complete   ─► recv(header length) ─► hand the socket on
 *                          invalid    ─► refuse: log, close this connection only
 */
import type net from 'node:net';
import { announceEnds, realEndpointsOf, type ConnectionEnds } from '../address.js';
import { ProxyProtocolError } from '../errors.js';
import type { ServerEvent } from '../events.js';
import { fdutil } from './fdutil.js';
import { REPORT_MS } from '../options.js';
import { socketFd as internalSocketFd } from './internals.js';
import { parseProxyHeader, V1_MAX_LENGTH, type ProxyHeader, type ProxyParseOptions } from './proxy-protocol.js';

/** Options of readProxyHeader and ProxyGate. */
export interface ProxyReadOptions extends ProxyParseOptions {
  /** Milliseconds the whole header may take to arrive. Default 5000 (the specification asks for at least 3 s). */
  timeoutMs?: number;
}

/** Options of ProxyGate. */
export interface ProxyGateOptions extends ProxyReadOptions {
  /**
   * Connections that may wait for their header at once; beyond that a new one is
   * refused (`reason proxy-busy`) so that silent peers cannot pile up descriptors.
   * Default 256.
   */
  maxPending?: number;
}

const FIRST_WAIT_MS = 1;
const MAX_WAIT_MS = 16;

/**
 * The descriptor of an accepted net.Socket (./internals.ts), read only while the
 * socket is paused, so no read by libuv can race with ours.
 */
function socketFd(socket: net.Socket): number | undefined {
  const fd = internalSocketFd(socket);
  return fd >= 0 ? fd : undefined;
}

/** The peer went away (or the socket was destroyed) before the header was complete. */
function truncated(got: number, why: string): ProxyProtocolError {
  return new ProxyProtocolError('truncated', `${why} after ${got} byte${got === 1 ? '' : 's'}, before the PROXY header was complete`);
}

/**
 * Read and consume exactly one PROXY header from a paused, accepted socket.
 * Resolves with the header; rejects with a ProxyProtocolError (never anything else)
 * whose `reason` says why: missing, malformed, version, oversized, checksum,
 * truncated (closed or reset first) or timeout. The socket is left open either way.
 */
export function readProxyHeader(socket: net.Socket, options: ProxyReadOptions = {}): Promise<ProxyHeader> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let wait = FIRST_WAIT_MS;
    let need = V1_MAX_LENGTH; // enough for any v1 line and most v2 headers in one look
    let got = 0;
    let seen = 0;
    const look = () => {
      const fd = socketFd(socket);
      if (fd === undefined || socket.destroyed) {
        reject(truncated(got, 'connection closed'));
        return;
      }
      let hup: boolean;
      try {
        // Ask about the FIN first: if it had come, the peeks below see every byte there will be.
        hup = fdutil.rdhup(fd);
        for (;;) {
          const asked = need;
          const bytes = fdutil.recv(fd, asked, true);
          if (bytes === null) break;
          if (bytes.length === 0) {
            reject(truncated(got, 'peer closed'));
            return;
          }
          got = bytes.length;
          const parsed = parseProxyHeader(bytes, options);
          if (parsed.state === 'invalid') {
            reject(parsed.error);
            return;
          }
          if (parsed.state === 'complete') {
            consume(fd, parsed.header);
            return;
          }
          need = parsed.need;
          // The peek was cut at what we asked for and the parser wants more: look again now.
          if (!(got === asked && need > asked)) break;
        }
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
        reject(truncated(got, code === 'ECONNRESET' ? 'connection reset' : `recv ${code}`));
        return;
      }
      if (hup) {
        reject(truncated(got, 'peer closed'));
        return;
      }
      const left = timeoutMs - (Date.now() - started);
      if (left <= 0) {
        reject(new ProxyProtocolError('timeout', `no complete PROXY header within ${timeoutMs} ms (${got} bytes arrived)`));
        return;
      }
      // Progress resets the back-off; a peer that stalls is looked at less and less often.
      wait = got > seen ? FIRST_WAIT_MS : Math.min(wait * 2, MAX_WAIT_MS);
      seen = got;
      setTimeout(look, Math.min(wait, left));
    };
    const consume = (fd: number, header: ProxyHeader) => {
      try {
        // The peeked bytes are still queued, so this returns exactly header.length.
        const taken = fdutil.recv(fd, header.length, false);
        if (taken === null || taken.length !== header.length) {
          reject(truncated(taken?.length ?? 0, 'short read'));
          return;
        }
      } catch (err) {
        reject(truncated(got, `recv ${(err as NodeJS.ErrnoException).code ?? 'EIO'}`));
        return;
      }
      resolve(header);
    };
    look();
  });
}

/**
 * The ends a header gives a connection: the header's source and destination for a
 * PROXY command with TCP addresses, the real ones (unchanged) otherwise, as the
 * specification asks for LOCAL, UNKNOWN and UNSPEC.
 */
export function endsFromHeader(real: { local: ConnectionEnds['local']; remote: ConnectionEnds['remote'] }, header: ProxyHeader): ConnectionEnds {
  if (header.command !== 'PROXY' || !header.source || !header.destination) return { local: real.local, remote: real.remote };
  return { local: header.destination, remote: header.source, via: { remote: real.remote, local: real.local, version: header.version } };
}

/** Handlers of ProxyGate. */
export interface ProxyGateHandlers {
  /** The header was consumed; endpointsOf(socket) now gives the header's ends. */
  pass(socket: net.Socket): void;
  /** The header was refused (the gate then destroys the socket); `real` is undefined if the peer was already gone. */
  refuse(error: ProxyProtocolError, real: { local: ConnectionEnds['local']; remote: ConnectionEnds['remote'] } | undefined): void;
}

/**
 * Every accepted connection passes through the gate: its header is read, then the
 * socket goes on with the header's ends announced, or it is refused and closed.
 * One connection's bad or slow header never holds up another.
 */
export class ProxyGate {
  readonly #options: ProxyReadOptions;
  readonly #maxPending: number;
  readonly #handlers: ProxyGateHandlers;
  readonly #pending = new Set<net.Socket>();
  #idle: Array<() => void> = [];

  constructor(options: ProxyGateOptions, handlers: ProxyGateHandlers) {
    const { maxPending = 256, ...read } = options;
    this.#options = read;
    this.#maxPending = maxPending;
    this.#handlers = handlers;
  }

  /** Connections waiting for their header now. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Take one accepted, paused socket. */
  take(socket: net.Socket): void {
    const real = realEndpointsOf(socket);
    if (this.#pending.size >= this.#maxPending) {
      this.#refuse(socket, new ProxyProtocolError('busy', `${this.#maxPending} connections are already waiting for their PROXY header`), real);
      return;
    }
    this.#pending.add(socket);
    readProxyHeader(socket, this.#options).then(
      (header) => {
        this.#done(socket);
        if (socket.destroyed) return;
        if (real) announceEnds(socket, endsFromHeader(real, header));
        this.#handlers.pass(socket);
      },
      (err: ProxyProtocolError) => {
        this.#done(socket);
        this.#refuse(socket, err, real);
      },
    );
  }

  /** Resolves once no connection is waiting for its header (each is bounded by the timeout). */
  settled(): Promise<void> {
    if (this.#pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Close every connection still waiting for its header (each is then refused as truncated). */
  destroy(): void {
    for (const socket of this.#pending) socket.destroy();
  }

  #done(socket: net.Socket): void {
    this.#pending.delete(socket);
    if (this.#pending.size === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  #refuse(socket: net.Socket, error: ProxyProtocolError, real: Parameters<ProxyGateHandlers['refuse']>[1]): void {
    socket.destroy();
    this.#handlers.refuse(error, real);
  }
}

type ProxyErrorLike = { reason: string; code: string; message: string };

/**
 * The one log line for a refused header: `refuse REAL -> LOCAL ... reason proxy-REASON
 * message "..."`, or `error where proxy ...` when the peer was gone before its
 * address could be read. Prefer ProxyRefusals, which rate-limits the second kind.
 */
export function proxyRefusal(error: ProxyErrorLike, real: { local: ConnectionEnds['local']; remote: ConnectionEnds['remote'] } | undefined): ServerEvent {
  if (real) return { type: 'refuse', remote: real.remote, local: real.local, reason: `proxy-${error.reason}`, message: error.message };
  return { type: 'error', where: 'proxy', code: error.code, message: error.message };
}

/**
 * Log lines for refused headers, as the server and pool workers that accept
 * themselves emit them. A refusal with a known peer is one `refuse` line, like any
 * refusal. A peer that reset before its address could be read (getpeername:
 * ENOTCONN; libuv's accept keeps no address) has no peer to name, and a flood of
 * resets would otherwise flood the log whatever `-q` says: those are folded into
 * at most one `error where proxy ... suppressed N` line a second (N: the others
 * since the last line), as descriptor exhaustion is. `close()` ends the pending report.
 */
export class ProxyRefusals {
  readonly #emit: (event: ServerEvent) => void;
  #lastReport = -Infinity;
  #suppressed = 0;
  #last: ProxyErrorLike | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(emit: (event: ServerEvent) => void) {
    this.#emit = emit;
  }

  refuse(error: ProxyErrorLike, real: Parameters<ProxyGateHandlers['refuse']>[1]): void {
    if (real) {
      this.#emit(proxyRefusal(error, real));
      return;
    }
    this.#last = { reason: error.reason, code: error.code, message: error.message };
    const wait = this.#lastReport + REPORT_MS - Date.now();
    if (wait > 0) {
      this.#suppressed++;
      // The count of a burst is reported when its second is over, not at the next burst.
      this.#timer ??= setTimeout(() => this.#report(), wait);
      this.#timer.unref();
      return;
    }
    this.#report();
  }

  #report(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const last = this.#last;
    if (!last) return;
    const suppressed = this.#suppressed;
    this.#lastReport = Date.now();
    this.#suppressed = 0;
    this.#last = undefined;
    this.#emit({ type: 'error', where: 'proxy', code: last.code, ...(suppressed > 0 && { suppressed }), message: `${last.message} (peer gone before its address could be read)` });
  }

  /** Report what is still counted and stop the timer. Idempotent. */
  close(): void {
    if (this.#suppressed > 0) {
      this.#lastReport = -Infinity;
      this.#report();
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
