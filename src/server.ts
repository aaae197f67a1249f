/**
 * The server: a listener, a model and a service, with a lifecycle
 * (`idle → running → closing → closed`), the connection limit and the events.
 *
 * The server owns counting: a model reports each connection it opens and closes,
 * and the server pauses accepting at `maxConns` (new connections wait in the
 * kernel's backlog, none is refused) and resumes below it.
 */
import { EventEmitter } from 'node:events';
import { AccessRules, type AccessRuleSpec } from './admission/access.js';
import type { ConnectionInfo, Endpoint } from './address.js';
import { parsePort } from './address.js';
import { InvalidOptionError, StateError } from './errors.js';
import { eventChannel, type ServerEvent } from './events.js';
import { secondsToMs, SourceLimits, type ConnectionLimits, type LimitStats } from './admission/limits.js';
import { closeOnExecInherited, Listener } from './net/listener.js';
import { DEFAULT_V2_LIMIT, V2_MAX_LENGTH } from './net/proxy-protocol.js';
import { proxyRefusal, type ProxyGateOptions } from './net/proxy-gate.js';
import { startSuccessor, type SuccessorOptions } from './net/restart.js';
import { isModelName, loadModel, modelNames } from './models/index.js';
import type { Admission, Model, ModelName, ModelOptions, ModelStats } from './models/types.js';
import { validateServiceSpec, type ServiceSpec } from './services/index.js';

/** Options of createServer. Every field is optional; defaults are stated on each. */
export interface ServerOptions extends ModelOptions {
  /** Address to bind. Default `0.0.0.0`. */
  host?: string;
  /** Port. Default 9877 (the seed's SERV_PORT); 0 lets the kernel choose. */
  port?: number;
  /** listen(2) backlog. Default 511. */
  backlog?: number;
  /** Serve on this inherited listening descriptor instead of binding. */
  fd?: number;
  /** Serve on an already-open Listener (tests, socket activation, the super-server). */
  listener?: Listener;
  /** Concurrency model. Default `fork` (a process per connection, as in the seed). */
  model?: ModelName;
  /** Service: a built-in name or a spec. Default `echo`. */
  service?: string | ServiceSpec;
  /** Concurrent connections; at the limit new ones wait in the backlog. Default 40 (tcpserver's -c). */
  maxConns?: number;
  /** Seconds close() lets connections finish before killing them. Default 10. */
  grace?: number;
  /** Access rules (tcprules-style, first match wins; see access.ts). Default none: every peer is allowed. */
  access?: readonly AccessRuleSpec[];
  /** Concurrent connections from one source address; more are refused. Default 0 (unlimited). */
  perSource?: number;
  /** New connections per second from one source address (xinetd's cps); more are refused. Default 0 (unlimited). */
  rate?: number;
  /** Seconds without traffic after which a connection is closed. Default 0 (never). */
  idleTimeout?: number;
  /** Seconds a connection may last at most. Default 0 (unlimited). */
  timeLimit?: number;
  /**
   * Expect a PROXY protocol header on every connection (behind HAProxy `send-proxy`,
   * nginx `proxy_protocol on`, ...): `true` accepts v1 and v2, `'v1'`/`'v2'` only that
   * one. The header's client becomes the connection's peer everywhere. Default false.
   */
  proxyProtocol?: boolean | 'v1' | 'v2';
  /** Seconds a connection may take to send its PROXY header. Default 5. */
  proxyTimeout?: number;
  /** Largest PROXY v2 header accepted, in bytes (16 + length). Default 4096; at most 65551. */
  proxyV2Limit?: number;
}

/** Server lifecycle states. */
export type ServerState = 'idle' | 'running' | 'closing' | 'closed';

/** A plain snapshot of the server. */
export interface ServerStats {
  state: ServerState;
  pid: number;
  local: Endpoint | undefined;
  listener: string;
  model: ModelName;
  service: string;
  maxConns: number;
  accepted: number;
  active: number;
  ended: number;
  connections: Array<ConnectionInfo & { pid: number }>;
  startedAt: number;
  models: ModelStats | undefined;
  /** Connections closed at once by an access rule. */
  denied: number;
  /** Refusals and closings by the limits. */
  limits: LimitStats;
}

