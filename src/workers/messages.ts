/**
 * The one protocol between the server and everything it runs in another process or
 * thread: what each is started with (a spec: TCPKIT_WORKER, TCPKIT_CHILD or
 * TCPKIT_SPARE in the environment, or workerData) and the messages they exchange.
 * Plain data only. A spec is decoded and checked (decodeSpec) before use: a program
 * started by hand, or by another version of tcpkit, fails with a message naming the
 * field, never with a TypeError halfway through.
 *
 * Pool workers, prefork's processes (over the IPC channel) and the threads model's
 * threads (over the MessagePort): one discriminated union each way.
 *
 *   server → worker                               worker → server
 *   ───────────────                               ───────────────
 *   connection {info, env} + the socket (pass)    ready {room?}          service loaded, accepting
 *   ids {from, count}      a block of ids         batch {entries}        accepts, ends, refusals (shared)
 *                          (shared)               need-ids               half its ids are used (shared)
 *   pause                  stop accepting         closed {id}            a connection ended (pass)
 *   resume                 accept again           log {id, reason, code} the service's ctx.log
 *   tls {material}         TLS certificates and   tls-stats {stats}      its handshake counters (at most
 *                          keys (shared, at start                        once a second, when they changed)
 *                          and after SIGHUP)
 *   drain                  stop accepting, exit   failed {id, code, message} the service threw
 *                          when idle              fatal {code, message}  cannot start (bad handler, ...)
 *                                                 drained                idle after drain, about to exit
 *                                                 event {event}          log it as it is (accept errors,
 *                                                                        a refused PROXY header)
 *
 * Shared mode: the worker admits each connection itself, with the admission unit the
 * server runs (../admission/admission.ts): the access rules from the spec, the
 * service's per-source table and the pool's ledger in shared memory (the spec's
 * `counts`), ids from its blocks; it serves the connection and reports the accept and
 * the end later in a `batch` (./reports.ts). No message per connection. Pass mode:
 * the server admits, the connection is named by the server's id from the start. Messages
 * from a worker keep their order: a `log` or `failed` about a connection comes after
 * the batch that reported its accept.
 *
 * Both directions are decoded and checked (decodeToWorker, decodeFromWorker) before
 * use, as specs are: a message that is not one of these is dropped with its reason,
 * never acted on halfway.
 */
import type { ConnectionInfo, Endpoint } from '../address.js';
import type { ServerEvent } from '../events.js';
import type { ProxyGateOptions } from '../net/proxy-gate.js';
import type { ConnectionLimits } from '../admission/limits.js';
import type { AccessRuleSpec } from '../admission/access.js';
import type { ServiceSpec } from '../services/types.js';
import type { SegmentRef } from '../admission/source-table.js';
import type { TlsStats } from '../tls/gate.js';
import type { TlsMaterial, TlsSettings } from '../tls/settings.js';

/** What the server sends a worker. */
export type ToWorker =
  | { type: 'connection'; info: ConnectionInfo; env: Readonly<Record<string, string>> }
  /** A block of connection ids, `from` to `from + count - 1` (shared mode). */
  | { type: 'ids'; from: number; count: number }
  | { type: 'pause' }
  | { type: 'resume' }
  /** TLS material (the private keys: in a message, never in the spec, which a prefork worker has in its environment). */
  | { type: 'tls'; material: TlsMaterial }
  | { type: 'drain' };

/** What a worker sends the server. */
export type FromWorker =
  /** `room`: descriptors the worker can still take (pass mode sends no more at once); absent when unlimited. */
  | { type: 'ready'; room?: number }
  | { type: 'batch'; entries: BatchEntry[] }
  | { type: 'need-ids' }
  | { type: 'closed'; id: number }
  | { type: 'log'; id: number; reason: string; code: string }
  | { type: 'failed'; id: number; code: string; message: string }
  | { type: 'fatal'; code: string; message: string }
  | { type: 'drained' }
  /** The worker's TLS counters since it started (the server keeps the latest of each worker). */
  | { type: 'tls-stats'; stats: TlsStats }
  /** An event to log as it is: an accept error, a refused PROXY header. */
  | { type: 'event'; event: WorkerEvent };

