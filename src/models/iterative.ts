/**
 * iterative: one connection at a time in the server process, the seed's first
 * server. Clients that arrive while another is served wait, accepted but unread, for
 * their turn; the WAIT_ACCEPTED-th stops accepting, so the clients after it complete
 * their handshake with the kernel and wait in the backlog. When the queue is empty
 * again, accepting resumes.
 *
 *   accept ─► runService(socket) ─► close ─► next queued, or accept
 *              (accepts meanwhile: queue them; at WAIT_ACCEPTED queued, pause accepting)
 *
 * Pausing is lazy because it is not free: a pause closes libuv's listening handle and a
 * resume opens another on a fresh duplicate (net/acceptor.ts), a few system calls and
 * a net.Server each time; pausing for every connection cost about a third more CPU per
 * connection than the event model. A queued client has been admitted when accepted (its
 * `deny`/`refuse` line and its per-source place come then; its `accept` line when served).
 *
 * Isolation: as in `event`, a throw in a service ends only its connection; an
 * uncaught error or process.exit ends the server.
 */
import type { IncomingConnection } from '../connection/pipeline.js';
import { InProcessModel } from './in-process.js';
import type { Model, ModelHost } from './types.js';

/** At most this many connections accepted in the same tick as the pause wait their turn; more are closed. */
const MAX_QUEUED = 64;
/**
 * Clients that wait accepted before accepting pauses: 4. Fewer made the pause nearly as
 * frequent as pausing for every connection under two clients reconnecting at once (a
 * client's next connection often arrives before the server has seen its last one close).
 */
export const WAIT_ACCEPTED = 4;

/** The iterative model; no options (--max-conns is moot: one connection at a time). */
export class IterativeModel extends InProcessModel {
  readonly name = 'iterative' as const;
  /** Accepted connections waiting their turn: WAIT_ACCEPTED, plus any libuv accepted in the same batch. */
  readonly #queue: IncomingConnection[] = [];
  /** The server asked us to stop accepting (at --max-conns). */
  #held = false;
  #closing = false;

  constructor(host: ModelHost) {
    super(host);
  }

  dispatch(conn: IncomingConnection): void {
    if (this.serving > 0 || this.#queue.length > 0) {
      // Busy: this client waits its turn here; once WAIT_ACCEPTED wait, the rest wait in the kernel's backlog.
      if (this.#queue.length + 1 >= WAIT_ACCEPTED) this.host.listener.pause();
      if (this.#queue.length >= MAX_QUEUED) this.#drop(conn);
      else this.#queue.push(conn);
      return;
    }
    this.#serve(conn);
  }

  #serve(conn: IncomingConnection): void {
    this.serve(conn, () => this.#next());
  }

  #drop(conn: IncomingConnection): void {
    conn.socket.destroy();
    conn.closed();
  }

  /** The current connection is over: serve a queued one, or accept again. */
  #next(): void {
    const queued = this.#queue.shift();
    // Room for one waiting client again: accept (a no-op when accepting already).
    if (this.#queue.length === 0 && !this.#held && !this.#closing) this.host.listener.resume();
    if (queued) {
      if (this.#closing) {
        this.#drop(queued);
        this.#next();
      } else this.#serve(queued);
    }
  }

  override pauseAccept(): void {
    this.#held = true;
    this.host.listener.pause();
  }

  override resumeAccept(): void {
    this.#held = false;
    if (this.#queue.length === 0) this.host.listener.resume();
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
