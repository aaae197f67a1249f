/**
 * The one place that decides how a listener's connections reach their service:
 *
 *   `socket`  Node's net.Server: a net.Socket per connection (every service that reads
 *             its connection in JavaScript, the PROXY gate, TLS, in-process models)
 *   `native`  native/accept.c: accept4 in batches, the peer's address from the accept,
 *             the descriptor handed straight to a program (no net.Socket at all)
 *
 * The native path is for connections that only a program reads: a program per connection
 * started from this process as the server's user (the fork model offers `serveDescriptor`;
 * a prefork worker process starts it itself, ../workers/worker.ts), on a plain TCP
 * listener, with no PROXY header to take off first, in the main thread of its process
 * (a watch lives on the loop that made it: a worker thread stays on sockets). Everything after
 * the accept is the same on both: the same Admission unit (pipeline.admit), the same
 * log lines, limits and counters. A new kind of listener or connection plugs in here
 * with one line; until it does, it takes the socket path.
 */
import { isMainThread } from 'node:worker_threads';
import type { ConnectionInfo, Endpoint } from '../address.js';
import type { AcceptedRecord } from './acceptor.js';

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
  /** The listener's kind: `tcp` (an IP socket); UNIX listeners plug in here (`unix`). */
  listener: 'tcp' | 'unix';
  /** Connections are TLS (the server must read them). Default false. */
  tls?: boolean;
  /** A PROXY header is read first (the gate reads the socket). */
  proxy: boolean;
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
  if (q.listener !== 'tcp') return 'socket'; // UNIX: peer credentials are read from the socket today
  if (q.tls) return 'socket'; // TLS: the handshake and the relay need the socket
  if (q.proxy) return 'socket'; // the PROXY gate takes the header off a net.Socket before anyone reads
  if (!isMainThread) return 'socket';
  return 'native';
}

/** A native record's ends, as identify() gives a socket's (`local`: the listener's fixed local end, when bound to one address). */
export function recordInfo(r: AcceptedRecord, local: Endpoint | undefined): ConnectionInfo {
  const remote: Endpoint = { address: r.address, port: r.port, family: r.family };
  const own = local ?? { address: r.localAddress ?? '', port: r.localPort ?? 0, family: r.localFamily ?? r.family };
  return { id: 0, local: own, remote, acceptedAt: Date.now() };
}
