/**
 * The concurrency-model contract. A model decides who serves each accepted
 * connection (this process, a child per connection, a pool of processes, threads)
 * and nothing else: the server owns the listener's lifecycle; the connection
 * pipeline (../connection/pipeline.ts) identifies and admits each connection, counts
 * it and turns what models report into events.
 */
import type { ConnectionInfo } from '../address.js';
import type { ServerEvent } from '../events.js';
import type { ConnectionLimits, SourceLimits } from '../admission/limits.js';
import type { Listener } from '../net/listener.js';
import type { ProxyGateOptions } from '../net/proxy-gate.js';
import type { ServiceSpec } from '../services/types.js';
import type { AccessRuleSpec } from '../admission/access.js';
import type { Connection, IncomingConnection } from '../connection/pipeline.js';
import type { TlsStats } from '../tls/gate.js';
import type { TlsMaterial, TlsSettings } from '../tls/settings.js';

/** Names of the models, as `--model` takes them. */
export type ModelName = 'iterative' | 'fork' | 'prefork' | 'threads' | 'event';

/** Options that only some models read. Each model documents its defaults. */
export interface ModelOptions {
  /** prefork/threads: number of workers. */
  workers?: number;
  /** fork: children started ahead of need. */
  spare?: number;
  /** prefork: `shared` (workers accept) or `pass` (parent accepts and passes). */
  accept?: 'shared' | 'pass';
  /** prefork: recycle a worker after this many connections (0 = never). */
  maxConnsPerWorker?: number;
}

/** What the Server gives a model. */
export interface ModelHost {
  readonly listener: Listener;
  readonly service: ServiceSpec;
  readonly options: Readonly<ModelOptions>;
  /** Connection limit, for models that enforce it inside workers. */
  readonly maxConns: number;
  /** Per-connection idle and time limits (0 = none): enforce them where the connection is served. */
  readonly limits: ConnectionLimits;
  /**
   * PROXY protocol options when the server expects headers, else undefined (the
   * default). Connections from `listener` have been through its gate already; a
   * worker that accepts on its own descriptor must read them with a ProxyGate
   * (src/net/proxy-gate.ts) before anything else.
   */
  readonly proxy?: ProxyGateOptions;
  /**
   * The service's per-source and rate counts: shared with workers that admit on their
   * own (sources.share()); the places a dead worker held are given back here.
   */
  readonly sources: SourceLimits;
  /** The access rules as written, for workers that check them themselves. */
  readonly access: readonly AccessRuleSpec[];
  /**
   * TLS, when the server terminates it: the settings (plain data, for a worker's spec)
   * and the material as last read (keys: hand it to workers in a message, never in a
   * spec or a file). Workers that accept on their own run a TlsGate (src/tls/gate.ts).
   */
  readonly tls?: { settings: TlsSettings; material(): TlsMaterial };
  /**
   * A connection a worker admitted and numbered by itself (an id from
   * reserveConnectionIds in connection/pipeline.ts), reported after the fact.
   */
  adopt(info: ConnectionInfo, env?: Readonly<Record<string, string>>): Connection;
  /** Report any other event (spawn, exit, error, kill). */
  emit(event: ServerEvent): void;
}

/** A process or thread a model runs, for status views. */
export interface ModelProcess {
  pid: number;
  /** Thread id for threads, else 0. */
  threadId: number;
  role: 'parent' | 'child' | 'spare' | 'worker' | 'thread';
  state: string;
  /** Connection ids it is serving now. */
  connections: number[];
  /** Connections served so far. */
  served: number;
  startedAt: number;
}

/** The stats shape every model reports. */
export interface ModelStats {
  model: ModelName;
  processes: ModelProcess[];
  /** Children or workers that ended by a signal or non-zero exit. */
  crashed: number;
  /** Children or workers started, over the server's life. */
  spawned: number;
  /**
   * Pool models: messages exchanged with workers over the server's life (IPC or
   * MessagePort), to show that no message goes per connection when none is needed.
   */
  messages?: { fromWorkers: number; toWorkers: number };
}

/** One concurrency model. */
export interface Model {
  readonly name: ModelName;
  /**
   * Who accepts: `server` (the server's listener, through the connection pipeline,
   * hands each admitted connection to dispatch) or `own` (the model's workers accept
   * on their own descriptors, admit there and report through host.adopt).
   */
  readonly accepts: 'server' | 'own';
  /** Load what serving needs (the service, workers, spares); resolves once ready. */
  start(): Promise<void>;
  /**
   * Serve one admitted connection (accepts `server`): call conn.opened(pid) once it is
   * served, conn.closed() when it ends (or could not be served).
   */
  dispatch(conn: IncomingConnection): void;
  /**
   * Whether this model, for this service, can serve a bare accepted descriptor
   * (serveDescriptor); known after start(). One input of the path decision
   * (../net/fast-path.ts). Absent: no.
   */
  servesDescriptors?(): boolean;
  /**
   * Serve one admitted connection given as its accepted descriptor (no net.Socket),
   * which is the model's from this call on: as dispatch otherwise.
   */
  serveDescriptor?(conn: Connection, fd: number): void;
  /** Stop taking new connections (at the limit): they wait in the backlog. */
  pauseAccept(): void;
  /** Take new connections again. */
  resumeAccept(): void;
  /**
   * Graceful: no new connections; resolve when every connection has ended and every
   * process/thread the model started is gone. After `graceMs`, force them.
   */
  close(graceMs: number): Promise<void>;
  /** Forceful and immediate: kill everything the model started. Idempotent. */
  destroy(): void;
  stats(): ModelStats;
  /** TLS counters of the handshakes its workers made (models whose workers accept on their own). */
  tlsStats?(): TlsStats | undefined;
  /** The server read new TLS material (SIGHUP): hand host.tls.material() to the workers. */
  tlsReload?(): void;
}

/** How a model is made from its host. */
export type ModelFactory = (host: ModelHost) => Model;
