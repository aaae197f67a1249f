/**
 * The one path every connection takes, whatever the model:
 *
 *   socket ─► identify (getsockname/getpeername; after the PROXY gate, the header's client)
 *          ─► admit (access rules, per-source and rate limits)      `deny` / `refuse`
 *          ─► model.dispatch(connection) ─► connection.opened(pid)  `accept`, counted
 *          ─► connection.closed(exitcode, signal)                   `end`, place released
 *
 * Identify and admit are the admission unit (../admission/admission.ts), which a pool
 * worker that accepts on its own (prefork and threads in shared mode) runs too, with
 * the same rules and the same per-source table (shared memory), numbering its
 * connections from blocks of ids (reserveConnectionIds); it reports them, later and in
 * batches, through adopt(): counted and logged as every other connection. The pipeline
 * owns the counters (accepted, active, ended, denied) and the connection limit: at
 * `maxConns` active connections it asks the model to stop accepting (new connections
 * wait in the kernel's backlog) and to resume below it.
 */
import type net from 'node:net';
import type { ConnectionEnds, ConnectionInfo, Endpoint } from '../address.js';
import type { AccessRules } from '../admission/access.js';
import { Admission, identify } from '../admission/admission.js';
import type { LimitStats } from '../admission/limits.js';
import type { BudgetMember, ServiceBudget } from '../admission/budget.js';
import { eventChannel, serviceLogEvent, type ServerEvent } from '../events.js';
import { Slots } from './slots.js';

/**
 * One admitted connection, as a model sees it. Each method acts once; later calls
 * are ignored, so a model may report an end from more than one path (a child's exit
 * and a failed send) without counting it twice.
 */
export interface Connection {
  readonly info: ConnectionInfo;
  /** What the connection's program gets on top of the UCSPI variables (the matching rule's variables, TCPCONNNUM). */
  readonly env: Readonly<Record<string, string>>;
  /** It is served now, by `pid` (this process, a child, a worker): logs `accept`, counts it. */
  opened(pid: number): void;
  /**
   * It ended: logs `end` (with the child's exit code or signal where a child served it
   * alone) if it had opened, and gives back its per-source place either way, so call it
   * also when serving failed before opened(). `at`: when it ended, if that was
   * earlier than now (a worker's batched report); default now.
   */
  closed(exitcode?: number | null, signal?: string | null, at?: number): void;
  /** The service's ctx.log: `idle`/`time-limit` (closed for a limit) become a `kill ... signal close` line, the rest an error line. */
  log(reason: string, code: string): void;
  /** The service threw, rejected, or its socket failed. */
  failed(code: string, message: string): void;
}

/** An admitted connection with its socket, accepted in this process (paused, not yet read). */
export interface IncomingConnection extends Connection {
  readonly socket: net.Socket;
}

/** The counters the pipeline owns, as a plain snapshot. */
export interface PipelineStats {
  accepted: number;
  active: number;
  ended: number;
  connections: Array<ConnectionInfo & { pid: number }>;
  /** Connections closed at once by an access rule. */
  denied: number;
  limits: LimitStats;
}

/** How the pipeline is set up: all checked by the server's option table. */
export interface PipelineOptions {
  access: AccessRules;
  /**
   * The service's budget: its --max-conns (active connections at which accepting pauses)
   * and its per-source and rate limits, shared by every pipeline of the service (one
   * per listen address under `serve --config`).
   */
  budget: ServiceBudget;
}

/** What the pipeline tells its owner. */
export interface PipelineHooks {
  /** Every event, after the pipeline has counted what it counts. */
  emit(event: ServerEvent): void;
  /** `maxConns` reached: stop accepting. Return false when not running (nothing paused). */
  pause(): boolean;
  /** Below `maxConns` again: accept again. Return false when not running. */
  resume(): boolean;
}

/** What an AdmittedConnection reports to its pipeline: one object per pipeline, not per connection. */
interface ConnectionOwner {
  opened(conn: AdmittedConnection): void;
  closed(conn: AdmittedConnection, wasOpen: boolean, exitcode: number | null, signal: string | null, at: number): void;
  emit(event: ServerEvent): void;
}

/**
 * The pipeline's Connection: a class with its methods on the prototype rather than a
 * closure per method, since one is made for every connection. Call them as methods
 * (pass the connection, not `conn.log`, where a callback is wanted).
 */
