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
 * so libuv is not reading it; on the native path (./fast-path.ts: a program per
 * connection) there is no socket at all, and the gate reads the bare descriptor the
 * same way. To learn that more bytes arrived without reading them,
 * the reader arms a watcher (fdutil.watch: a uv_poll on a duplicate of the descriptor,
 * with SO_RCVLOWAT one above the bytes already seen): it wakes only when the peer
 * sends more, closes or resets. A silent connection costs one descriptor, one poll
 * registration and one deadline timer, and no CPU until something happens.
 *
 * Before any of that the gate decides whether the peer may send a header at all
 * (`from`: the load balancers' addresses), and caps the connections waiting for one,
 * in total and per source, so one source cannot lock the balancer out.
 *
 *   accept ─► peek ─► parse: incomplete ─► wait, peek again (until --proxy-timeout)
 *                          complete   ─► recv(header length) ─► hand the socket on
 *                          invalid    ─► refuse: log, close this connection only
 */
import type net from 'node:net';
import { realEndpointsOf, type ConnectionEnds, type Endpoint } from '../address.js';
import { AccessRules, unmapIPv4 } from '../admission/access.js';
import { InvalidOptionError, ProxyProtocolError } from '../errors.js';
import type { ServerEvent } from '../events.js';
import { fdutil, type WatchHandle } from './fdutil.js';
import { FoldedLines } from './folded.js';
import { socketFd as internalSocketFd } from './internals.js';
import { parseProxyHeader, V1_MAX_LENGTH, V2_MAX_LENGTH, type ProxyHeader, type ProxyParseOptions } from './proxy-protocol.js';

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
  /**
   * Connections from one real peer address that may wait for their header at once;
   * beyond that that peer's new connection is refused (`reason proxy-busy`), so a
   * source holding silent connections cannot fill `maxPending` and lock out the real
   * balancer. Default 32.
   */
  maxPendingPerSource?: number;
  /**
   * Peers allowed to send a PROXY header (load balancers): addresses or CIDR blocks,
   * IPv4 or IPv6 (`192.0.2.0/24`, `::1`). Default: every peer (trust whoever connects).
   */
  from?: readonly string[];
  /**
   * What happens to a connection from a peer not in `from`: `refuse` closes it
   * (`reason proxy-untrusted`); `direct` serves it as itself, reading no header (its
   * bytes, a forged header included, go to the service as data). Default `refuse`.
   */
  untrusted?: 'refuse' | 'direct';
}

/** The largest recv and SO_RCVLOWAT fdutil takes: the longest v2 header. */
const RECV_LIMIT = V2_MAX_LENGTH;

/** Default of ProxyGateOptions.maxPending. */
export const DEFAULT_PROXY_MAX_PENDING = 256;
/** Default of ProxyGateOptions.maxPendingPerSource. */
export const DEFAULT_PROXY_MAX_PENDING_PER_SOURCE = 32;

/** Compile `from` (throws InvalidOptionError naming `proxyFrom[i]` for a bad entry). */
export function proxyTrust(from: readonly string[]): AccessRules {
  // An empty list trusts nobody (AccessRules alone would allow every peer for no rules).
  if (from.length === 0) return new AccessRules([{ action: 'deny', from: 'all' }], 'proxyFrom');
  return new AccessRules(
    from.map((f) => ({ action: 'allow' as const, from: f })),
    'proxyFrom',
  );
}

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
  const err = new ProxyProtocolError('truncated', `${why} after ${got} byte${got === 1 ? '' : 's'}, before the PROXY header was complete`);
  return Object.assign(err, { bytes: got });
}

/**
 * What a header is read from: an accepted socket (paused, so libuv is not reading it), or
 * on the native path (./fast-path.ts) a bare accepted descriptor that the gate holds until
 * it passes it on or refuses it.
 */
