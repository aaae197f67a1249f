/**
 * Every place tcpkit reaches into Node's private socket state, in one file, each
 * named and explained (as `ws` keeps its internal symbols in lib/constants.js).
 * Should a Node release change one of these, this is the file to fix.
 */
import type net from 'node:net';

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