/** The events a worker sends as they are. */
export type WorkerEvent = Extract<ServerEvent, { type: 'error' | 'refuse' | 'deny' }>;

/**
 * What a worker in shared mode reports in a `batch`, in the order it happened:
 * `open` a connection it serves (its `info.id` from the worker's blocks), `end` one
 * that ended (`at`: when, so the `end` line's duration is the worker's), `refused` a
 * connection admission closed (its `deny` or `refuse` event).
 */
export type BatchEntry =
  | { k: 'open'; info: ConnectionInfo }
  | { k: 'end'; id: number; at: number }
  | { k: 'refused'; event: Extract<ServerEvent, { type: 'deny' | 'refuse' }> };

/** Where a worker finds the counts it shares (shared mode): see ../admission/source-table.ts and ../net/shared-counts.ts. */
export interface SharedCountsSpec {
  /** The service's per-source table. */
  table: SegmentRef;
  /** The pool's ledger, and this worker's slot in it. */
  ledger: SegmentRef;
  slot: number;
  /** The service's limits on the table (0: none). */
  perSource: number;
  rate: number;
}

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
  /** shared: the access rules, checked in the worker as the server would. Default none. */
  access?: AccessRuleSpec[];
  /** shared: the first block of connection ids. */
  ids?: { from: number; count: number };
  /** shared: the shared counts (descriptors: the server's for a thread, the stdio slots for a process). */
  counts?: SharedCountsSpec;
  /** shared: at most this many connections at once in this worker (its share of --max-conns). */
  limit: number;
  /** Stop accepting after this many connections (--max-conns-per-worker); 0 = never. */
  maxConns: number;
  /** Idle and time limits enforced on each connection in the worker. */
  limits: ConnectionLimits;
  /** shared: read a PROXY protocol header off each accepted connection first. Default: none expected. */
  proxy?: ProxyGateOptions;
  /** shared: terminate TLS with these settings; accept only once a `tls` message brought the material. Default off. */
  tls?: TlsSettings;
}

/** The fork model's child: one service, one connection (TCPKIT_CHILD). */
export interface ChildSpec {
  service: ServiceSpec;
  info: ConnectionInfo;
}

/** What a fork spare child (--spare) is started with (TCPKIT_SPARE). */
export interface SpareSpec {
  service: ServiceSpec;
}

/**
 * The fork model's spare child, over its IPC channel: it reports `ready` once its
 * service is loaded; the server then sends it one `connection` with the connected
 * socket attached, and the spare serves it and exits.
 */
export type SpareMessage = { type: 'ready' } | { type: 'connection'; info: ConnectionInfo };

/** A prefork worker's stdio slots in shared mode: the listening socket, the per-source table, the ledger. */
export const WORKER_SLOTS = { listen: 4, table: 5, ledger: 6 } as const;

/** The environment variable each kind of spec comes in. */
export const SPEC_VARIABLES = { worker: 'TCPKIT_WORKER', child: 'TCPKIT_CHILD', spare: 'TCPKIT_SPARE' } as const;

/** A spec that is missing or not what tcpkit sends. Its message names the variable and the field. */
export class SpecError extends Error {
  readonly code = 'TCPKIT_SPEC';
}

type Obj = Record<string, unknown>;

function object(v: unknown, at: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SpecError(`${at}: expected an object, got ${JSON.stringify(v)}`);
  return v as Obj;
}