interface HeaderSource {
  /** The descriptor, or undefined once the connection is closed. */
  fd(): number | undefined;
  /** `listener` runs once if the connection is closed before its header is read; returns how to stop listening. */
  onClose(listener: () => void): () => void;
  /** Close it (refused, or the gate destroyed). Idempotent. */
  destroy(): void;
}

function socketSource(socket: net.Socket): HeaderSource {
  return {
    fd: () => (socket.destroyed ? undefined : socketFd(socket)),
    onClose(listener) {
      socket.once('close', listener);
      return () => socket.off('close', listener);
    },
    destroy: () => void socket.destroy(),
  };
}

/** A bare descriptor: nobody else can close it, so closing is destroy(), which tells the reader. */
function descriptorSource(fd: number): HeaderSource {
  let open = true;
  let listeners: Array<() => void> = [];
  return {
    fd: () => (open ? fd : undefined),
    onClose(listener) {
      listeners.push(listener);
      return () => (listeners = listeners.filter((l) => l !== listener));
    },
    destroy() {
      if (!open) return;
      open = false;
      fdutil.close(fd);
      for (const l of listeners.splice(0)) l();
    },
  };
}

/**
 * Read and consume exactly one PROXY header from a paused, accepted socket.
 * Resolves with the header; rejects with a ProxyProtocolError (never anything else)
 * whose `reason` says why: missing, malformed, version, oversized, checksum,
 * truncated (closed or reset first) or timeout. The socket is left open either way.
 */
export function readProxyHeader(socket: net.Socket, options: ProxyReadOptions = {}): Promise<ProxyHeader> {
  return readHeader(socketSource(socket), options);
}

function readHeader(source: HeaderSource, options: ProxyReadOptions): Promise<ProxyHeader> {
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    let need = V1_MAX_LENGTH; // enough for any v1 line and most v2 headers in one look
    let got = 0;
    let watch: WatchHandle | undefined;
    let done = false;
    // Every way out releases the deadline, the watcher and the close listener.
    const finish = (err: ProxyProtocolError | undefined, header?: ProxyHeader) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      if (watch) fdutil.watchClose(watch);
      stopListening();
      if (err) reject(err);
      else resolve(header!);
    };
    const look = () => {
      if (done) return;
      const fd = source.fd();
      if (fd === undefined) {
        finish(truncated(got, 'connection closed'));
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
            finish(truncated(got, 'peer closed'));
            return;
          }
          got = bytes.length;
          const parsed = parseProxyHeader(bytes, options);
          if (parsed.state === 'invalid') {
            finish(parsed.error);
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
        finish(truncated(got, code === 'ECONNRESET' ? 'connection reset' : `recv ${code}`));
        return;
      }
      if (hup) {
        finish(truncated(got, 'peer closed'));
        return;
      }
      try {
        // Sleep until the queue holds more than we have seen (or the peer closes or resets).
        watch ??= fdutil.watch(fd, look);
        fdutil.watchArm(watch, Math.min(got + 1, RECV_LIMIT));
      } catch (err) {
        finish(truncated(got, `poll ${(err as NodeJS.ErrnoException).code ?? 'EIO'}`));
      }
    };
    const consume = (fd: number, header: ProxyHeader) => {
      try {
        // The peeked bytes are still queued, so this returns exactly header.length.
        const taken = fdutil.recv(fd, header.length, false);
        if (taken === null || taken.length !== header.length) {
          finish(truncated(taken?.length ?? 0, 'short read'));
          return;
        }
      } catch (err) {
        finish(truncated(got, `recv ${(err as NodeJS.ErrnoException).code ?? 'EIO'}`));
        return;
      }
      finish(undefined, header);
    };
    // One deadline per connection, set once: nothing wakes up while the peer is silent.
    const deadline = setTimeout(
      () => finish(new ProxyProtocolError('timeout', `no complete PROXY header within ${timeoutMs} ms (${got} bytes arrived)`)),
      timeoutMs,
    );
    // The watcher holds a duplicate of the descriptor: it must go when the connection does.
    const stopListening = source.onClose(() => finish(truncated(got, 'connection closed')));
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
  /**
   * The connection goes on: with the ends its header named (the real ones under `via`),
   * or with none when it is served as itself (an untrusted peer under `direct`).
   */
  pass(socket: net.Socket, announced?: ConnectionEnds): void;
  /** The header was refused (the gate then destroys the socket); `real` is undefined if the peer was already gone. */
  refuse(error: ProxyProtocolError, real: { local: ConnectionEnds['local']; remote: ConnectionEnds['remote'] } | undefined): void;
}

