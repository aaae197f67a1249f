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
import { acceptedLocal, checkHost } from './address.js';
import { InvalidOptionError, StateError } from './errors.js';
import { eventChannel, type ServerEvent } from './events.js';
import type { ConnectionLimits, LimitStats } from './admission/limits.js';
import { ServiceBudget, type BudgetMember } from './admission/budget.js';
import { ConnectionPipeline } from './connection/pipeline.js';
import { ServedSocket } from './connection/run.js';
import { Listener } from './net/listener.js';
import { unixOwner } from './super/privileges.js';
import { acceptPath, NATIVE_PATH_DESCRIPTORS, recordInfo } from './net/fast-path.js';
import { fdutil } from './net/fdutil.js';
import { canWrapAccepted } from './net/internals.js';
import { ACCEPT_MODES, checkChoice, checkNumber, checkUnixPath, OPTIONS, parseUnixMode, spareWithProgram, toTimerMs, type OptionSpec } from './options.js';
import { ProxyRefusals, proxyTrust, type ProxyGateOptions } from './net/proxy-gate.js';
import { startSuccessor, type SuccessorOptions } from './net/restart.js';
import { isModelName, loadModel, modelNames } from './models/index.js';
import type { Model, ModelName, ModelOptions, ModelStats } from './models/types.js';
import { loadService, programOf, validateServiceSpec, type ServiceSpec } from './services/index.js';
import { identify } from './admission/admission.js';
import { loadTlsMaterial, resolveTls, type TlsMaterial, type TlsOptions, type TlsSettings } from './tls/settings.js';
import { addTlsStats, emptyTlsStats, TlsGate, type TlsStats } from './tls/gate.js';
import { relayThroughPair } from './tls/relay.js';

/**
 * Options of createServer. Every field is optional. Defaults, checks, maxima and help
 * of every option are stated once, in the option table (src/options.ts OPTIONS), which
 * the CLI and config files share: durations at most MAX_SECONDS, what a Node timer holds.
 */
export interface ServerOptions extends ModelOptions, TlsOptions {
  /** Address to bind. Default OPTIONS.host (every IPv4 address). */
  host?: string;
  /** Port. Default OPTIONS.port (the seed's SERV_PORT); 0 lets the kernel choose. */
  port?: number;
  /** listen(2) backlog. Default OPTIONS.backlog (Node's own). */
  backlog?: number;
  /**
   * Listen on this UNIX-domain socket path instead of host/port (`@name`: the abstract namespace). Peers are
   * then known by their credentials (info.remote.uid/gid/pid). Default none (TCP). See docs/unix.md.
   */
  path?: string;
  /** Permissions of the `path` socket file, set before it accepts anyone: octal string or number. Default OPTIONS.unixMode (0660). */
  unixMode?: string | number;
  /** Owner of the `path` socket file, `USER[:GROUP]` (names or ids), set before it accepts anyone. Default: the server's. */
  unixOwner?: string;
  /** Serve on this inherited listening descriptor instead of binding. */
  fd?: number;
  /** Serve on an already-open Listener (tests, socket activation, the super-server). */
  listener?: Listener;
  /** Concurrency model. Default OPTIONS.model (fork: a process per connection, as in the seed). */
  model?: ModelName;
  /** Service: a built-in name or a spec. Default OPTIONS.service (echo). */
  service?: string | ServiceSpec;
  /** Concurrent connections; at the limit new ones wait in the backlog. Default OPTIONS.maxConns (tcpserver's -c). */
  maxConns?: number;
  /** Seconds close() lets connections finish before killing them. Default OPTIONS.grace. */
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
  /** Seconds a connection may take to send its PROXY header. Default OPTIONS.proxyTimeout. */
  proxyTimeout?: number;
  /** Largest PROXY v2 header accepted, in bytes (16 + length). Default and maximum: OPTIONS.proxyV2Limit. */
  proxyV2Limit?: number;
  /**
   * Share the connection limit and per-source limits with other Servers of the same
   * service (the super-server: one Server per listen address). When given, its
   * maxConns, perSource and rate replace this server's own. Default: a budget of its own.
   */
  budget?: ServiceBudget;
  /**
   * Peers that may send a PROXY header (the load balancers): addresses or CIDR blocks.
   * Needs `proxyProtocol`. Default: every peer is trusted.
   */
  proxyFrom?: readonly string[];
  /** A peer not in `proxyFrom`: `refuse` it (default) or serve it `direct`, as itself, reading no header. */
  proxyUntrusted?: 'refuse' | 'direct';
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
  /** TLS handshakes, failures, resumptions, protocols and ciphers (this process's and its workers'); absent without TLS. */
  tls?: TlsStats;
}