function int(v: unknown, at: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new SpecError(`${at}: expected an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function optional<T>(o: Obj, key: string, at: string, check: (v: unknown, at: string) => T): T | undefined {
  return o[key] === undefined ? undefined : check(o[key], `${at}.${key}`);
}

function string(v: unknown, at: string): string {
  if (typeof v !== 'string') throw new SpecError(`${at}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}

function endpoint(v: unknown, at: string): Endpoint {
  const o = object(v, at);
  string(o.address, `${at}.address`);
  if (int(o.port, `${at}.port`) > 65535) throw new SpecError(`${at}.port: expected a port, got ${o.port}`);
  if (o.family !== 'IPv4' && o.family !== 'IPv6' && o.family !== 'unix') throw new SpecError(`${at}.family: expected IPv4, IPv6 or unix, got ${JSON.stringify(o.family)}`);
  // A UNIX peer's credentials (SO_PEERCRED).
  for (const key of ['pid', 'uid', 'gid'] as const) optional(o, key, at, int);
  return o as unknown as Endpoint;
}

function service(v: unknown, at: string): ServiceSpec {
  const o = object(v, at);
  string(o.name, `${at}.name`);
  optional(o, 'handler', at, string);
  optional(o, 'options', at, object);
  return o as unknown as ServiceSpec;
}

function info(v: unknown, at: string): ConnectionInfo {
  const o = object(v, at);
  int(o.id, `${at}.id`);
  endpoint(o.local, `${at}.local`);
  endpoint(o.remote, `${at}.remote`);
  if (typeof o.acceptedAt !== 'number') throw new SpecError(`${at}.acceptedAt: expected a number, got ${JSON.stringify(o.acceptedAt)}`);
  const via = optional(o, 'via', at, object);
  if (via) {
    endpoint(via.local, `${at}.via.local`);
    endpoint(via.remote, `${at}.via.remote`);
  }
  return o as unknown as ConnectionInfo;
}

function segment(v: unknown, at: string): SegmentRef {
  const o = object(v, at);
  int(o.fd, `${at}.fd`);
  int(o.size, `${at}.size`, 1);
  optional(o, 'cells', at, int);
  return o as unknown as SegmentRef;
}

function worker(v: unknown, at: string): WorkerSpec {
  const o = object(v, at);
  service(o.service, `${at}.service`);
  if (o.mode !== 'shared' && o.mode !== 'pass') throw new SpecError(`${at}.mode: expected shared or pass, got ${JSON.stringify(o.mode)}`);
  optional(o, 'fd', at, int);
  optional(o, 'backlog', at, (x, a) => int(x, a, 1));
  optional(o, 'ownsFd', at, (x, a) => {
    if (typeof x !== 'boolean') throw new SpecError(`${a}: expected true or false, got ${JSON.stringify(x)}`);
  });
  const access = o.access;
  if (access !== undefined) {
    if (!Array.isArray(access)) throw new SpecError(`${at}.access: expected an array, got ${JSON.stringify(access)}`);
    access.forEach((r: unknown, i) => {
      const rule = object(r, `${at}.access[${i}]`);
      if (rule.action !== 'allow' && rule.action !== 'deny') throw new SpecError(`${at}.access[${i}].action: expected allow or deny, got ${JSON.stringify(rule.action)}`);
      string(rule.from, `${at}.access[${i}].from`);
      const env = optional(rule, 'env', `${at}.access[${i}]`, object);
      for (const [k, v] of Object.entries(env ?? {})) string(v, `${at}.access[${i}].env.${k}`);
    });
  }
  const ids = optional(o, 'ids', at, object);
  if (ids) {
    int(ids.from, `${at}.ids.from`, 1);
    int(ids.count, `${at}.ids.count`, 1);
  }
  const counts = optional(o, 'counts', at, object);
  if (counts) {
    segment(counts.table, `${at}.counts.table`);
    segment(counts.ledger, `${at}.counts.ledger`);
    int(counts.slot, `${at}.counts.slot`);
    int(counts.perSource, `${at}.counts.perSource`);
    int(counts.rate, `${at}.counts.rate`);
  }
  if (o.mode === 'shared' && (!ids || !counts)) throw new SpecError(`${at}: shared mode needs ids and counts, got ${ids ? 'ids' : 'no ids'} and ${counts ? 'counts' : 'no counts'}`);
  int(o.limit, `${at}.limit`);
  int(o.maxConns, `${at}.maxConns`);
  const limits = object(o.limits, `${at}.limits`);
  int(limits.idleMs, `${at}.limits.idleMs`);
  int(limits.maxMs, `${at}.limits.maxMs`);
  const proxy = optional(o, 'proxy', at, object);
  if (proxy && !(Array.isArray(proxy.versions) && proxy.versions.every((x) => x === 1 || x === 2))) {
    throw new SpecError(`${at}.proxy.versions: expected [1], [2] or [1, 2], got ${JSON.stringify(proxy.versions)}`);
  }
  const tls = optional(o, 'tls', at, object);
  if (tls) {
    string(tls.cert, `${at}.tls.cert`);
    int(tls.handshakeMs, `${at}.tls.handshakeMs`, 1);
    int(tls.maxPending, `${at}.tls.maxPending`, 1);
    int(tls.maxPendingPerSource, `${at}.tls.maxPendingPerSource`, 1);
    int(tls.ticketRotateMs, `${at}.tls.ticketRotateMs`);
    oneOf(tls.client, `${at}.tls.client`, ['none', 'request', 'require'] as const);
  }
  return o as unknown as WorkerSpec;
}

const decoders = {
  worker,
  child: (v: unknown, at: string): ChildSpec => {
    const o = object(v, at);
    service(o.service, `${at}.service`);
    info(o.info, `${at}.info`);
    return o as unknown as ChildSpec;
  },
  spare: (v: unknown, at: string): SpareSpec => {
    service(object(v, at).service, `${at}.service`);
    return v as SpareSpec;
  },
};

type Specs = { worker: WorkerSpec; child: ChildSpec; spare: SpareSpec };

/**
 * Decode and check a spec: `text` (JSON, as the environment carries it) or an
 * already-parsed value (workerData). Throws SpecError: `TCPKIT_WORKER is not set`,
 * `TCPKIT_CHILD is not JSON`, `TCPKIT_WORKER.limit: expected an integer >= 0, got "x"`.
 */
export function decodeSpec<K extends keyof Specs>(kind: K, value: string | undefined | unknown): Specs[K] {
  const name = SPEC_VARIABLES[kind];
  if (value === undefined) throw new SpecError(`${name} is not set`);
  let parsed: unknown = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch {
      throw new SpecError(`${name} is not JSON`);
    }
  }
  return decoders[kind](parsed, name) as Specs[K];
}