/**
 * Every accepted connection passes through the gate: a peer not in `from` is refused
 * (or passed on as itself), the others' header is read, then the socket goes on with
 * the header's ends announced, or it is refused and closed. One connection's bad or
 * slow header never holds up another.
 */
export class ProxyGate {
  readonly #options: ProxyReadOptions;
  readonly #maxPending: number;
  readonly #maxPerSource: number;
  readonly #trusted: AccessRules | undefined;
  readonly #untrusted: 'refuse' | 'direct';
  readonly #handlers: ProxyGateHandlers;
  readonly #pending = new Set<HeaderSource>();
  /** Connections waiting per real peer address; an entry goes when its count reaches 0. */
  readonly #perSource = new Map<string, number>();
  #idle: Array<() => void> = [];

  /** Throws InvalidOptionError for a bad `from` entry or limit. */
  constructor(options: ProxyGateOptions, handlers: ProxyGateHandlers) {
    const {
      maxPending = DEFAULT_PROXY_MAX_PENDING,
      maxPendingPerSource = DEFAULT_PROXY_MAX_PENDING_PER_SOURCE,
      from,
      untrusted = 'refuse',
      ...read
    } = options;
    for (const [name, v] of [['maxPending', maxPending], ['maxPendingPerSource', maxPendingPerSource]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 1_000_000) {
        throw new InvalidOptionError(name, `must be an integer from 1 to 1000000, got ${JSON.stringify(v)}`);
      }
    }
    if (untrusted !== 'refuse' && untrusted !== 'direct') {
      throw new InvalidOptionError('proxyUntrusted', `must be refuse or direct, got ${JSON.stringify(untrusted)}`);
    }
    this.#options = read;
    this.#maxPending = maxPending;
    this.#maxPerSource = maxPendingPerSource;
    this.#trusted = from === undefined ? undefined : proxyTrust(from);
    this.#untrusted = untrusted;
    this.#handlers = handlers;
  }

