/**
 * The listening socket: bind + listen on an address (port 0 lets the kernel choose),
 * or adopt an inherited descriptor; keep a duplicate of it (`fd`) for as long as the
 * listener is open; and accept through an Acceptor (./acceptor.ts: pause/resume,
 * descriptor headroom, EMFILE backoff, the PROXY gate), the same accept loop every
 * pool worker runs on its own duplicate.
 */
import fs from 'node:fs';
import net from 'node:net';
import { formatAddress, formatEndpoint, type Endpoint, type Family, familyOf } from '../address.js';
import { InvalidOptionError, SystemCallError } from '../errors.js';
import { Acceptor, type AcceptError, type ConnectionHandler, type DescriptorUse, type RecordHandler } from './acceptor.js';
import { fdutil } from './fdutil.js';
import { checkNumber, OPTIONS, parseUnixMode } from '../options.js';
import { serverFd } from './internals.js';
import type { ProxyGateHandlers, ProxyGateOptions } from './proxy-gate.js';


/** Where to listen. */
export interface ListenOptions {
  /** Address to bind. Default OPTIONS.host (the seed's INADDR_ANY). IPv6 literals and names work. */
  host?: string;
  /** Port; 0 asks the kernel. Default OPTIONS.port. */
  port?: number;
  /** listen(2) backlog. Default OPTIONS.backlog (Node's own); checked as createServer checks it. */
  backlog?: number;
  /** Adopt an inherited listening descriptor instead of binding. */
  fd?: number;
  /**
   * Listen on this UNIX-domain socket path instead of host/port (`@name`: Linux's abstract namespace,
   * no file). A stale socket file (nobody accepts on it) is replaced; a live one, or anything that is not
   * a socket, is refused and left as it is. The file is removed by close() if it is still the one made
   * here (same inode). With `fd`: the inherited socket is this path's (a restart), so the file is ours.
   */
  path?: string;
  /** The socket file's permission bits, set before it listens. Default OPTIONS.unixMode (0660). */
  mode?: number;
  /** The socket file's owner uid, set before it listens. Default: unchanged (the server's). */
  uid?: number;
  /** The socket file's group gid, set before it listens. Default: unchanged. */
  gid?: number;
}

/** The socket file a listener made (or took over by a restart): removed at close only if it is still this one. */
interface SocketFile {
  path: string;
  dev: number;
  ino: number;
}

/**
 * What is at `path` before binding: a stale socket file is removed; a live server or something that is
 * not a socket is refused (SystemCallError, exit 111) and left as it is.
 */
function clearStale(path: string): void {
  let found: ReturnType<typeof fdutil.unixProbe>;
  try {
    found = fdutil.unixProbe(path);
  } catch (err) {
    throw new SystemCallError('listen', `unix:${path}`, err);
  }
  if (found === 'live') {
    throw new SystemCallError('listen', `unix:${path} (a server is accepting there)`, { code: 'EADDRINUSE' });
  }
  if (found === 'other') {
    throw new SystemCallError('listen', `unix:${path} (not a socket: left as it is; remove it or choose another path)`, { code: 'EEXIST' });
  }
  if (found === 'stale') {
    try {
      fs.unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new SystemCallError('unlink', `unix:${path} (a stale socket)`, err);
    }
  }
}

/** The file at `path` now, if it is a socket: its identity, to remove it later only if unchanged. */
function socketFileAt(path: string): SocketFile | undefined {
  try {
    const st = fs.lstatSync(path);
    return st.isSocket() ? { path, dev: st.dev, ino: st.ino } : undefined;
  } catch {
    return undefined;
  }
}

