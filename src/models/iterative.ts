/**
 * iterative: one connection at a time in the server process, the seed's first
 * server. While a connection is served the listener is paused, so the next client
 * completes its handshake with the kernel and waits in the backlog; when the
 * connection closes, accepting resumes and the next one is taken.
 *
 *   accept ─► pause accepting ─► runService(socket) ─► close ─► resume accepting
 *
 * Isolation: as in `event`, a throw in a service ends only its connection; an
 * uncaught error or process.exit ends the server.
 */
import type net from 'node:net';
import { connectionInfo, LocalConnections } from '../connection/local.js';
import { loadService } from '../services/index.js';
import { inProcessStats, serviceError, serviceLog } from './event.js';
import type { Model, ModelHost, ModelStats } from './types.js';

/** At most this many connections accepted in the same tick as the pause wait their turn; more are closed. */
const MAX_QUEUED = 64;

/** The iterative model; no options (--max-conns is moot: one connection at a time). */
export class IterativeModel implements Model {
  readonly name = 'iterative' as const;
  readonly #host: ModelHost;
  #conns: LocalConnections | undefined;
  /** Connections libuv accepted in the same batch as the one being served (normally none). */
  readonly #queue: net.Socket[] = [];
  /** The server asked us to stop accepting (at --max-conns). */
  #held = false;
  #closing = false;
  #startedAt = Date.now();
  #timer: NodeJS.Timeout | undefined;

  constructor(host: ModelHost) {
    this.#host = host;
  }

  async start(): Promise<void> {
    const host = this.#host;
    const service = await loadService(host.service);
    this.#conns = new LocalConnections(
      service,
      host.service,
      {
        closed: (id) => {
          host.closed(id, process.pid, null, null);
          this.#next();
        },
        log: (id, reason, code) => host.emit(serviceLog(id, reason, code)),
        failed: (id, err) => host.emit(serviceError(id, err)),
      },
      host.limits,
    );
    host.listener.onConnection((socket) => {
      if (this.#conns!.size > 0 || this.#queue.length > 0) {
        if (this.#queue.length >= MAX_QUEUED) socket.destroy();
        else this.#queue.push(socket);
        return;
      }
      this.#serve(socket);
    });
  }

  #serve(socket: net.Socket): void {
    // Pause first: the next client waits in the kernel's backlog, not in our memory.
    this.#host.listener.pause();
    const info = connectionInfo(socket, this.#host.nextId());
    if (!info) {
      socket.destroy();
      this.#next();
      return;
    }
    const admission = this.#host.admit(info);
    if (!admission.ok) {
      socket.destroy(); // denied or refused, already logged
      this.#next();
      return;
    }
    this.#host.opened(info, process.pid);
    this.#conns!.serve(socket, info, admission.env);
  }

  /** The current connection is over: serve a queued one, or accept again. */
  #next(): void {
    const queued = this.#queue.shift();
    if (queued) {
      if (this.#closing) {
        queued.destroy();
        this.#next();
      } else this.#serve(queued);
      return;
    }
    if (!this.#held && !this.#closing) this.#host.listener.resume();
  }

  pauseAccept(): void {
    this.#held = true;
    this.#host.listener.pause();
  }

  resumeAccept(): void {
    this.#held = false;
    if (this.#conns?.size === 0 && this.#queue.length === 0) this.#host.listener.resume();
  }

  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    for (const s of this.#queue.splice(0)) s.destroy();
    const conns = this.#conns;
    if (!conns) return;
    this.#timer = setTimeout(() => conns.destroyAll(), graceMs);
    await conns.idle();
    clearTimeout(this.#timer);
  }

  destroy(): void {
    this.#closing = true;
    for (const s of this.#queue.splice(0)) s.destroy();
    this.#conns?.destroyAll();
  }

  stats(): ModelStats {
    return inProcessStats(this.name, this.#conns, this.#startedAt);
  }
}

export default (host: ModelHost): Model => new IterativeModel(host);