  /** Connections waiting for their header now. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Take one accepted, paused socket. */
  take(socket: net.Socket): void {
    const real = realEndpointsOf(socket);
    const source = socketSource(socket);
    if (!real) {
      // Gone before getpeername: nothing to serve, nothing to name.
      this.#refuse(source, truncated(0, 'connection closed'), undefined);
      return;
    }
    this.#take(source, real, (announced) => {
      if (!socket.destroyed) this.#handlers.pass(socket, announced);
    });
  }

  /**
   * Take one bare accepted descriptor (the native path: ./fast-path.ts), whose ends the accept
   * gave: `pass` gets it back with the ends its header named (none: served as itself), now the
   * caller's; refused, the gate closes it and tells the handlers' `refuse`.
   */
  takeDescriptor(fd: number, real: { local: Endpoint; remote: Endpoint }, pass: (announced?: ConnectionEnds) => void): void {
    this.#take(descriptorSource(fd), real, pass);
  }

  #take(conn: HeaderSource, real: { local: Endpoint; remote: Endpoint }, pass: (announced?: ConnectionEnds) => void): void {
    const source = unmapIPv4(real.remote.address);
    if (this.#trusted && !this.#trusted.check(source).ok) {
      if (this.#untrusted === 'direct') {
        // Served as itself: its real ends stand, and nothing of its bytes is taken.
        pass();
        return;
      }
      this.#refuse(conn, new ProxyProtocolError('untrusted', `${source} may not send a PROXY header (not in --proxy-from)`), real);
      return;
    }
    if (this.#pending.size >= this.#maxPending) {
      this.#refuse(conn, new ProxyProtocolError('busy', `${this.#maxPending} connections are already waiting for their PROXY header`), real);
      return;
    }
    const waiting = this.#perSource.get(source) ?? 0;
    if (waiting >= this.#maxPerSource) {
      this.#refuse(conn, new ProxyProtocolError('busy', `${waiting} connections from ${source} are already waiting for their PROXY header`), real);
      return;
    }
    this.#perSource.set(source, waiting + 1);
    this.#pending.add(conn);
    readHeader(conn, this.#options).then(
      (header) => {
        this.#done(conn, source);
        if (conn.fd() === undefined) return;
        pass(endsFromHeader(real, header));
      },
      (err: ProxyProtocolError) => {
        this.#done(conn, source);
        this.#refuse(conn, err, real);
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
    for (const conn of this.#pending) conn.destroy();
  }

  #done(conn: HeaderSource, source: string): void {
    this.#pending.delete(conn);
    const n = (this.#perSource.get(source) ?? 1) - 1;
    if (n > 0) this.#perSource.set(source, n);
    else this.#perSource.delete(source);
    if (this.#pending.size === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  #refuse(conn: HeaderSource, error: ProxyProtocolError, real: Parameters<ProxyGateHandlers['refuse']>[1]): void {
    conn.destroy();
    this.#handlers.refuse(error, real);
  }
}

/** `bytes`: what the peer had sent when it went away (a truncated header), when known. */
type ProxyErrorLike = { reason: string; code: string; message: string; bytes?: number };

/**
 * A peer that connected and went away without sending a byte: a TCP health check (HAProxy's `check`
 * connects, then resets at once, header or not) or a port scan. Nothing was refused and nobody acts
 * on it, so it is not logged: behind a balancer it was a line a second forever, even with `-q`.
 */
function isProbe(error: ProxyErrorLike): boolean {
  return error.reason === 'truncated' && error.bytes === 0;
}

/** What a refused header is logged as. */
export type ProxyRefusalEvent = Extract<ServerEvent, { type: 'refuse' | 'error' }>;

/**
 * The one log line for a refused header: `refuse REAL -> LOCAL ... reason proxy-REASON
 * message "..."`, or `error where proxy ...` when the peer was gone before its
 * address could be read. Prefer ProxyRefusals, which rate-limits the second kind.
 */
export function proxyRefusal(error: ProxyErrorLike, real: { local: ConnectionEnds['local']; remote: ConnectionEnds['remote'] } | undefined): ProxyRefusalEvent {
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
 * since the last line), as descriptor exhaustion is. A peer that sent nothing at all
 * (a health check, isProbe) is not logged. `close()` ends the pending report.
 */
export class ProxyRefusals {
  readonly #emit: (event: ProxyRefusalEvent) => void;
  readonly #lines: FoldedLines<ProxyErrorLike>;

  constructor(emit: (event: ProxyRefusalEvent) => void) {
    this.#emit = emit;
    this.#lines = new FoldedLines((last, suppressed) =>
      emit({ type: 'error', where: 'proxy', code: last.code, ...(suppressed > 0 && { suppressed }), message: `${last.message} (peer gone before its address could be read)` }),
    );
  }

  refuse(error: ProxyErrorLike, real: Parameters<ProxyGateHandlers['refuse']>[1]): void {
    if (isProbe(error)) return;
    if (real) {
      this.#emit(proxyRefusal(error, real));
      return;
    }
    this.#lines.take({ reason: error.reason, code: error.code, message: error.message });
  }

  /** Report what is still counted and stop the timer. Idempotent. */
  close(): void {
    this.#lines.close();
  }
}
