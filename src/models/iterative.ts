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
import type { IncomingConnection } from '../connection/pipeline.js';
import { InProcessModel } from './in-process.js';
import type { Model, ModelHost } from './types.js';

/** At most this many connections accepted in the same tick as the pause wait their turn; more are closed. */
const MAX_QUEUED = 64;

/** The iterative model; no options (--max-conns is moot: one connection at a time). */
export class IterativeModel extends InProcessModel {
  readonly name = 'iterative' as const;
  /** Connections libuv accepted in the same batch as the one being served (normally none). */
  readonly #queue: IncomingConnection[] = [];
  /** The server asked us to stop accepting (at --max-conns). */
  #held = false;
  #closing = false;

  constructor(host: ModelHost) {
    super(host);
  }

  dispatch(conn: IncomingConnection): void {
    if (this.serving > 0 || this.#queue.length > 0) {
      if (this.#queue.length >= MAX_QUEUED) this.#drop(conn);
      else this.#queue.push(conn);
      return;
    }
    this.#serve(conn);
  }

  #serve(conn: IncomingConnection): void {
    // Pause first: the next client waits in the kernel's backlog, not in our memory.
    this.host.listener.pause();
    this.serve(conn, () => this.#next());
  }

  #drop(conn: IncomingConnection): void {
    conn.socket.destroy();
    conn.closed();
  }

  /** The current connection is over: serve a queued one, or accept again. */
  #next(): void {
    const queued = this.#queue.shift();
    if (queued) {
      if (this.#closing) {
        this.#drop(queued);
        this.#next();
      } else this.#serve(queued);
      return;
    }
    if (!this.#held && !this.#closing) this.host.listener.resume();
  }

  override pauseAccept(): void {
    this.#held = true;
    this.host.listener.pause();
  }

  override resumeAccept(): void {
    this.#held = false;
    if (this.serving === 0 && this.#queue.length === 0) this.host.listener.resume();
  }

  override close(graceMs: number): Promise<void> {
    this.#closing = true;
    for (const c of this.#queue.splice(0)) this.#drop(c);
    return super.close(graceMs);
  }

  override destroy(): void {
    this.#closing = true;
    for (const c of this.#queue.splice(0)) this.#drop(c);
    super.destroy();
  }
}

export default (host: ModelHost): Model => new IterativeModel(host);
