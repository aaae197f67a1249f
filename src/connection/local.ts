/**
 * Connections served right here, in this process or thread: the event and
 * iterative models use it in the server process, prefork workers and threads use
 * it inside each worker. It runs the service on each socket (runService contains
 * a throw to that one socket), tracks the socket until it closes, and can wait for
 * all of them to end or destroy them at once.
 */
import type net from 'node:net';
import { endpointsOf, type ConnectionInfo } from '../address.js';
import type { ConnectionLimits } from '../admission/limits.js';
import { runService } from '../services/index.js';
import type { Service, ServiceSpec } from '../services/types.js';

/** What LocalConnections reports; every hook is called once per connection at most. */
export interface LocalHooks {
  /** The connection ended (its socket closed). */
  closed(id: number): void;
  /** The service reported an event through ctx.log (`idle`/`time-limit` when runService closed it for a limit). */
  log(id: number, reason: string, code: string): void;
  /** The service threw, rejected, or its socket failed. */
  failed(id: number, err: unknown): void;
}

/** Both ends of an accepted socket plus an id, or undefined when the peer is already gone. */
export function connectionInfo(socket: net.Socket, id: number): ConnectionInfo | undefined {
  const ends = endpointsOf(socket);
  return ends && { id, ...ends, acceptedAt: Date.now() };
}

/** The connections one process or thread is serving. */
export class LocalConnections {
  readonly #service: Service;
  readonly #spec: ServiceSpec;
  readonly #hooks: LocalHooks;
  readonly #sockets = new Map<number, net.Socket>();
  #served = 0;
  #idle: Array<() => void> = [];

  readonly #limits: ConnectionLimits | undefined;

  /** `limits`: idle and time limits enforced on each socket here (default none). */
  constructor(service: Service, spec: ServiceSpec, hooks: LocalHooks, limits?: ConnectionLimits) {
    this.#service = service;
    this.#spec = spec;
    this.#hooks = hooks;
    this.#limits = limits;
  }

  /** Connections being served now. */
  get size(): number {
    return this.#sockets.size;
  }

  /** Connections served to the end so far. */
  get served(): number {
    return this.#served;
  }

  /** Ids of the connections being served now. */
  ids(): number[] {
    return [...this.#sockets.keys()];
  }

  /** Serve `socket` (paused, as the listener hands it over) with the service; `env` from the server's admission. */
  serve(socket: net.Socket, info: ConnectionInfo, env?: Readonly<Record<string, string>>): void {
    const id = info.id;
    this.#sockets.set(id, socket);
    const ctx = {
      socket,
      info,
      env,
      options: this.#spec.options ?? {},
      log: (reason: string, code?: string) => this.#hooks.log(id, reason, code ?? 'TCPKIT_SERVICE'),
    };
    void runService(this.#service, ctx, (err) => this.#hooks.failed(id, err), this.#limits).then(() => {
      this.#sockets.delete(id);
      this.#served++;
      this.#hooks.closed(id);
      if (this.#sockets.size === 0) for (const resolve of this.#idle.splice(0)) resolve();
    });
  }

  /** Resolves when no connection is left. */
  idle(): Promise<void> {
    if (this.#sockets.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Destroy every socket now (each still reports `closed`). */
  destroyAll(): void {
    for (const socket of this.#sockets.values()) socket.destroy();
  }
}
