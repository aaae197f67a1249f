/**
 * Messages between the server and its pool workers: prefork's worker processes
 * (over the IPC channel) and the threads model's worker threads (over the
 * MessagePort). One discriminated union each way, plain data only.
 *
 *   server → worker                               worker → server
 *   ───────────────                               ───────────────
 *   connection {info, env} + the socket (pass)    ready                  service loaded, accepting
 *   admit {ref, id, env}   serve it (shared)      accepted {ref, info}   took a connection (shared), holds it unread
 *   refuse {ref}           close it (shared)      closed {id}            a connection ended
 *   pause                  stop accepting         log {id, reason, code} the service's ctx.log
 *   resume                 accept again           failed {id, code, message} the service threw
 *   drain                  stop accepting, exit   fatal {code, message}  cannot start (bad handler, ...)
 *                          when idle              drained                idle after drain, about to exit
 *                                                 event {event}          log it as it is (a refused PROXY header)
 *
 * In shared mode a worker accepts, numbers the connection itself (`ref`) and asks
 * the server, which applies its access rules and per-source limits where every
 * connection is counted, and answers `admit` with the connection's id or `refuse`.
 * From then on, and in pass mode from the start, a connection is named by the
 * server's id.
 */
import type { ConnectionInfo } from '../address.js';
import type { ServerEvent } from '../events.js';
import type { ProxyGateOptions } from '../net/proxy-gate.js';
import type { ConnectionLimits } from '../admission/limits.js';
import type { ServiceSpec } from '../services/types.js';

/** What the server sends a worker. */
export type ToWorker =
  | { type: 'connection'; info: ConnectionInfo; env: Readonly<Record<string, string>> }
  | { type: 'admit'; ref: number; id: number; env: Readonly<Record<string, string>> }
  | { type: 'refuse'; ref: number }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'drain' };

/** What a worker sends the server. */
export type FromWorker =
  /** `room`: descriptors the worker can still take (pass mode sends no more at once); absent when unlimited. */
  | { type: 'ready'; room?: number }
  | { type: 'accepted'; ref: number; info: ConnectionInfo }
  | { type: 'closed'; id: number }
  | { type: 'log'; id: number; reason: string; code: string }
  | { type: 'failed'; id: number; code: string; message: string }
  | { type: 'fatal'; code: string; message: string }
  | { type: 'drained' }
  /** An event to log as it is (a connection whose PROXY header was refused). */
  | { type: 'event'; event: ServerEvent };

/** How a worker is set up (TCPKIT_WORKER in a process, workerData in a thread). */
export interface WorkerSpec {
  service: ServiceSpec;
  /** `shared`: accept on `fd` ourselves; `pass`: connections arrive with `connection` messages. */
  mode: 'shared' | 'pass';
  /**
   * shared: a listening descriptor of the server's socket that this worker may use
   * but never closes (the owner closes it: the server, for a thread; process exit,
   * for a worker process). The worker listens on duplicates of it.
   */
  fd?: number;
  /** shared: the server's listen(2) backlog, re-applied by every listen on a duplicate. Default 511. */
  backlog?: number;
  /**
   * shared: this worker owns `fd` (a worker process does; a thread's belongs to the
   * server) and closes it when told to drain, so that the socket stops listening once
   * every holder has let go. Default false.
   */
  ownsFd?: boolean;
  /** shared: at most this many connections at once in this worker (its share of --max-conns). */
  limit: number;
  /** Stop accepting after this many connections (--max-conns-per-worker); 0 = never. */
  maxConns: number;
  /** Idle and time limits enforced on each connection in the worker. */
  limits: ConnectionLimits;
  /** shared: read a PROXY protocol header off each accepted connection first. Default: none expected. */
  proxy?: ProxyGateOptions;
}