interface Resolved {
  /** The UNIX socket to listen on, with its file's mode and owner; undefined for TCP. */
  unix: { path: string; mode: number; uid?: number; gid?: number } | undefined;
  /** TLS termination, when tlsCert is set. */
  tls: TlsSettings | undefined;
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

/** proxyFrom / proxyUntrusted, checked here (bad CIDRs throw naming `proxyFrom[i]`), sent on as plain data. */
function proxyTrustOptions(o: ServerOptions): Pick<ProxyGateOptions, 'from' | 'untrusted'> {
  const out: Pick<ProxyGateOptions, 'from' | 'untrusted'> = {};
  if (o.proxyFrom !== undefined) {
    if (!Array.isArray(o.proxyFrom) || o.proxyFrom.some((f) => typeof f !== 'string')) {
      throw new InvalidOptionError('proxyFrom', `must be a list of addresses or CIDR blocks, got ${JSON.stringify(o.proxyFrom)}`);
    }
    proxyTrust(o.proxyFrom);
    out.from = [...o.proxyFrom];
  }
  if (o.proxyUntrusted !== undefined) {
    out.untrusted = checkChoice('proxyUntrusted', o.proxyUntrusted, OPTIONS.proxyUntrusted.choices);
  }
  return out;
}

/** Defaults first, then one check per field (src/options.ts); throws InvalidOptionError naming the field. */
function resolveOptions(o: ServerOptions): Resolved {
  const model = o.model ?? OPTIONS.model.default;
  if (!isModelName(model)) {
    throw new InvalidOptionError('model', `unknown model ${JSON.stringify(model)} (known: ${modelNames().join(', ')})`);
  }
  // An option the table says applies to some models only (strictly: accept), set to something else than its default under another model.
  for (const [name, spec] of Object.entries(OPTIONS) as Array<[string, OptionSpec]>) {
    const value = (o as Record<string, unknown>)[name];
    if (spec.models === undefined || !spec.strictModels || value === undefined || value === spec.default || spec.models.includes(model)) continue;
    throw new InvalidOptionError(name, `applies to the ${spec.models.join(' and ')} model${spec.models.length > 1 ? 's' : ''}, not ${model}`);
  }
  const proxyTimeout = checkNumber('proxyTimeout', o.proxyTimeout);
  const proxyProtocol = o.proxyProtocol ?? OPTIONS.proxyProtocol.default;
  const words = OPTIONS.proxyProtocol.words;
  if (![true, false, ...words].includes(proxyProtocol)) {
    throw new InvalidOptionError('proxyProtocol', `must be true, false, ${words.map((w) => JSON.stringify(w)).join(' or ')}, got ${JSON.stringify(o.proxyProtocol)}`);
  }
  const proxy: ProxyGateOptions | undefined = proxyProtocol
    ? {
        versions: proxyProtocol === 'v1' ? [1] : proxyProtocol === 'v2' ? [2] : [1, 2],
        timeoutMs: toTimerMs(proxyTimeout),
        v2Limit: checkNumber('proxyV2Limit', o.proxyV2Limit),
        ...proxyTrustOptions(o),
      }
    : undefined;
  if (!proxy && (o.proxyFrom !== undefined || o.proxyUntrusted !== undefined)) {
    throw new InvalidOptionError(o.proxyFrom !== undefined ? 'proxyFrom' : 'proxyUntrusted', 'needs proxyProtocol');
  }
  return {
    tls: resolveTls(o),
    proxy,
    unix: o.path === undefined ? undefined : { path: checkUnixPath(o.path, 'path'), mode: parseUnixMode(o.unixMode), ...unixOwner(o.unixOwner) },
    host: checkHost(o.host ?? OPTIONS.host.default, 'host'),
    port: checkNumber('port', o.port),
    backlog: checkNumber('backlog', o.backlog),
    fd: checkNumber('fd', o.fd),
    model,
    service: validateServiceSpec(o.service ?? OPTIONS.service.default),
    maxConns: checkNumber('maxConns', o.maxConns),
    grace: checkNumber('grace', o.grace),
    access: new AccessRules(o.access ?? []),
    perSource: checkNumber('perSource', o.perSource),
    rate: checkNumber('rate', o.rate),
    limits: { idleMs: toTimerMs(checkNumber('idleTimeout', o.idleTimeout)), maxMs: toTimerMs(checkNumber('timeLimit', o.timeLimit)) },
    modelOptions: {
      workers: checkNumber('workers', o.workers),
      spare: checkNumber('spare', o.spare),
      accept: checkChoice('accept', o.accept, ACCEPT_MODES) ?? OPTIONS.accept.default,
      maxConnsPerWorker: checkNumber('maxConnsPerWorker', o.maxConnsPerWorker),
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
  #startedAt = Date.now();
  #closing: Promise<void> | undefined;
  #given: Listener | undefined;
  /** Identifies, admits and counts every connection; see ./connection/pipeline.ts. */
  readonly #pipeline: ConnectionPipeline;
  /** The service's connection budget (its --max-conns and per-source limits), shared by every Server of the service. */
  readonly #budget: ServiceBudget;
  readonly #member: BudgetMember;
  #handingOver = false;
  /** Refused PROXY headers as log lines (rate-limited where the peer is unknown); closed with the server. */
  readonly #proxyRefusals = new ProxyRefusals((e) => this.#emit(e));
  /** What the TLS files held when last read (listen, reloadTls); undefined without TLS. */
  #tlsMaterial: TlsMaterial | undefined;
  /** The handshakes of connections this process accepts (models that accept in the server). */
  #tlsGate: TlsGate | undefined;

  constructor(options: ServerOptions = {}) {
    super();
    this.options = resolveOptions(options);
    const o = this.options;
    this.#budget = options.budget ?? new ServiceBudget({ maxConns: o.maxConns, perSource: o.perSource, rate: o.rate });
    this.#pipeline = new ConnectionPipeline(
      { access: o.access, budget: this.#budget },
      {
        emit: (event) => this.emit('event', event),
        pause: () => this.#state === 'running' && (this.#model?.pauseAccept(), true),
        resume: () => this.#state === 'running' && (this.#model?.resumeAccept(), true),
      },
    );
    this.#member = this.#pipeline;
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

  /**
   * What listen() refuses about the service that the constructor cannot see, found
   * without binding anything: a handler module that cannot be loaded or exports no
   * function, and `spare` children for a service that runs a program per connection
   * (its module exports `program`: a capability, whatever the service's name).
   * `tcpkit check` runs it, and listen() runs it before starting the model. Loads the
   * handler module (its top-level code runs, as under serve).
   */
  async check(): Promise<void> {
    const o = this.options;
    if (o.service.handler) await loadService(o.service);
    const spares = (OPTIONS.spare.models as readonly string[]).includes(o.model) && (o.modelOptions.spare ?? OPTIONS.spare.default) > 0;
    if (spares && (await programOf(o.service)) !== undefined) {
      throw spareWithProgram(o.service.name);
    }
  }

  /**
   * Bind (or adopt the given listener), start the model, and resolve with the bound
   * address. `beforeServe` runs once the socket is bound and before anything that
   * serves a client (workers, spare children, threads) starts: the place to drop
   * privileges, so that all of them run as the target user. If it throws, the
   * socket is closed and listen() rejects with its error.
   */
  async listen({ beforeServe }: { beforeServe?: () => void | Promise<void> } = {}): Promise<Endpoint> {
    if (this.#state !== 'idle') throw new StateError(`listen: server is ${this.#state}`);
    this.#state = 'running';
    const o = this.options;
    try {
      if (this.#given) {
        this.#listener = this.#given;
        this.#ownsListener = false;
      } else {
        this.#listener = await Listener.open({ host: o.host, port: o.port, backlog: o.backlog, fd: o.fd, ...(o.unix && { path: o.unix.path, mode: o.unix.mode, uid: o.unix.uid, gid: o.unix.gid }) });
      }
      this.#listener.onError((e) => {
        const suppressed = e.suppressed === undefined ? {} : { suppressed: e.suppressed };
        this.#emit({ type: 'error', where: 'accept', code: e.code ?? 'EIO', ...suppressed, message: e.message });
      });
      // Keys are read now, before privileges are dropped (a key only root may read works with --user).
      this.readTls();
      await beforeServe?.();
      // After the drop: a handler module is user code, loaded as the user that serves.
      await this.check();
      if (o.proxy) this.#listener.acceptProxyProtocol(o.proxy, (err, real) => this.#proxyRefusals.refuse(err, real));
      const factory = await loadModel(o.model);
      const pipeline = this.#pipeline;
      const model = factory({
        listener: this.#listener,
        service: o.service,
        options: o.modelOptions,
        maxConns: this.#budget.maxConns,
        limits: o.limits,
        proxy: o.proxy,
        sources: this.#budget.sources,
        access: o.access.specs,
        tls: o.tls && { settings: o.tls, material: () => this.#tlsMaterial! },
        adopt: (info, env) => pipeline.adopt(info, env),
        emit: (event) => pipeline.emit(event),
      });
      this.#model = model;
      // The one connection path: listener → pipeline (identify, admit) → model. Wired before
      // start() but paused: a model may resume accepting once part of it is ready (the pool's
      // first worker), and nothing accepted may reach the Acceptor's default (destroy).
      const listener = this.#listener;
      if (model.accepts === 'server') {
        listener.pause();
        // Bound to one address: every connection's local end is known (no getsockname per connection).
        const local = acceptedLocal(listener.endpoint);
        if (o.tls) {
          // TLS: PROXY header (the gate before this), then the handshake, then admission with what it established.
          // Served here (event, iterative) a service gets the TLSSocket; another process or a program gets
          // plaintext through a relay (tls/relay.ts).
          const here = (o.model === 'event' || o.model === 'iterative') && (await programOf(o.service)) === undefined;
          const gate = new TlsGate(o.tls, this.#tlsMaterial!, {
            refuse: (e) => this.#emit(e),
            pass: (secure, info) => {
              const conn = pipeline.admit(info);
              if (!conn) {
                secure.destroy();
                return;
              }
              let socket;
              try {
                socket = here ? secure : relayThroughPair(secure);
              } catch (err) {
                secure.destroy();
                conn.failed((err as NodeJS.ErrnoException).code ?? 'EIO', (err as Error).message);
                conn.closed();
                return;
              }
              model.dispatch(Object.assign(conn, { socket }));
            },
          });
          this.#tlsGate = gate;
          listener.onConnection((socket, announced) => {
            const info = identify(socket, local, announced);
            if (!info) socket.destroy();
            else gate.take(socket, info);
          });
        } else {
          listener.onConnection((socket, announced) => {
            const conn = pipeline.take(socket, local, announced);
            if (conn) model.dispatch(conn);
          });
        }
      }
      await model.start();
      // Which path the connections take (net/fast-path.ts, the one place that decides): a program
      // per connection started from here takes them as bare descriptors, admitted the same way; a
      // service read here in JavaScript (event, iterative; not a program) takes sockets made on
      // natively accepted descriptors, each with its peer from the accept (no getpeername), into the
      // same onConnection path.
      if (model.accepts === 'server') {
        const readHere = (o.model === 'event' || o.model === 'iterative') && (await programOf(o.service)) === undefined;
        const path = acceptPath({ listener: listener.endpoint.family === 'unix' ? 'unix' : 'tcp', tls: o.tls !== undefined, proxy: o.proxy !== undefined, descriptors: model.servesDescriptors?.() ?? false, sockets: readHere, wrapsSockets: canWrapAccepted() });
        const local = acceptedLocal(listener.endpoint);
        if (path === 'native') {
          listener.onRecords((record) => {
            const conn = pipeline.admit(recordInfo(record, local));
            if (conn) model.serveDescriptor!(conn, record.fd);
            else fdutil.close(record.fd);
          }, local === undefined, NATIVE_PATH_DESCRIPTORS, local);
        } else if (path === 'native-socket') listener.onNativeSockets(local, ServedSocket);
      }
      // Paused at once if the service is already at its limit (another address of it holds the connections).
      this.#budget.join(this.#member);
      if (model.accepts === 'server' && !pipeline.paused) listener.resume();
    } catch (err) {
      this.#state = 'closed';
      this.#model?.destroy();
      if (this.#ownsListener) this.#listener?.close();
      throw err;
    }
    const local = this.#listener.endpoint;
    this.#emit({ type: 'listen', local, model: o.model, service: o.service.name, pid: process.pid, max: this.#budget.maxConns });
    return local;
  }

  #emit(event: ServerEvent): void {
    this.#pipeline.emit(event);
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
    this.#budget.leave(this.#member);
    const grace = options.grace === undefined ? this.options.grace : checkNumber('grace', options.grace);
    const listener = this.#listener;
    if (this.#ownsListener) listener?.close();
    else listener?.pause();
    // Logged once the socket is closed: a reader of the log who then connects is refused, never reset.
    this.#emit({ type: 'shutdown', signal: options.signal ?? 'close', active: this.#pipeline.active, grace });
    // A connection still sending its PROXY header was accepted: let it reach the model
    // (bounded by the header timeout) before the model drains.
    const settled = (listener ? listener.settled() : Promise.resolve()).then(() => this.#tlsGate?.settled());
    this.#closing = settled.then(() => (this.#model ? this.#model.close(toTimerMs(grace)) : undefined)).then(() => {
      this.#proxyRefusals.close();
      this.#tlsGate?.destroy();
      this.#state = 'closed';
      this.#emit({ type: 'closed', accepted: this.#pipeline.accepted, served: this.#pipeline.ended });
    });
    return this.#closing;
  }

  /**
   * Zero-downtime restart (src/net/restart.ts): start a successor process on this
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
    // The successor serves on the same socket file (a UNIX path) and removes it when it stops.
    listener.keepFile();
    await this.close({ signal: 'restart' });
    return pid;
  }

  /** Forceful close: kill every connection, process and thread now. Idempotent. */
  destroy(): Promise<void> {
    const closing = this.close({ grace: 0 });
    this.#listener?.abortPending();
    this.#tlsGate?.destroy();
    this.#model?.destroy();
    return closing;
  }

  /** A plain snapshot of counters, connections and the model's processes. */
  stats(): ServerStats {
    const l = this.#listener;
    const { denied, limits, ...counters } = this.#pipeline.stats();
    return {
      state: this.#state,
      pid: process.pid,
      local: l?.endpoint,
      listener: l?.state ?? 'closed',
      model: this.options.model,
      service: this.options.service.name,
      maxConns: this.#budget.maxConns,
      ...counters,
      startedAt: this.#startedAt,
      models: this.#model?.stats(),
      denied,
      limits,
      ...(this.options.tls && { tls: this.#tlsStats() }),
    };
  }

  #tlsStats(): TlsStats {
    const own = this.#tlsGate?.stats();
    const workers = this.#model?.tlsStats?.();
    if (own && workers) return addTlsStats(own, workers);
    return own ?? workers ?? emptyTlsStats();
  }

  /**
   * Read the TLS certificates and keys now, if not read yet (listen() does, before its
   * `beforeServe`; a supervisor that drops privileges before listen() calls it first).
   * Throws InvalidOptionError naming the file. A no-op without TLS.
   */
  readTls(): void {
    if (this.options.tls && !this.#tlsMaterial) this.#tlsMaterial = loadTlsMaterial(this.options.tls);
  }

  /**
   * Read the TLS certificates and keys again (SIGHUP): connections accepted from now on
   * get the new ones (here and in every worker), open ones keep theirs. A file that
   * cannot be read or a pair that does not match throws, and the old ones stay.
   * Logs `reload ok ...` or `reload failed message "TLS: ..."`. A no-op without TLS.
   */
  reloadTls(): void {
    const settings = this.options.tls;
    if (!settings || this.#state !== 'running') return;
    try {
      const material = loadTlsMaterial(settings, this.#tlsMaterial?.ticketSeed);
      this.#tlsGate?.replace(material);
      this.#tlsMaterial = material;
      this.#model?.tlsReload?.();
      this.#emit({ type: 'reload', ok: true, kept: 1, started: 0, stopped: 0, message: 'TLS certificates and keys read again' });
    } catch (err) {
      this.#emit({ type: 'reload', ok: false, kept: 1, started: 0, stopped: 0, message: `TLS: ${(err as Error).message}; the certificates in use stay` });
      throw err;
    }
  }
}

/** Create a server (not yet listening; call `listen()`). */
export function createServer(options: ServerOptions = {}): Server {
  return new Server(options);
}