/** Listener states, printable by status views. A new listener is `paused` until a connection handler is set; `backoff` while descriptors run short. */
export type ListenerState = 'accepting' | 'backoff' | 'paused' | 'closed';


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
  if (info.type !== 'stream' || !info.listening || (info.family !== 'IPv4' && info.family !== 'IPv6' && info.family !== 'unix')) {
    const what = `${info.family} ${info.type} socket${info.listening ? '' : ', not listening'}`;
    throw new InvalidOptionError('fd', `descriptor ${fd} is not a listening TCP or UNIX stream socket (${what})`);
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
  readonly #acceptor: Acceptor;
  #awaitingHandler = true;
  /** The socket file to remove at close (a UNIX path this listener made or took over), if still the same inode. */
  #file: SocketFile | undefined;

  /**
   * `server` has bound (or adopted) the socket; the listener keeps `keptFd`, a
   * duplicate, and closes the server: the socket stays in LISTEN through the
   * duplicate, and a new listener does not accept until someone takes its
   * connections. Connections that arrive before (the first one under socket
   * activation, those queued while a restarting server's successor starts) wait in
   * the kernel's backlog instead of being accepted with nobody to serve them.
   */
  private constructor(server: net.Server, keptFd: number, backlog: number, file?: SocketFile) {
    this.backlog = backlog;
    const a = server.address();
    if (a !== null && typeof a === 'object') {
      this.endpoint = { address: a.address, port: a.port, family: (a.family as Family) ?? familyOf(a.address) ?? 'IPv4' };
    } else {
      // A UNIX socket (Node names no address for one adopted by fd): its path from getsockname.
      this.endpoint = { address: fdutil.unixPeer(keptFd).path, port: 0, family: 'unix' };
    }
    this.#file = file;
    server.close();
    this.#acceptor = new Acceptor(keptFd, { backlog, ownsFd: true });
  }

  /** Bind and listen. Rejects with `listen EADDRINUSE 0.0.0.0:9877`-style SystemCallError. */
  static async open(options: ListenOptions = {}): Promise<Listener> {
    // The option table's checks and defaults, as createServer's (src/options.ts).
    const backlog = checkNumber('backlog', options.backlog);
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
    if (options.fd !== undefined) {
      checkInherited(options.fd);
      try {
        await listenOn(server, { fd: options.fd, backlog });
      } catch (err) {
        throw new SystemCallError('listen', `fd ${options.fd}`, err);
      }
      const kept = fdutil.dup(options.fd);
      // A restarting tcpkit passes its socket to a successor asked for the same path: the file is now this
      // one's to remove. A socket passed by a service manager is the manager's (systemd's RemoveOnStop=).
      const named = options.path !== undefined && !options.path.startsWith('@') && fdutil.socketInfo(kept).family === 'unix' && fdutil.unixPeer(kept).path === options.path;
      return new Listener(server, kept, backlog, named ? socketFileAt(options.path!) : undefined);
    }
    if (options.path !== undefined) return Listener.#openUnix(server, options.path, backlog, options);
    const host = options.host ?? OPTIONS.host.default;
    const port = checkNumber('port', options.port);
    try {
      // exclusive: a cluster worker must not share this handle through the primary.
      await listenOn(server, { host, port, backlog, exclusive: true });
    } catch (err) {
      throw new SystemCallError('listen', formatAddress(host, port), err);
    }
    return new Listener(server, fdutil.dup(serverFd(server)), backlog);
  }

  /** Bind and listen on a UNIX path with its owner and mode set before listen(2) (native/unix.c). */
  static async #openUnix(server: net.Server, path: string, backlog: number, options: ListenOptions): Promise<Listener> {
    const mode = parseUnixMode(options.mode);
    if (!path.startsWith('@')) clearStale(path);
    let bound: ReturnType<typeof fdutil.unixListen>;
    try {
      bound = fdutil.unixListen(path, backlog, mode, options.uid ?? -1, options.gid ?? -1);
    } catch (err) {
      throw new SystemCallError('listen', `unix:${path}`, err);
    }
    const file = path.startsWith('@') ? undefined : { path, dev: bound.dev, ino: bound.ino };
    try {
      await listenOn(server, { fd: bound.fd, backlog });
    } catch (err) {
      fdutil.close(bound.fd);
      if (file) removeIfOurs(file);
      throw new SystemCallError('listen', `unix:${path}`, err);
    }
    // The server's handle holds bound.fd and is closed by the constructor; the listener keeps a duplicate.
    return new Listener(server, fdutil.dup(bound.fd), backlog, file);
  }

  /**
   * Keep the socket file at close: the listening socket was handed to a successor (SIGUSR2), which serves
   * on the same file and removes it at its own shutdown.
   */
  keepFile(): void {
    this.#file = undefined;
  }

  get state(): ListenerState {
    return this.#acceptor.state;
  }

  /** The descriptor kept by tcpkit (valid until close). Models that hand the socket on dup this. */
  get fd(): number {
    return this.#acceptor.fd;
  }

  /** A new descriptor for the same listening socket, owned by the caller (close-on-exec). */
  dup(): number {
    if (this.state === 'closed') throw new Error('listener is closed');
    return fdutil.dup(this.#acceptor.fd);
  }

  /**
   * Set who receives accepted connections (paused, not yet read). The first call
   * starts accepting, unless pause() or resume() was called before.
   */
  onConnection(handler: ConnectionHandler): void {
    this.#acceptor.onConnection(handler);
    if (this.#awaitingHandler) this.resume();
  }

  /**
   * Accept natively instead (see Acceptor.onRecords): for connections only a program
   * reads, as ./fast-path.ts decides. Call while paused, after onConnection.
   */
  onRecords(handler: RecordHandler, wantLocal: boolean, perConnection: number, local?: Endpoint): void {
    this.#acceptor.onRecords(handler, wantLocal, perConnection, local);
  }

  /**
   * Accept natively and hand on net.Sockets with their peer already known (see
   * Acceptor.onNativeSockets), for a service read in this process, as ./fast-path.ts decides
   * (`native-socket`). Call while paused, after onConnection.
   */
  onNativeSockets(local: Endpoint | undefined, SocketClass?: typeof net.Socket): void {
    this.#acceptor.onNativeSockets(local, SocketClass);
  }

  /** Accept errors (EMFILE, ...): the listener keeps listening; the server decides what to log. */
  onError(handler: (err: AcceptError) => void): void {
    this.#acceptor.onError(handler);
  }

  /** See Acceptor.countDescriptors: what the model keeps open per connection beyond the socket. */
  countDescriptors(use: (() => DescriptorUse) | undefined): void {
    this.#acceptor.countDescriptors(use);
  }

  /** See Acceptor.acceptProxyProtocol. */
  acceptProxyProtocol(options: ProxyGateOptions | undefined, onRefuse: ProxyGateHandlers['refuse'] = () => {}): void {
    this.#acceptor.acceptProxyProtocol(options, onRefuse);
  }

  /** Resolves once no accepted connection is still waiting for its PROXY header. */
  settled(): Promise<void> {
    return this.#acceptor.settled();
  }

  /** Close the connections still waiting for their PROXY header. */
  abortPending(): void {
    this.#acceptor.abortPending();
  }

  /** Stop accepting; new connections wait in the kernel's backlog. Idempotent. */
  pause(): void {
    this.#awaitingHandler = false;
    this.#acceptor.pause();
  }

  /** Accept again after pause() (once a descriptor backoff is over). Idempotent. */
  resume(): void {
    this.#awaitingHandler = false;
    this.#acceptor.resume();
  }

  /** Close the listening socket: the kernel refuses new connections from now on. Idempotent. */
  close(): void {
    this.#acceptor.close();
    if (this.#file) removeIfOurs(this.#file);
    this.#file = undefined;
  }

  /** `unix:/run/x.sock`, `127.0.0.1:9877`: the address as messages name it. */
  toString(): string {
    return formatEndpoint(this.endpoint);
  }
}

/** Remove a socket file if it is still the one this listener made (same device and inode): never another server's. */
function removeIfOurs(file: SocketFile): void {
  const now = socketFileAt(file.path);
  if (!now || now.dev !== file.dev || now.ino !== file.ino) return;
  try {
    fs.unlinkSync(file.path);
  } catch {
    // Gone already, or the directory is not writable by this user any more (after --user): left behind,
    // and replaced as stale by the next server.
  }
}
