/**
 * The listening socket: bind + listen on an address (port 0 lets the kernel choose),
 * or adopt an inherited descriptor; and pause/resume accepting.
 *
 * Node cannot stop accepting on a listening socket while keeping it open. tcpkit keeps
 * its own duplicate of the descriptor (`keptFd`): pausing closes the libuv handle, the
 * socket stays in LISTEN through the duplicate and the kernel queues new connections
 * in the backlog; resuming listens on a fresh duplicate. Nothing is refused or dropped.
 *
 * Descriptor exhaustion. When accept(2) fails with EMFILE, libuv (under Node's
 * net.Server) closes a reserved descriptor, accepts every connection waiting in the
 * backlog and closes it at once, and reports nothing: under `ulimit -n 128`, 300
 * connections to an event-model server saw 192 of them closed unserved and no log
 * line. So tcpkit never lets accept reach the limit: descriptors are handed out
 * lowest-first, so an accepted socket numbered N means N descriptors below it are
 * open. When that number comes within DESCRIPTOR_HEADROOM of the soft limit
 * (RLIMIT_NOFILE), the connection is still served, the listener backs off for
 * BACKOFF_MS (connections wait in the backlog, as with pause), and one `EMFILE`
 * error is reported per REPORT_MS with the count of backoffs it stands for.
 */
import fs from 'node:fs';
import net from 'node:net';
import { formatAddress, type Endpoint, type Family, familyOf } from '../address.js';
import { InvalidOptionError, SystemCallError } from '../errors.js';
import { fdutil } from './fdutil.js';
import { DEFAULT_BACKLOG, DEFAULT_PORT, REPORT_MS } from '../options.js';
import { ProxyGate, type ProxyGateHandlers, type ProxyGateOptions } from './proxy-gate.js';

/** The native helper, re-exported for the modules that already import it from here. */
export { fdutil } from './fdutil.js';

/**
 * Mark every descriptor above 2 close-on-exec. Node's and tcpkit's own already
 * are; this catches those the server inherited from whoever started it (a
 * shell's or supervisor's pipes), so that no child or exec'd program holds any
 * descriptor but its own 0, 1 and 2. The server itself keeps using them. Returns
 * how many descriptors it marked (fcntl is idempotent).
 */
export function closeOnExecInherited(): number {
  let n = 0;
  let names: string[];
  try {
    names = fs.readdirSync('/proc/self/fd');
  } catch {
    return 0; // no /proc: nothing to look at
  }
  for (const name of names) {
    const fd = Number(name);
    if (!(fd > 2)) continue;
    try {
      fdutil.cloexec(fd);
      n++;
    } catch {
      // The directory's own descriptor, closed by now.
    }
  }
  return n;
}

/** Descriptors kept free below the limit: a fork child's pipes, a log file, the admin server. Fixed at 16. */
export const DESCRIPTOR_HEADROOM = 16;
/** How long the listener stops accepting once descriptors run short. Fixed at 100 ms. */
export const BACKOFF_MS = 100;
/** At most one descriptor-exhaustion report per this many ms (src/options.ts). */
export { REPORT_MS };

/** The soft RLIMIT_NOFILE of this process, from /proc/self/limits; Infinity when unknown or unlimited. */
export function descriptorLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return m && m[1] !== 'unlimited' ? Number(m[1]) : Infinity;
  } catch {
    return Infinity;
  }
}

/** Descriptors this process holds now (0 when /proc is not there: then only the fd-number check guards). */
function openDescriptors(): number {
  try {
    return fs.readdirSync('/proc/self/fd').length - 1; // minus the directory's own descriptor
  } catch {
    return 0;
  }
}

/** An accept-side error the listener reports: EMFILE backoffs carry how many were folded into this one report. */
export interface AcceptError extends NodeJS.ErrnoException {
  /** Backoffs since the previous report that were not reported on their own. */
  suppressed?: number;
}

/** Where to listen. */
export interface ListenOptions {
  /** Address to bind. Default `0.0.0.0` (the seed's INADDR_ANY). IPv6 literals and names work. */
  host?: string;
  /** Port; 0 asks the kernel. Default 9877. */
  port?: number;
  /** listen(2) backlog. Default 511 (Node's). */
  backlog?: number;
  /** Adopt an inherited listening descriptor instead of binding. */
  fd?: number;
}

/** Listener states, printable by status views. A new listener is `paused` until a connection handler is set; `backoff` while descriptors run short. */
export type ListenerState = 'accepting' | 'backoff' | 'paused' | 'closed';

type ConnectionHandler = (socket: net.Socket) => void;

/** net.Server keeps its libuv handle private; tcpkit only reads the descriptor number from it. */
function handleFd(server: net.Server): number {
  const handle = (server as unknown as { _handle?: { fd?: number } })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('listening socket has no descriptor');
  return fd;
}