interface Resolved {
  host: string;
  port: number;
  backlog: number;
  fd: number | undefined;
  model: ModelName;
  service: ServiceSpec;
  maxConns: number;
  grace: number;
  modelOptions: ModelOptions;
  access: AccessRules;
  perSource: number;
  rate: number;
  limits: ConnectionLimits;
  proxy: ProxyGateOptions | undefined;
}

function positiveInt(name: string, value: unknown, { min = 1, max = Number.MAX_SAFE_INTEGER } = {}): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(name, `must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function invalidAccept(value: unknown): never {
  throw new InvalidOptionError('accept', `must be shared or pass, got ${JSON.stringify(value)}`);
}

/** Defaults first, then one check per field; throws InvalidOptionError naming the field. */
function resolveOptions(o: ServerOptions): Resolved {
  const model = o.model ?? 'fork';
  if (!isModelName(model)) {
    throw new InvalidOptionError('model', `unknown model ${JSON.stringify(model)} (known: ${modelNames().join(', ')})`);
  }
  const grace = o.grace ?? 10;
  if (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0) {
    throw new InvalidOptionError('grace', `must be a number of seconds >= 0, got ${JSON.stringify(o.grace)}`);
  }
  const proxyTimeout = o.proxyTimeout ?? 5;
  if (typeof proxyTimeout !== 'number' || !Number.isFinite(proxyTimeout) || proxyTimeout <= 0) {
    throw new InvalidOptionError('proxyTimeout', `must be a number of seconds > 0, got ${JSON.stringify(o.proxyTimeout)}`);
  }
  const proxyProtocol = o.proxyProtocol ?? false;
  if (![true, false, 'v1', 'v2'].includes(proxyProtocol)) {
    throw new InvalidOptionError('proxyProtocol', `must be true, false, "v1" or "v2", got ${JSON.stringify(o.proxyProtocol)}`);
  }
  const proxy: ProxyGateOptions | undefined = proxyProtocol
    ? {
        versions: proxyProtocol === 'v1' ? [1] : proxyProtocol === 'v2' ? [2] : [1, 2],
        timeoutMs: proxyTimeout * 1000,
        v2Limit: positiveInt('proxyV2Limit', o.proxyV2Limit ?? DEFAULT_V2_LIMIT, { min: 16, max: V2_MAX_LENGTH }),
      }
    : undefined;
  return {
    proxy,
    host: o.host ?? '0.0.0.0',
    port: parsePort(o.port ?? 9877, 'port'),
    backlog: positiveInt('backlog', o.backlog ?? 511, { max: 65535 }),
    fd: o.fd === undefined ? undefined : positiveInt('fd', o.fd, { min: 0 }),
    model,
    service: validateServiceSpec(o.service ?? 'echo'),
    maxConns: positiveInt('maxConns', o.maxConns ?? 40, { max: 1_000_000 }),
    grace,
    access: new AccessRules(o.access ?? []),
    perSource: o.perSource ?? 0,
    rate: o.rate ?? 0,
    limits: { idleMs: secondsToMs('idleTimeout', o.idleTimeout), maxMs: secondsToMs('timeLimit', o.timeLimit) },
    modelOptions: {
      workers: o.workers === undefined ? undefined : positiveInt('workers', o.workers, { max: 1024 }),
      spare: o.spare === undefined ? undefined : positiveInt('spare', o.spare, { min: 0, max: 1024 }),
      accept: o.accept === undefined || o.accept === 'shared' || o.accept === 'pass' ? o.accept : invalidAccept(o.accept),
      maxConnsPerWorker:
        o.maxConnsPerWorker === undefined ? undefined : positiveInt('maxConnsPerWorker', o.maxConnsPerWorker, { min: 0 }),
    },
  };
}

/**
 * A concurrent TCP server. Emits `'event'` with each ServerEvent (also published on
 * the `tcpkit:event` diagnostics channel).
 */
export class Server extends EventEmitter<{ event: [ServerEvent] }> {
  readonly options: Readonly<Resolved>;
  #state: ServerState = 'idle';
  #listener: Listener | undefined;
  #ownsListener = true;
  #model: Model | undefined;
  #active = new Map<number, ConnectionInfo & { pid: number }>();
  #nextId = 1;
  #accepted = 0;
  #ended = 0;
  #paused = false;
  #startedAt = Date.now();
  #closing: Promise<void> | undefined;
  #given: Listener | undefined;
  readonly #sources: SourceLimits;
  /** Admitted connections (id → peer address) holding a per-source place until closed. */
  #admitted = new Map<number, string>();
  #denied = 0;
  #handingOver = false;

  constructor(options: ServerOptions = {}) {
    super();
    this.options = resolveOptions(options);
    this.#sources = new SourceLimits({ perSource: this.options.perSource, rate: this.options.rate });
    this.#given = options.listener;
  }

  get state(): ServerState {
    return this.#state;
  }

  /** The bound address (getsockname of the listening socket); undefined before listen(). */
  address(): Endpoint | undefined {
    return this.#listener?.endpoint;
  }

  /** The listener, once listening. */
  get listener(): Listener | undefined {
    return this.#listener;
  }

  /** Bind (or adopt the given listener), start the model, and resolve with the bound address. */
  async listen(): Promise<Endpoint> {
    if (this.#state !== 'idle') throw new StateError(`listen: server is ${this.#state}`);
    this.#state = 'running';
    const o = this.options;
    try {
      if (this.#given) {
        this.#listener = this.#given;
        this.#ownsListener = false;
      } else {
        this.#listener = await Listener.open({ host: o.host, port: o.port, backlog: o.backlog, fd: o.fd });
      }
      this.#listener.onError((e) => {
        const suppressed = e.suppressed === undefined ? {} : { suppressed: e.suppressed };
        this.#emit({ type: 'error', where: 'accept', code: e.code ?? 'EIO', ...suppressed, message: e.message });
      });
      // Children and exec'd programs must hold nothing but their own 0, 1, 2.
      closeOnExecInherited();
      if (o.proxy) this.#listener.acceptProxyProtocol(o.proxy, (err, real) => this.#emit(proxyRefusal(err, real)));
      const factory = await loadModel(o.model);
      const server = this;
      this.#model = factory({
        listener: this.#listener,
        service: o.service,
        options: o.modelOptions,
        maxConns: o.maxConns,
        limits: o.limits,
        proxy: o.proxy,
        nextId: () => server.#nextId++,
        admit: (info) => server.#admit(info),
        opened: (info, pid) => server.#opened(info, pid),
        closed: (id, pid, exitcode, signal) => server.#closed(id, pid, exitcode, signal),
        emit: (event) => server.#emit(event),
      });
      await this.#model.start();
    } catch (err) {
      this.#state = 'closed';
      this.#model?.destroy();
      if (this.#ownsListener) this.#listener?.close();
      throw err;
    }
    const local = this.#listener.endpoint;
    this.#emit({ type: 'listen', local, model: o.model, service: o.service.name, pid: process.pid, max: o.maxConns });
    return local;
  }

  /** Access rules, then per-source limits; see ModelHost.admit. */
  #admit(info: ConnectionInfo): Admission {
    const { remote, local } = info;
    const decision = this.options.access.check(remote.address);
    if (!decision.ok) {
      this.#denied++;
      this.#emit({ type: 'deny', remote, local, reason: 'access', rule: decision.rule });
      return { ok: false, reason: 'access' };
    }
    const place = this.#sources.take(remote.address);
    if (!place.ok) {
      this.#emit({ type: 'refuse', remote, local, reason: place.reason });
      return { ok: false, reason: place.reason };
    }
    this.#admitted.set(info.id, remote.address);
    return { ok: true, env: { TCPCONNNUM: String(place.count), ...decision.env } };
  }

  #opened(info: ConnectionInfo, pid: number): void {
    this.#accepted++;
    this.#active.set(info.id, { ...info, pid });
    const count = this.#active.size;
    const via = info.via?.remote;
    this.#emit({ type: 'accept', id: info.id, local: info.local, remote: info.remote, pid, count, max: this.options.maxConns, ...(via && { via }) });
    if (count >= this.options.maxConns && !this.#paused && this.#state === 'running') {
      this.#paused = true;
      this.#model?.pauseAccept();
      this.#emit({ type: 'pause', count, max: this.options.maxConns });
    }
  }

  #closed(id: number, pid: number, exitcode: number | null, signal: string | null): void {
    const address = this.#admitted.get(id);
    if (address !== undefined) {
      this.#admitted.delete(id);
      this.#sources.release(address);
    }
    const info = this.#active.get(id);
    if (!info) return;
    this.#active.delete(id);
    this.#ended++;
    const count = this.#active.size;
    const ms = Date.now() - info.acceptedAt;
    this.#emit({ type: 'end', id, pid, exitcode, signal, count, max: this.options.maxConns, ms });
    if (this.#paused && count < this.options.maxConns && this.#state === 'running') {
      this.#paused = false;
      this.#model?.resumeAccept();
      this.#emit({ type: 'resume', count, max: this.options.maxConns });
    }
  }

  #emit(event: ServerEvent): void {
    if (event.type === 'kill' && (event.reason === 'idle' || event.reason === 'time-limit')) this.#sources.closedBy(event.reason);
    if (eventChannel.hasSubscribers) eventChannel.publish(event);
    this.emit('event', event);
  }

  /**
   * Graceful close: stop accepting (the listening socket closes, so new connections
   * are refused by the kernel), let active connections finish for `grace` seconds
   * (default: the `grace` option), then force them. Idempotent; resolves when every
   * process and thread the server started is gone.
   */
  close(options: { grace?: number; signal?: string } = {}): Promise<void> {
    if (this.#closing) return this.#closing;
    if (this.#state === 'idle') {
      this.#state = 'closed';
      return (this.#closing = Promise.resolve());
    }
    this.#state = 'closing';
    const grace = options.grace ?? this.options.grace;
    const listener = this.#listener;
    if (this.#ownsListener) listener?.close();
    else listener?.pause();
    // Logged once the socket is closed: a reader of the log who then connects is refused, never reset.
    this.#emit({ type: 'shutdown', signal: options.signal ?? 'close', active: this.#active.size, grace });
    // A connection still sending its PROXY header was accepted: let it reach the model
    // (bounded by the header timeout) before the model drains.
    const settled = listener ? listener.settled() : Promise.resolve();
    this.#closing = settled.then(() => (this.#model ? this.#model.close(grace * 1000) : undefined)).then(() => {
      this.#state = 'closed';
      this.#emit({ type: 'closed', accepted: this.#accepted, served: this.#ended });
    });
    return this.#closing;
  }

  /**
   * Zero-downtime restart (src/restart.ts): start a successor process on this
   * server's listening socket, wait until it accepts, then close gracefully (this
   * server stops accepting and drains; the socket stays open in the successor).
   * Resolves with the successor's pid once this server is closed. On failure the
   * server keeps serving and the promise rejects (`TCPKIT_RESTART`). Events:
   * `restart state spawn|ready|failed pid P`.
   */
  async handOver(options: Omit<SuccessorOptions, 'fd'> = {}): Promise<number> {
    const listener = this.#listener;
    if (this.#state !== 'running' || !listener) throw new StateError(`restart: server is ${this.#state}`);
    if (this.#handingOver) throw new StateError('restart: a restart is already under way');
    this.#handingOver = true;
    let pid = 0;
    try {
      pid = await startSuccessor({
        ...options,
        fd: listener.fd,
        onSpawn: (p) => {
          pid = p;
          this.#emit({ type: 'restart', state: 'spawn', pid: p });
          options.onSpawn?.(p);
        },
      });
    } catch (err) {
      this.#handingOver = false;
      this.#emit({ type: 'restart', state: 'failed', pid, message: (err as Error).message });
      throw err;
    }
    this.#emit({ type: 'restart', state: 'ready', pid });
    await this.close({ signal: 'restart' });
    return pid;
  }

  /** Forceful close: kill every connection, process and thread now. Idempotent. */
  destroy(): Promise<void> {
    const closing = this.close({ grace: 0 });
    this.#listener?.abortPending();
    this.#model?.destroy();
    return closing;
  }

  /** A plain snapshot of counters, connections and the model's processes. */
  stats(): ServerStats {
    const l = this.#listener;
    return {
      state: this.#state,
      pid: process.pid,
      local: l?.endpoint,
      listener: l?.state ?? 'closed',
      model: this.options.model,
      service: this.options.service.name,
      maxConns: this.options.maxConns,
      accepted: this.#accepted,
      active: this.#active.size,
      ended: this.#ended,
      connections: [...this.#active.values()],
      startedAt: this.#startedAt,
      models: this.#model?.stats(),
      denied: this.#denied,
      limits: this.#sources.stats(),
    };
  }
}

/** Create a server (not yet listening; call `listen()`). */
export function createServer(options: ServerOptions = {}): Server {
  return new Server(options);
}
