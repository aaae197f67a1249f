/**
 * The super-server: several services at once, one Server per (service, listen
 * address), from a Config; and reloads that keep listening sockets.
 *
 * For each listen address the supervisor holds the listening socket itself (a
 * paused Listener: the socket stays in LISTEN, nothing is accepted through it),
 * and gives each Server its own close-on-exec duplicate. So a Server can be
 * replaced without the socket ever closing:
 *
 *     reload ─► new Server on a new dup ─► both accept for a moment ─► old Server
 *               closes its dup and drains         (the socket never leaves LISTEN)
 *
 * A reload is all or nothing: new sockets are bound and new Servers started
 * first; if anything fails they are undone and the old configuration keeps
 * running. Only then are removed or changed services stopped (they stop
 * accepting at once and drain, for their `grace`), and sockets no service uses
 * any more closed.
 *
 * A service's limits (maxConns, perSource, rate) hold for the service as a whole:
 * its Servers, one per address, share one ServiceBudget, kept while the service's
 * definition is unchanged (a reload that only adds an address joins the same one).
 */
import { EventEmitter } from 'node:events';
import type { Endpoint } from '../address.js';
import type { Config, ListenAddress, ServiceConfig } from './config.js';
import { StateError } from '../errors.js';
import type { ServerEvent } from '../events.js';
import { ServiceBudget } from '../admission/budget.js';
import { Listener } from '../net/listener.js';
import { parseUnixMode } from '../options.js';
import { unixOwner } from './privileges.js';
import { createServer, type Server } from '../server.js';
import type { SupervisorStats } from '../status/source.js';

interface Entry {
  /** `SERVICE ADDRESS`, e.g. `echo 127.0.0.1:7`. */
  key: string;
  service: string;
  address: ListenAddress;
  fingerprint: string;
  server: Server;
}

/** What a reload did. */
export interface ReloadResult {
  kept: number;
  started: number;
  stopped: number;
}

/** One running (service, address) pair, for status views and `--print-port`. */
export interface Binding {
  service: string;
  listen: string;
  local: Endpoint | undefined;
}

/** Supervisor lifecycle states. */
export type SupervisorState = 'idle' | 'running' | 'closing' | 'closed';

/**
 * Which socket an address is: `host|port`; with port 0 (the kernel picks), each
 * service has its own socket, kept across reloads under the same service name.
 */
const socketKey = (service: string, a: ListenAddress) => (a.path !== undefined ? `unix|${a.path}` : a.port === 0 ? `${service}|${a.host}|0` : `${a.host}|${a.port}`);

/**
 * Runs the services of a Config. Emits `'event'` with every event of every
 * Server it runs, and `reload` events.
 */
export class Supervisor extends EventEmitter<{ event: [event: ServerEvent, service?: string] }> {
  readonly #startedAt = Date.now();
  #state: SupervisorState = 'idle';
  /** The listening sockets, by `host|port`. */
  readonly #sockets = new Map<string, Listener>();
  readonly #entries = new Map<string, Entry>();
  /** Servers stopped by a reload that are still draining. */
  readonly #draining = new Map<Server, Promise<void>>();
  #closing: Promise<void> | undefined;
  /** Each service's shared limits, with the fingerprint they were made for. */
  readonly #budgets = new Map<string, { fingerprint: string; budget: ServiceBudget }>();
  /** Reloads run one at a time, in order. */
  #queue: Promise<unknown> = Promise.resolve();

  get state(): SupervisorState {
    return this.#state;
  }