/**
 * `{ fd }` is Node's documented handle form of listen(). Node reads the backlog of
 * that form only from the positional argument (`options.backlog` is ignored and 511
 * used), so it is passed positionally here.
 */
function listenOn(server: net.Server, opts: net.ListenOptions | { fd: number; backlog: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    const done = () => {
      server.off('error', onError);
      resolve();
    };
    if ('fd' in opts && typeof opts.fd === 'number') server.listen({ fd: opts.fd } as net.ListenOptions, opts.backlog, done);
    else server.listen(opts as net.ListenOptions, done);
  });
}

/**
 * Check that an inherited descriptor is a listening TCP socket (as sd_is_socket
 * does) and make it close-on-exec: a service manager passes it without, and no
 * child of ours may inherit it. Throws `listen EBADF fd 7` or InvalidOptionError.
 */
function checkInherited(fd: number): void {
  let info: ReturnType<typeof fdutil.socketInfo>;
  try {
    info = fdutil.socketInfo(fd);
  } catch (err) {
    throw new SystemCallError('listen', `fd ${fd}`, err);
  }
  if (info.type !== 'stream' || !info.listening || (info.family !== 'IPv4' && info.family !== 'IPv6')) {
    const what = `${info.family} ${info.type} socket${info.listening ? '' : ', not listening'}`;
    throw new InvalidOptionError('fd', `descriptor ${fd} is not a listening TCP socket (${what})`);
  }
  fdutil.cloexec(fd);
}

/**
 * A listening TCP socket owned by tcpkit. Emits each accepted connection, paused
 * (`pauseOnConnect`), to the handler: the model decides who reads it.
 */
export class Listener {
  /** Bound address (getsockname on the listening socket). */
  readonly endpoint: Endpoint;
  readonly backlog: number;
  #keptFd: number;
  #server: net.Server | undefined;
  #state: ListenerState = 'accepting';
  #onConnection: ConnectionHandler = (s) => s.destroy();
  #onError: (err: AcceptError) => void = () => {};
  #gate: ProxyGate | undefined;
  #awaitingHandler = false;
  readonly #limit = descriptorLimit();
  #backoffTimer: NodeJS.Timeout | undefined;
  #lastReport = 0;
  #suppressed = 0;

  private constructor(server: net.Server, keptFd: number, backlog: number) {
    this.#server = server;
    this.#keptFd = keptFd;
    this.backlog = backlog;
    const a = server.address() as net.AddressInfo;
    this.endpoint = { address: a.address, port: a.port, family: (a.family as Family) ?? familyOf(a.address) ?? 'IPv4' };
    this.#attach(server);
  }

  /** Bind and listen. Rejects with `listen EADDRINUSE 0.0.0.0:9877`-style SystemCallError. */
  static async open(options: ListenOptions = {}): Promise<Listener> {
    const backlog = options.backlog ?? DEFAULT_BACKLOG;
    if (!Number.isInteger(backlog) || backlog < 1) {
      throw new InvalidOptionError('backlog', `must be a positive integer, got ${String(options.backlog)}`);
    }
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
    if (options.fd !== undefined) {
      checkInherited(options.fd);
      try {
        await listenOn(server, { fd: options.fd, backlog });
      } catch (err) {
        throw new SystemCallError('listen', `fd ${options.fd}`, err);
      }
      return new Listener(server, fdutil.dup(options.fd), backlog).#holdUntilHandler();
    }
    const host = options.host ?? '0.0.0.0';
    const port = options.port ?? DEFAULT_PORT;
    try {
      // exclusive: a cluster worker must not share this handle through the primary.
      await listenOn(server, { host, port, backlog, exclusive: true });
    } catch (err) {
      throw new SystemCallError('listen', formatAddress(host, port), err);
    }
    return new Listener(server, fdutil.dup(handleFd(server)), backlog).#holdUntilHandler();
  }