/**
 * An entry point's spec from its environment variable, which is removed (a service's
 * program must not see it). On a bad or missing spec: the message on stderr, exit 100
 * (usage), as for any program started the wrong way.
 */
export function specFromEnv<K extends keyof Specs>(kind: K, program: string): Specs[K] {
  const name = SPEC_VARIABLES[kind];
  const text = process.env[name];
  delete process.env[name];
  try {
    return decodeSpec(kind, text);
  } catch (err) {
    process.stderr.write(`${program}: ${(err as Error).message}; this program is started by tcpkit serve\n`);
    process.exit(100);
  }
}

function env(v: unknown, at: string): Readonly<Record<string, string>> {
  const o = object(v, at);
  for (const [k, x] of Object.entries(o)) string(x, `${at}.${k}`);
  return o as Record<string, string>;
}

function oneOf<T extends string>(v: unknown, at: string, values: readonly T[]): T {
  if (!values.includes(v as T)) throw new SpecError(`${at}: expected ${values.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

function event(v: unknown, at: string): WorkerEvent {
  const o = object(v, at);
  const type = oneOf(o.type, `${at}.type`, ['error', 'refuse', 'deny'] as const);
  if (type === 'error') {
    string(o.where, `${at}.where`);
    string(o.code, `${at}.code`);
    string(o.message, `${at}.message`);
    optional(o, 'suppressed', at, int);
    optional(o, 'id', at, int);
    optional(o, 'pid', at, int);
  } else {
    endpoint(o.remote, `${at}.remote`);
    endpoint(o.local, `${at}.local`);
    string(o.reason, `${at}.reason`);
    optional(o, 'rule', at, string);
    optional(o, 'message', at, string);
  }
  return o as unknown as WorkerEvent;
}

function entry(v: unknown, at: string): BatchEntry {
  const o = object(v, at);
  switch (oneOf(o.k, `${at}.k`, ['open', 'end', 'refused'] as const)) {
    case 'open':
      info(o.info, `${at}.info`);
      break;
    case 'end':
      int(o.id, `${at}.id`);
      if (typeof o.at !== 'number') throw new SpecError(`${at}.at: expected a number, got ${JSON.stringify(o.at)}`);
      break;
    case 'refused':
      if (event(o.event, `${at}.event`).type === 'error') throw new SpecError(`${at}.event.type: expected refuse or deny, got "error"`);
      break;
  }
  return o as unknown as BatchEntry;
}

/**
 * Check a message from the server, as a worker receives it; throws SpecError naming the
 * field (`message to worker.info.remote.port: expected an integer >= 0, got "x"`).
 */
export function decodeToWorker(v: unknown): ToWorker {
  const at = 'message to worker';
  const o = object(v, at);
  switch (oneOf(o.type, `${at}.type`, ['connection', 'ids', 'pause', 'resume', 'tls', 'drain'] as const)) {
    case 'tls': {
      const m = object(o.material, `${at}.material`);
      const main = object(m.main, `${at}.material.main`);
      string(main.cert, `${at}.material.main.cert`);
      string(main.key, `${at}.material.main.key`);
      string(m.ticketSeed, `${at}.material.ticketSeed`);
      if (!Array.isArray(m.sni)) throw new SpecError(`${at}.material.sni: expected an array, got ${JSON.stringify(m.sni)}`);
      break;
    }
    case 'connection':
      info(o.info, `${at}.info`);
      env(o.env, `${at}.env`);
      break;
    case 'ids':
      int(o.from, `${at}.from`, 1);
      int(o.count, `${at}.count`, 1);
      break;
    default:
      break;
  }
  return o as unknown as ToWorker;
}

/** Check a message from a worker, as the server receives it; throws SpecError naming the field. */
export function decodeFromWorker(v: unknown): FromWorker {
  const at = 'message from worker';
  const o = object(v, at);
  switch (oneOf(o.type, `${at}.type`, ['ready', 'batch', 'need-ids', 'closed', 'log', 'failed', 'fatal', 'drained', 'event', 'tls-stats'] as const)) {
    case 'tls-stats': {
      const st = object(o.stats, `${at}.stats`);
      int(st.handshakes, `${at}.stats.handshakes`);
      int(st.resumed, `${at}.stats.resumed`);
      int(st.pending, `${at}.stats.pending`);
      for (const k of ['failures', 'protocols', 'ciphers']) for (const [n, x] of Object.entries(object(st[k], `${at}.stats.${k}`))) int(x, `${at}.stats.${k}.${n}`);
      break;
    }
    case 'ready':
      optional(o, 'room', at, int);
      break;
    case 'batch':
      if (!Array.isArray(o.entries)) throw new SpecError(`${at}.entries: expected an array, got ${JSON.stringify(o.entries)}`);
      o.entries.forEach((e: unknown, i) => entry(e, `${at}.entries[${i}]`));
      break;
    case 'closed':
      int(o.id, `${at}.id`);
      break;
    case 'log':
      int(o.id, `${at}.id`);
      string(o.reason, `${at}.reason`);
      string(o.code, `${at}.code`);
      break;
    case 'failed':
      int(o.id, `${at}.id`);
      string(o.code, `${at}.code`);
      string(o.message, `${at}.message`);
      break;
    case 'fatal':
      string(o.code, `${at}.code`);
      string(o.message, `${at}.message`);
      break;
    case 'event':
      event(o.event, `${at}.event`);
      break;
    default:
      break;
  }
  return o as unknown as FromWorker;
}
