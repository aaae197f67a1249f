/**
 * Every place tcpkit reaches into Node's private socket state, in one file, each
 * named and explained (as `ws` keeps its internal symbols in lib/constants.js).
 * Should a Node release change one of these, this is the file to fix.
 */
import net from 'node:net';
import os from 'node:os';

/** The libuv handle behind a socket or server; Node keeps it private as `_handle`. */
type WithHandle = { _handle?: { fd?: number } | null };

/**
 * The descriptor number of an accepted socket, or -1 when it is gone. Node exposes
 * no public way to read it; tcpkit needs it for the descriptor-headroom check
 * (descriptors are handed out lowest-first) and for the PROXY gate's peek (recv(2)
 * with MSG_PEEK through the native helper).
 */
export function socketFd(socket: net.Socket): number {
  const fd = (socket as unknown as WithHandle)._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/** The descriptor of a listening net.Server (to keep a duplicate of it); throws when it has none. */
export function serverFd(server: net.Server): number {
  const fd = (server as unknown as WithHandle)._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('listening socket has no descriptor');
  return fd;
}

/**
 * Prepare an accepted socket to be sent to another process (child.send with a
 * socket). Node's net.Server counts its sockets and, when a socket with `.server`
 * set is sent, tracks it in the receiver through a socket list of its own
 * (net.Server#_setupWorker); tcpkit's listening handle comes and goes with
 * pause/resume, so the socket is detached from it: `.server` unset. The caller
 * sends a copy (keepOpen) and closes its own once sent.
 */
export function detachFromServer(socket: net.Socket): void {
  (socket as unknown as { server: unknown }).server = null;
}

/** What Node calls for each read in `onread` mode: `n` bytes were read into `buffer`; false stops reading. */
export type UserBufferCallback = (n: number, buffer: Buffer) => boolean | void;

/** Node's private slots behind the `onread` option of net.Socket (lib/net.js), found once by their descriptions. */
let onreadSlots: { buffer: symbol; callback: symbol; next: symbol } | null | undefined;

function findOnreadSlots(socket: net.Socket): typeof onreadSlots {
  if (onreadSlots !== undefined) return onreadSlots;
  const byName = new Map(Object.getOwnPropertySymbols(socket).map((s) => [s.description, s]));
  const buffer = byName.get('kBuffer');
  const callback = byName.get('kBufferCb');
  const next = byName.get('kBufferGen');
  onreadSlots = buffer && callback && next ? { buffer, callback, next } : null;
  return onreadSlots;
}

/**
 * Switch a connected socket to Node's `onread` mode from now on: each read goes
 * straight into `first` (then into whatever `next()` returns after each read) and to
 * `callback`, with no Buffer allocated and no stream machinery per read. 'end',
 * 'close', pause() and resume() work as usual.
 *
 * Why internals: Node offers `onread` only to sockets it creates for connect()
 * (`new net.Socket({ onread })`); a net.Server cannot give it to the sockets it
 * accepts (Node 20). The option only fills three private slots of the socket
 * (`kBuffer`, `kBufferCb`, `kBufferGen`, which every net.Socket has) and tells the
 * libuv handle the buffer (`useUserBuffer`); this does the same to an accepted socket.
 * Safe only between reads with nothing buffered: call it from a 'data' handler or on
 * a socket not yet read. Returns false (and changes nothing) when this Node lacks
 * the slots or the socket cannot switch; the caller then keeps reading 'data'.
 */
export function readIntoUserBuffer(socket: net.Socket, first: Buffer, callback: UserBufferCallback, next: () => Buffer): boolean {
  const slots = findOnreadSlots(socket);
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (b: Buffer) => void } | null })._handle;
  if (!slots || typeof handle?.useUserBuffer !== 'function' || socket.readableLength > 0 || socket.destroyed) return false;
  const slotsOf = socket as unknown as Record<symbol, unknown>;
  slotsOf[slots.buffer] = first;
  slotsOf[slots.callback] = callback;
  slotsOf[slots.next] = next;
  handle.useUserBuffer(first);
  return true;
}

/**
 * A net.Socket over a connected stream descriptor we created (one end of the TLS
 * relay's socketpair), not reading: Node's `pauseOnCreate` (the option net.Server's
 * `pauseOnConnect` passes to the sockets it accepts, undocumented for the
 * constructor). A socket that reads at once would take bytes meant for the process
 * the descriptor is handed to.
 */