class AdmittedConnection implements Connection {
  readonly info: ConnectionInfo;
  readonly env: Readonly<Record<string, string>>;
  /** Its per-source place, given back when it ends; -1 when a worker holds it (adopted). */
  readonly place: number;
  state: 'admitted' | 'open' | 'ended' = 'admitted';
  /** The pid that serves it, once opened. */
  servedBy = 0;
  /**
   * Its socket, when accepted in this process (take()): a field from the start, so that setting
   * it adds no property to the object (which would allocate a property store per connection).
   */
  socket: net.Socket | undefined = undefined;
  /** Its slot among the pipeline's open connections, once opened. */
  slot = -1;
  readonly #owner: ConnectionOwner;

  constructor(owner: ConnectionOwner, info: ConnectionInfo, env: Readonly<Record<string, string>>, place: number) {
    this.#owner = owner;
    this.info = info;
    this.env = env;
    this.place = place;
  }

  opened(pid: number): void {
    if (this.state !== 'admitted') return;
    this.state = 'open';
    this.servedBy = pid;
    this.#owner.opened(this);
  }

  closed(exitcode: number | null = null, signal: string | null = null, at?: number): void {
    if (this.state === 'ended') return;
    const wasOpen = this.state === 'open';
    this.state = 'ended';
    this.#owner.closed(this, wasOpen, exitcode, signal, at ?? Date.now());
  }

  log(reason: string, code: string): void {
    this.#owner.emit(serviceLogEvent(this.info.id, this.servedBy || process.pid, reason, code));
  }

  failed(code: string, message: string): void {
    this.#owner.emit({ type: 'error', where: 'service', code, message, id: this.info.id, pid: this.servedBy || process.pid });
  }
}

/**
 * Connection ids: unique in this process, across every pipeline in it (the
 * super-server runs several), so a log line's `id` names one connection.
 */
let nextConnectionId = 1;

/**
 * Reserve `count` consecutive connection ids for a pool worker that numbers its
 * connections itself; returns the first. Ids stay unique in the process's log.
 */
export function reserveConnectionIds(count: number): number {
  const from = nextConnectionId;
  nextConnectionId += count;
  return from;
}

/** See the file comment. A BudgetMember: its service's budget pauses and resumes it. */
export class ConnectionPipeline implements BudgetMember {
  readonly #admission: Admission;
  readonly #hooks: PipelineHooks;
  readonly #budget: ServiceBudget;
  /** Open connections (a Slots, not a Map by id: see ./slots.ts); each knows its slot. */
  readonly #active = new Slots<AdmittedConnection>();
  readonly #owner: ConnectionOwner;
  #accepted = 0;
  #ended = 0;
  #denied = 0;
  #paused = false;
  /** Stopped quietly: the limit is reached counting connections still starting (budget.admitted). */
  #held = false;

