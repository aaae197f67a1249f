/**
 * The one place that decides how a listener's connections reach their service:
 *
 *   `socket`  Node's net.Server: a net.Socket per connection (TLS; a service read in
 *             JavaScript behind a PROXY header, on a UNIX listener, or in a pool worker)
 *   `native-socket`  native/accept.c too, one connection per wake-up, each descriptor made
 *             a net.Socket with the peer's address from the accept already in Node's cache
 *             (./internals.ts socketOfAccepted): a service read in JavaScript in the server
 *             process (event, iterative) on plain TCP, no getpeername per connection
 *   `native`  native/accept.c: accept4 in batches, the peer's address from the accept (on a
 *             UNIX listener its credentials, SO_PEERCRED, in the same batch), the descriptor
 *             handed straight to a program (no net.Socket at all)
 *
 * The native path is for connections that only a program reads: a program per connection
 * started as the server's user by the process or thread that accepts, on a TCP or UNIX
 * listener (a PROXY header, if any, is read off the bare descriptor by the same gate).
 * Every model that runs programs takes it: fork and event (the model offers
 * `serveDescriptor`: ../models/children.ts), prefork worker processes and worker threads
 * (../workers/worker.ts starts the program itself; a watch lives on the event loop of the
 * thread that made it, and closes with that thread). Iterative serves one program at a
 * time in-process and stays on sockets; so does prefork `--accept pass` (the server hands
 * sockets to workers). Everything after the accept is the same on both paths: the same
 * Admission unit (pipeline.admit, or a pool worker's own), the same log lines, limits and
 * counters. A new kind of listener or connection plugs in here with one line; until it
 * does, it takes the socket path.
 */
import { isMainThread } from 'node:worker_threads';
import type { ConnectionInfo, Endpoint } from '../address.js';
import { recordEnds, type AcceptedRecord } from './acceptor.js';

/**
 * How connections are accepted: see the file comment. `native-socket`: accepted as `native` is
 * (accept4 in batches, the peer's address from the accept), then made a net.Socket on the
 * descriptor with that address already known (../net/internals.ts socketOfAccepted), for a
 * service read in JavaScript in this process: no getpeername per connection (a net.Server's
 * accept cannot return the address), the rest as on `socket`.
 */
export type AcceptPath = 'socket' | 'native' | 'native-socket';

/** What the decision looks at. */
export interface PathQuery {
  /** The listener's kind: `tcp` (an IP socket) or `unix`; both may take the native path (a new kind plugs in here). */
  listener: 'tcp' | 'unix';
  /** Connections are TLS (the server must read them). Default false. */
  tls?: boolean;
  /** A PROXY header is read first: the gate reads it off a socket or a program's bare descriptor, not on `native-socket`. Default false. */
  proxy?: boolean;
  /** A bare descriptor can be served for this service (Model.serveDescriptor after start; a prefork worker: ProgramLauncher.startFd). */
  descriptors: boolean;
  /** The service reads each socket in this process (the event and iterative models). Default false. */
  sockets?: boolean;
  /** A natively accepted descriptor can be made a net.Socket in this Node (internals.ts canWrapAccepted). Default false. */
  wrapsSockets?: boolean;
}

/** Descriptors a program started on the native path holds in the server until reaped: its pidfd and its stderr pipe. */
export const NATIVE_PATH_DESCRIPTORS = 2;

/** Which path a listener + service takes. */
export function acceptPath(q: PathQuery): AcceptPath {
  // A service read here, on plain TCP in the main thread: sockets, each with its peer from the accept.
  if (!q.descriptors && q.sockets && q.wrapsSockets && q.listener === 'tcp' && !q.tls && !q.proxy && isMainThread) return 'native-socket';
  if (!q.descriptors) return 'socket';
  if (q.tls) return 'socket'; // TLS: the handshake and the relay need the socket
  return 'native';
}

/** A native record's ends, as identify() gives a socket's (`local`: the listener's fixed local end, when bound to one address). */
export function recordInfo(r: AcceptedRecord, local: Endpoint | undefined): ConnectionInfo {
  // Behind a PROXY header: the ends it named, the real ones under `via` (as identify() gives them).
  if (r.announced) return { id: 0, local: r.announced.local, remote: r.announced.remote, ...(r.announced.via && { via: r.announced.via }), acceptedAt: Date.now() };
  return { id: 0, ...recordEnds(r, local), acceptedAt: Date.now() };
}