export function pausedSocketOfFd(fd: number): net.Socket {
  return new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true, pauseOnCreate: true } as net.SocketConstructorOpts);
}

/**
 * Whether the client certificate of a server-side TLSSocket verified against its
 * context's CAs: null when it did, else OpenSSL's error (`code`: UNABLE_TO_VERIFY_LEAF_SIGNATURE,
 * ...). Node computes `authorized` only for sockets a tls.Server made itself (its
 * private onServerSocketSecure calls `_handle.verifyError()`); the TLS gate makes
 * its own TLSSocket on an accepted socket, so it asks the handle the same way.
 */
export function tlsVerifyError(socket: import('node:tls').TLSSocket): (Error & { code?: string }) | null {
  const handle = (socket as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null } | null })._handle;
  if (typeof handle?.verifyError !== 'function') return new Error('certificate status unknown (no TLS handle)');
  return handle.verifyError();
}

/** Node's TCP handle class (`process.binding('tcp_wrap')`), looked up once; null when this Node does not offer it. */
let tcpWrap: { TCP: new (type: number) => TcpHandle; SOCKET: number } | null | undefined;

/** What socketOfAccepted needs of a TCP handle: open(fd) returns 0 or a negative libuv error. */
interface TcpHandle {
  open(fd: number): number;
  close(): void;
}

function findTcpWrap(): typeof tcpWrap {
  if (tcpWrap !== undefined) return tcpWrap;
  try {
    const b = (process as unknown as { binding(name: string): { TCP?: new (type: number) => TcpHandle; constants?: { SOCKET?: number } } }).binding('tcp_wrap');
    tcpWrap = typeof b.TCP === 'function' && typeof b.constants?.SOCKET === 'number' ? { TCP: b.TCP, SOCKET: b.constants.SOCKET } : null;
  } catch {
    tcpWrap = null;
  }
  return tcpWrap;
}

/** Whether socketOfAccepted can work in this Node (the TCP handle class is reachable). */
export function canWrapAccepted(): boolean {
  return findTcpWrap() !== null;
}

/** An endpoint as Node caches it on a socket (`_peername`, `_sockname`: what remoteAddress and address() read). */
export interface CachedName {
  address: string;
  port: number;
  family: string;
}

/**
 * A paused net.Socket over a TCP descriptor accepted natively (native/accept.c), built as
 * net.Server's onconnection builds one (a TCP handle, `pauseOnCreate`), with the peer's
 * address, and the local one when known, already in Node's caches (`_peername`,
 * `_sockname`): remoteAddress, remotePort and address() then make no system call (a
 * socket from net.Server asks getpeername on first use). Throws the libuv error's code
 * (`open EBADF`) when the descriptor cannot become a handle; the descriptor is then
 * still the caller's. `SocketClass`: net.Socket (default) or a subclass of it.
 *
 * Why internals: Node builds such a socket only inside net.Server, whose accept cannot
 * return the peer's address; `new net.Socket({ fd })` would probe the descriptor
 * (fstat, getsockopt, getsockname). The TCP class comes from `process.binding('tcp_wrap')`
 * (allowed in Node 20 and 22; `--pending-deprecation` prints DEP0111 once), `open(fd)` is
 * libuv's uv_tcp_open (it sets O_NONBLOCK), and the name caches are the private fields
 * net.Socket fills on its first getpeername/getsockname.
 */
export function socketOfAccepted(fd: number, peer: CachedName, local?: CachedName, SocketClass: typeof net.Socket = net.Socket): net.Socket {
  const wrap = findTcpWrap();
  if (!wrap) throw Object.assign(new Error('open ENOSYS (no TCP handle class in this Node)'), { code: 'ENOSYS' });
  const handle = new wrap.TCP(wrap.SOCKET);
  const err = handle.open(fd);
  if (err !== 0) {
    handle.close();
    const code = errnoCode(err);
    throw Object.assign(new Error(`open ${code}`), { code });
  }
  const socket = new SocketClass({ handle, allowHalfOpen: true, readable: true, writable: true, pauseOnCreate: true } as net.SocketConstructorOpts);
  const names = socket as unknown as { _peername?: CachedName; _sockname?: CachedName };
  names._peername = peer;
  if (local) names._sockname = local;
  return socket;
}

/** A negative libuv error number as its code (`EBADF`). */
function errnoCode(err: number): string {
  for (const [name, n] of Object.entries(os.constants.errno)) if (n === -err) return name;
  return 'EIO';
}