  /**
   * A new listener does not accept until someone takes its connections: connections
   * that arrive before (the first one under socket activation, those queued while a
   * restarting server's successor starts) wait in the kernel's backlog instead of
   * being accepted with nobody to serve them.
   */
  #holdUntilHandler(): this {
    this.pause();
    this.#awaitingHandler = true;
    return this;
  }

  get state(): ListenerState {
    return this.#state;
  }

  /** The descriptor kept by tcpkit (valid until close). Models that hand the socket on dup this. */
  get fd(): number {
    return this.#keptFd;
  }

  /** A new descriptor for the same listening socket, owned by the caller (close-on-exec). */
  dup(): number {
    if (this.#state === 'closed') throw new Error('listener is closed');
    return fdutil.dup(this.#keptFd);
  }

  /**
   * Set who receives accepted connections (paused, not yet read). The first call
   * starts accepting, unless pause() or resume() was called before.
   */
  onConnection(handler: ConnectionHandler): void {
    this.#onConnection = handler;
    if (this.#awaitingHandler) this.resume();
  }

  /** Accept errors (EMFILE, ...): the listener keeps listening; the server decides what to log. */
  onError(handler: (err: AcceptError) => void): void {
    this.#onError = handler;
  }

  /**
   * Read a PROXY protocol header from every connection before handing it on: the
   * handler then gets the socket with the header consumed (and only the header) and
   * endpointsOf(socket) giving the client the balancer named. A missing, bad or
   * late header closes that connection and is reported to `onRefuse`. Call before
   * connections arrive; `undefined` turns it off.
   */
  acceptProxyProtocol(options: ProxyGateOptions | undefined, onRefuse: ProxyGateHandlers['refuse'] = () => {}): void {
    this.#gate?.destroy();
    this.#gate = options && new ProxyGate(options, { pass: (socket) => this.#onConnection(socket), refuse: onRefuse });
  }

  /** Resolves once no accepted connection is still waiting for its PROXY header. */
  settled(): Promise<void> {
    return this.#gate?.settled() ?? Promise.resolve();
  }

  /** Close the connections still waiting for their PROXY header. */
  abortPending(): void {
    this.#gate?.destroy();
  }

  /** Stop accepting; new connections wait in the kernel's backlog. Idempotent. */
  pause(): void {
    this.#awaitingHandler = false;
    if (this.#state === 'backoff') {
      clearTimeout(this.#backoffTimer);
      this.#state = 'paused';
      return;
    }
    if (this.#state !== 'accepting') return;
    this.#state = 'paused';
    const server = this.#server;
    this.#server = undefined;
    server?.close();
  }

  /** Accept again after pause(). Idempotent. */
  resume(): void {
    this.#awaitingHandler = false;
    if (this.#state !== 'paused' && this.#state !== 'backoff') return;
    clearTimeout(this.#backoffTimer);
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
    const fd = fdutil.dup(this.#keptFd);
    this.#attach(server);
    // Listening on an fd that is already listening only re-applies the backlog; it cannot fail with EADDRINUSE.
    server.listen({ fd } as net.ListenOptions, this.backlog); // positional: see listenOn
    this.#server = server;
    this.#state = 'accepting';
  }

  /** Close the listening socket: the kernel refuses new connections from now on. Idempotent. */
  close(): void {
    if (this.#state === 'closed') return;
    this.pause();
    clearTimeout(this.#backoffTimer);
    this.#state = 'closed';
    fdutil.close(this.#keptFd);
    this.#keptFd = -1;
  }

  #attach(server: net.Server): void {
    // A connection accepted just before a pause is still handed on: nothing accepted is ever dropped.
    server.on('connection', (socket: net.Socket) => {
      const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
      if (fd >= this.#limit - DESCRIPTOR_HEADROOM) this.#backoff(fd + 1);
      if (this.#gate) this.#gate.take(socket);
      else this.#onConnection(socket);
    });
    server.on('error', (err: NodeJS.ErrnoException) => {
      // Should libuv report EMFILE after all (its reserve descriptor gone), back off the same way rather than retry at once.
      if (err.code === 'EMFILE' || err.code === 'ENFILE') this.#backoff(undefined, err.code);
      else this.#onError(err);
    });
  }

  /** After a backoff: accept again only once descriptors are free again, else wait another BACKOFF_MS (counted, not reported). */
  #retry(): void {
    if (this.#state !== 'backoff') return;
    if (openDescriptors() >= this.#limit - DESCRIPTOR_HEADROOM) {
      this.#suppressed++;
      this.#backoffTimer = setTimeout(() => this.#retry(), BACKOFF_MS);
      return;
    }
    this.resume();
  }

  /** Stop accepting for BACKOFF_MS because descriptors run short; report once per REPORT_MS. */
  #backoff(open: number | undefined, code = 'EMFILE'): void {
    if (this.#state === 'accepting') {
      this.#state = 'backoff';
      const server = this.#server;
      this.#server = undefined;
      server?.close();
      this.#backoffTimer = setTimeout(() => this.#retry(), BACKOFF_MS);
    }
    const now = Date.now();
    if (now - this.#lastReport < REPORT_MS) {
      this.#suppressed++;
      return;
    }
    const held = open === undefined ? 'accept failed' : `${open} of ${this.#limit} descriptors open`;
    const err: AcceptError = new Error(`${held}; accepting paused ${BACKOFF_MS} ms, new connections wait in the backlog`);
    err.code = code;
    err.suppressed = this.#suppressed;
    this.#lastReport = now;
    this.#suppressed = 0;
    this.#onError(err);
  }
}
