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
 *   connection {info, env} + the socket (pass)    ready                  service loaded, accepting
 *   admit {ref, id, env}   serve it (shared,      accepted {ref, info}   took a connection (shared, admission
 *                          admission server)                             server), holds it unread
 *   refuse {ref}           close it (idem)        batch {entries}        accepts, ends, denials (admission local)
 *   ids {from, count}      a block of ids         need-ids               half its ids are used (admission local)
 *                          (admission local)      closed {id}            a connection ended (admission server, pass)
 *   pause                  stop accepting         log {id, reason, code} the service's ctx.log
 *   resume                 accept again           failed {id, code, message} the service threw
 *   drain                  stop accepting, exit   fatal {code, message}  cannot start (bad handler, ...)
 *                          when idle              drained                idle after drain, about to exit
 *                                                 event {event}          log it as it is (a refused PROXY header)
 *
 * Shared mode admits in one of two ways (the spec's `admission`):
 *   local   nothing configured needs state shared across workers (no --per-source,
 *           no --rate): the worker applies the access rules itself (the same
 *           AccessRules, from the spec), keeps to its share of --max-conns, numbers
 *           the connection from its blocks of ids, serves it, and reports the accept
 *           and the end later in a `batch` (./reports.ts). No message per connection.
 *   server  --per-source or --rate: the worker numbers the connection itself (`ref`)
 *           and asks the server, which applies its access rules and per-source limits
 *           where every connection is counted, and answers `admit` with the
 *           connection's id or `refuse`; the end comes back in `closed` at once, so
 *           a source's place is free again as soon as it can be.
 * From then on, and in pass mode from the start, a connection is named by the
 * server's id. Messages from a worker keep their order: a `log` or `failed` about a
 * connection comes after the batch that reported its accept.
 */
import type { ConnectionInfo, Endpoint } from '../address.js';
import type { ServerEvent } from '../events.js';
import type { ProxyGateOptions } from '../net/proxy-gate.js';
import type { ConnectionLimits } from '../admission/limits.js';
import type { AccessRuleSpec } from '../admission/access.js';
import type { ServiceSpec } from '../services/types.js';

/** What the server sends a worker. */
export type ToWorker =
  | { type: 'connection'; info: ConnectionInfo; env: Readonly<Record<string, string>> }
  | { type: 'admit'; ref: number; id: number; env: Readonly<Record<string, string>> }
  | { type: 'refuse'; ref: number }
  /** A block of connection ids, `from` to `from + count - 1` (admission local). */
  | { type: 'ids'; from: number; count: number }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'drain' };

/** What a worker sends the server. */
export type FromWorker =
  /** `room`: descriptors the worker can still take (pass mode sends no more at once); absent when unlimited. */
  | { type: 'ready'; room?: number }
  | { type: 'accepted'; ref: number; info: ConnectionInfo }
  | { type: 'batch'; entries: BatchEntry[] }
  | { type: 'need-ids' }
  | { type: 'closed'; id: number }
  | { type: 'log'; id: number; reason: string; code: string }
  | { type: 'failed'; id: number; code: string; message: string }
  | { type: 'fatal'; code: string; message: string }
  | { type: 'drained' }
  /** An event to log as it is (a connection whose PROXY header was refused). */
  | { type: 'event'; event: ServerEvent };

/**
 * What a worker admitting locally reports in a `batch`, in the order it happened:
 * `open` a connection it serves (its `info.id` from the worker's blocks), `end` one
 * that ended (`at`: when, so the `end` line's duration is the worker's), `deny` a
 * peer its access rules closed.
 */
export type BatchEntry =
  | { k: 'open'; info: ConnectionInfo }
  | { k: 'end'; id: number; at: number }
  | { k: 'deny'; remote: Endpoint; local: Endpoint; rule: string };

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
  /**
   * shared: `local`, the worker admits by itself and reports in batches (needs `ids`);
   * `server`, it asks the server for each connection (--per-source or --rate need
   * counts across workers). Default `server`.
   */
  admission?: 'local' | 'server';
  /** admission local: the access rules, checked in the worker as the server would. Default none. */
  access?: AccessRuleSpec[];
  /** admission local: the first block of connection ids. */
  ids?: { from: number; count: number };
  /** shared: at most this many connections at once in this worker (its share of --max-conns). */
  limit: number;
  /** Stop accepting after this many connections (--max-conns-per-worker); 0 = never. */
  maxConns: number;
  /** Idle and time limits enforced on each connection in the worker. */
  limits: ConnectionLimits;
  /** shared: read a PROXY protocol header off each accepted connection first. Default: none expected. */
  proxy?: ProxyGateOptions;
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
  if (o.family !== 'IPv4' && o.family !== 'IPv6') throw new SpecError(`${at}.family: expected IPv4 or IPv6, got ${JSON.stringify(o.family)}`);
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

function worker(v: unknown, at: string): WorkerSpec {
  const o = object(v, at);
  service(o.service, `${at}.service`);
  if (o.mode !== 'shared' && o.mode !== 'pass') throw new SpecError(`${at}.mode: expected shared or pass, got ${JSON.stringify(o.mode)}`);
  optional(o, 'fd', at, int);
  optional(o, 'backlog', at, (x, a) => int(x, a, 1));
  optional(o, 'ownsFd', at, (x, a) => {
    if (typeof x !== 'boolean') throw new SpecError(`${a}: expected true or false, got ${JSON.stringify(x)}`);
  });
  const admission = o.admission;
  if (admission !== undefined && admission !== 'local' && admission !== 'server') {
    throw new SpecError(`${at}.admission: expected local or server, got ${JSON.stringify(admission)}`);
  }
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
  if (admission === 'local' && !ids) throw new SpecError(`${at}.ids: expected a block of ids with admission local, got undefined`);
  int(o.limit, `${at}.limit`);
  int(o.maxConns, `${at}.maxConns`);
  const limits = object(o.limits, `${at}.limits`);
  int(limits.idleMs, `${at}.limits.idleMs`);
  int(limits.maxMs, `${at}.limits.maxMs`);
  const proxy = optional(o, 'proxy', at, object);
  if (proxy && !(Array.isArray(proxy.versions) && proxy.versions.every((x) => x === 1 || x === 2))) {
    throw new SpecError(`${at}.proxy.versions: expected [1], [2] or [1, 2], got ${JSON.stringify(proxy.versions)}`);
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