  constructor(options: PipelineOptions, hooks: PipelineHooks) {
    this.#hooks = hooks;
    this.#budget = options.budget;
    this.#admission = new Admission(options.access, options.budget.sources, () => nextConnectionId++);
    this.#owner = {
      opened: (conn) => this.#opened(conn),
      closed: (conn, wasOpen, exitcode, signal, at) => {
        if (conn.place >= 0) this.#admission.release(conn.place);
        if (!wasOpen && conn.place !== -1) this.#budget.abandoned();
        // A connection that never opened logs no `end`.
        if (wasOpen) this.#closed(conn, exitcode, signal, at);
      },
      emit: (event) => this.emit(event),
    };
  }

  /** Connections accepted and connections ended so far. */
  get accepted(): number {
    return this.#accepted;
  }

  get ended(): number {
    return this.#ended;
  }

  get active(): number {
    return this.#active.size;
  }

  /** Whether the connection limit has paused accepting. */
  get paused(): boolean {
    return this.#paused || this.#held;
  }

  /**
   * A socket accepted in this process: identify and admit it. Undefined when it is
   * not to be served (gone, denied, refused: logged, and the socket destroyed).
   * `local`, `announced`: see identify (default: getsockname, no PROXY header).
   */
  take(socket: net.Socket, local?: Endpoint, announced?: ConnectionEnds): IncomingConnection | undefined {
    const info = identify(socket, local, announced);
    const conn = info && this.#admitted(info);
    if (!conn) {
      socket.destroy();
      return undefined;
    }
    conn.socket = socket;
    return conn as IncomingConnection;
  }

  /** An identified connection: admit it under a new id. Undefined when denied or refused (logged). */
  admit(identified: ConnectionInfo): Connection | undefined {
    return this.#admitted(identified);
  }

  #admitted(identified: ConnectionInfo): AdmittedConnection | undefined {
    const verdict = this.#admission.admit(identified);
    if (!verdict.ok) {
      this.emit(verdict.event);
      return undefined;
    }
    const conn = new AdmittedConnection(this.#owner, verdict.info, verdict.env, verdict.place);
    // Counted against --max-conns from now on (a program may take a moment to start): the limit is never exceeded.
    this.#budget.admitted();
    return conn;
  }

  /**
   * A connection a pool worker admitted (the same admission, its place in the shared
   * table, an id from reserveConnectionIds()), already served there and reported now:
   * counted and logged like any other. The worker gives its place back.
   */
  adopt(info: ConnectionInfo, env: Readonly<Record<string, string>> = {}): Connection {
    return new AdmittedConnection(this.#owner, info, env, -1);
  }

  #opened(conn: AdmittedConnection): void {
    const { info, servedBy: pid } = conn;
    this.#accepted++;
    conn.slot = this.#active.add(conn);
    // Counted across the service (every pipeline sharing the budget); at the limit every one of them pauses.
    const via = info.via?.remote;
    const tls = info.tls?.protocol;
    // Built as a literal and then extended (not spread): the usual connection has neither, and a literal is one allocation.
    const event: Extract<ServerEvent, { type: 'accept' }> = { type: 'accept', id: info.id, local: info.local, remote: info.remote, pid, count: this.#budget.active + 1, max: this.#budget.maxConns };
    if (via) event.via = via;
    if (tls) event.tls = tls;
    this.emit(event);
    this.#budget.opened(conn.place !== -1);
  }

  #closed(conn: AdmittedConnection, exitcode: number | null, signal: string | null, at: number): void {
    const { info, servedBy: pid } = conn;
    this.#active.remove(conn.slot);
    this.#ended++;
    const count = Math.max(0, this.#budget.active - 1);
    this.emit({ type: 'end', id: info.id, pid, exitcode, signal, count, max: this.#budget.maxConns, ms: Math.max(0, at - info.acceptedAt) });
    this.#budget.closed();
  }

  /** The budget is at its limit: stop accepting (BudgetMember); `hold`: quietly, while connections still start. */
  pause(hold = false): void {
    if (hold) {
      if (!this.#paused && !this.#held && this.#hooks.pause()) this.#held = true;
      return;
    }
    // Held already (the acceptor is stopped): only the state and the event are new.
    if (this.#paused || (!this.#held && !this.#hooks.pause())) return;
    this.#paused = true;
    this.#held = false;
    this.emit({ type: 'pause', count: this.#budget.active, max: this.#budget.maxConns });
  }

  /** The budget is below its limit again: accept again (BudgetMember). */
  resume(): void {
    if (this.#held && !this.#paused) {
      this.#held = false;
      this.#hooks.resume();
      return;
    }
    if (!this.#paused || !this.#hooks.resume()) return;
    this.#paused = false;
    this.emit({ type: 'resume', count: this.#budget.active, max: this.#budget.maxConns });
  }

  /**
   * Publish an event (and count the closings by a limit and the denials, whoever reports
   * them, and the connections a dead worker served unreported: accepted and ended).
   */
  emit(event: ServerEvent): void {
    if (event.type === 'deny') this.#denied++;
    if (event.type === 'error' && event.unreported) {
      this.#accepted += event.unreported;
      this.#ended += event.unreported;
    }
    if (event.type === 'kill' && (event.reason === 'idle' || event.reason === 'time-limit')) this.#budget.sources.closedBy(event.reason);
    if (eventChannel.hasSubscribers) eventChannel.publish(event);
    this.#hooks.emit(event);
  }

  stats(): PipelineStats {
    return {
      accepted: this.#accepted,
      active: this.#active.size,
      ended: this.#ended,
      connections: this.#active
        .values()
        .sort((a, b) => a.info.id - b.info.id)
        .map((c) => ({ ...c.info, pid: c.servedBy })),
      denied: this.#denied,
      limits: this.#budget.sources.stats(),
    };
  }
}
