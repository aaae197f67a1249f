/**
 * The one place that decides how a listener's connections reach their service:
 *
 *   `socket`  Node's net.Server: a net.Socket per connection (every service that reads
 *             its connection in JavaScript, the PROXY gate, TLS, UNIX listeners)
 *   `native`  native/accept.c: accept4 in batches, the peer's address from the accept,
 *             the descriptor handed straight to a program (no net.Socket at all)
 *
 * The native path is for connections that only a program reads: a program per connection
 * started as the server's user by the process or thread that accepts, on a plain TCP
 * listener, with no PROXY header to take off first. Every model that runs programs
 * takes it: fork and event (the model offers `serveDescriptor`: ../models/children.ts),
 * prefork worker processes and worker threads (../workers/worker.ts starts the program
 * itself; a watch lives on the event loop of the thread that made it, and closes with
 * that thread). Iterative serves one program at a time in-process and stays on sockets;
 * so does prefork `--accept pass` (the server hands sockets to workers). Everything
 * after the accept is the same on both paths: the same Admission unit (pipeline.admit,
 * or a pool worker's own), the same log lines, limits and counters. A new kind of
 * listener or connection plugs in here with one line; until it does, it takes the
 * socket path.
 */
import type { ConnectionInfo, Endpoint } from '../address.js';
import type { AcceptedRecord } from './acceptor.js';

/** How connections are accepted: see the file comment. */
export type AcceptPath = 'socket' | 'native';

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
}

/** Descriptors a program started on the native path holds in the server until reaped: its pidfd and its stderr pipe. */
export const NATIVE_PATH_DESCRIPTORS = 2;

/** Which path a listener + service takes. */
export function acceptPath(q: PathQuery): AcceptPath {
  if (!q.descriptors) return 'socket';
  if (q.listener !== 'tcp') return 'socket'; // UNIX: peer credentials are read from the socket today
  if (q.tls) return 'socket'; // TLS: the handshake and the relay need the socket
  if (q.proxy) return 'socket'; // the PROXY gate takes the header off a net.Socket before anyone reads
  return 'native';
}

/** A native record's ends, as identify() gives a socket's (`local`: the listener's fixed local end, when bound to one address). */
export function recordInfo(r: AcceptedRecord, local: Endpoint | undefined): ConnectionInfo {
  const remote: Endpoint = { address: r.address, port: r.port, family: r.family };
  const own = local ?? { address: r.localAddress ?? '', port: r.localPort ?? 0, family: r.localFamily ?? r.family };
  return { id: 0, local: own, remote, acceptedAt: Date.now() };
}