  /**
   * Bind every address and start every service. Rejects (and leaves nothing open) if
   * one fails. `beforeServe` runs once every address is bound and before any service
   * starts (the place to drop privileges: every worker and child then runs as the
   * target user).
   */
  async start(config: Config, { beforeServe }: { beforeServe?: () => void | Promise<void> } = {}): Promise<void> {
    if (this.#state !== 'idle') throw new StateError(`start: supervisor is ${this.#state}`);
    this.#state = 'running';
    try {
      await this.#apply(config, beforeServe);
    } catch (err) {
      this.#state = 'closed';
      throw err;
    }
  }

  /**
   * Switch to `config`: unchanged (service, address) pairs keep running untouched;
   * new and changed ones start; removed ones drain. Rejects, with the old
   * configuration still running, if any new socket or server cannot start.
   */
  reload(config: Config): Promise<ReloadResult> {
    const run = this.#queue.then(() => {
      if (this.#state !== 'running') throw new StateError(`reload: supervisor is ${this.#state}`);
      return this.#apply(config);
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  async #apply(config: Config, beforeServe?: () => void | Promise<void>): Promise<ReloadResult> {
    const wanted = new Map<string, { svc: ServiceConfig; address: ListenAddress }>();
    for (const svc of config.services) {
      for (const address of svc.listen) wanted.set(`${svc.name} ${address.text}`, { svc, address });
    }

    // 1. Bind the addresses that are new.
    const budgetsBefore = new Map(this.#budgets);
    const bound: string[] = [];
    const started: Entry[] = [];
    try {
      for (const { svc, address } of wanted.values()) {
        const k = socketKey(svc.name, address);
        if (this.#sockets.has(k)) continue;
        const o = svc.options;
        const listener = await Listener.open(
          address.path !== undefined ? { path: address.path, mode: parseUnixMode(o.unixMode), ...unixOwner(o.unixOwner) } : { host: address.host, port: address.port },
        );
        // Held, never accepting: the Servers accept on their own duplicates.
        listener.pause();
        this.#sockets.set(k, listener);
        bound.push(k);
      }
      // 2. Make the new and changed services' servers, each on its own duplicate of the socket; their TLS
      // files are read now, before the privileges drop (a key only root may read works with a top-level user).
      for (const [key, { svc, address }] of wanted) {
        const old = this.#entries.get(key);
        if (old && old.fingerprint === svc.fingerprint) continue;
        const socket = this.#sockets.get(socketKey(svc.name, address))!;
        const server = createServer({ ...svc.options, fd: socket.dup(), budget: this.#budgetOf(svc) });
        // Every event names its service (the config key), `listen` included: two exec services are told apart.
        const service = svc.name;
        server.on('event', (e) => this.emit('event', { ...e, service }, key));
        started.push({ key, service: svc.name, address, fingerprint: svc.fingerprint, server });
        server.readTls();
      }
      await beforeServe?.();
      // 3. Start them.
      for (const e of started) await e.server.listen();
    } catch (err) {
      await Promise.all(started.map((e) => e.server.destroy()));
      // All or nothing: the running services keep the budgets they had.
      this.#budgets.clear();
      for (const [k, v] of budgetsBefore) this.#budgets.set(k, v);
      for (const k of bound) {
        this.#sockets.get(k)?.close();
        this.#sockets.delete(k);
      }
      throw err;
    }

    // 4. Swap: the new ones are accepting; stop what is removed or replaced.
    const stopping: Entry[] = [];
    for (const [key, entry] of this.#entries) {
      if (!wanted.has(key) || started.some((e) => e.key === key)) {
        stopping.push(entry);
        this.#entries.delete(key);
      }
    }
    // Kept services read their TLS certificates and keys again (a failure is logged; they keep the old ones).
    for (const e of this.#entries.values()) {
      try {
        e.server.reloadTls();
      } catch {
        // logged by the server as `reload failed`
      }
    }
    for (const e of started) this.#entries.set(e.key, e);
    for (const e of stopping) {
      const closing = e.server.close({ signal: 'reload' }).finally(() => this.#draining.delete(e.server));
      this.#draining.set(e.server, closing);
    }

    // Budgets of services gone; draining Servers keep a reference to theirs.
    for (const name of this.#budgets.keys()) if (!config.services.some((s) => s.name === name)) this.#budgets.delete(name);

    // 4. Close the sockets no service listens on any more (after their old Servers closed their duplicates).
    const used = new Set([...this.#entries.values()].map((e) => socketKey(e.service, e.address)));
    for (const [k, listener] of this.#sockets) {
      if (!used.has(k)) {
        listener.close();
        this.#sockets.delete(k);
      }
    }
    return { kept: this.#entries.size - started.length, started: started.length, stopped: stopping.length };
  }

  /** The service's budget: the current one while its definition is the same, else a new one. */
  #budgetOf(svc: ServiceConfig): ServiceBudget {
    const held = this.#budgets.get(svc.name);
    if (held && held.fingerprint === svc.fingerprint) return held.budget;
    const budget = new ServiceBudget({ maxConns: svc.options.maxConns, perSource: svc.options.perSource, rate: svc.options.rate });
    this.#budgets.set(svc.name, { fingerprint: svc.fingerprint, budget });
    return budget;
  }

  /** The running (service, address) pairs and their bound addresses. */
  bindings(): Binding[] {
    return [...this.#entries.values()].map((e) => ({ service: e.service, listen: e.address.text, local: e.server.address() }));
  }

  /** A plain snapshot: every running server's stats() by `SERVICE ADDRESS` (the StatusSource shape). */
  stats(): SupervisorStats {
    return {
      kind: 'supervisor',
      state: this.#state,
      pid: process.pid,
      startedAt: this.#startedAt,
      services: Object.fromEntries([...this.#entries].map(([k, e]) => [k, e.server.stats()])),
    };
  }

  /** Graceful: every service stops accepting and drains (each for its own grace). Idempotent. */
  close(options: { signal?: string; grace?: number } = {}): Promise<void> {
    if (this.#closing) return this.#closing;
    if (this.#state === 'idle') {
      this.#state = 'closed';
      return (this.#closing = Promise.resolve());
    }
    this.#state = 'closing';
    this.#closing = (async () => {
      await this.#queue;
      const all = [...this.#entries.values()].map((e) => e.server.close(options));
      for (const listener of this.#sockets.values()) listener.close();
      this.#sockets.clear();
      await Promise.all([...all, ...this.#draining.values()]);
      this.#entries.clear();
      this.#state = 'closed';
    })();
    return this.#closing;
  }

  /** Forceful: kill every connection of every service now, draining ones included. Idempotent. */
  destroy(): Promise<void> {
    const closing = this.close({ grace: 0 });
    for (const e of this.#entries.values()) void e.server.destroy();
    for (const server of this.#draining.keys()) void server.destroy();
    return closing;
  }
}
