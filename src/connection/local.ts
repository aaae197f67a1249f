/**
 * Connections served right here, in this process or thread: the event and
 * iterative models use it in the server process, prefork workers and threads use
 * it inside each worker. It runs the service on each socket (runService contains
 * a throw to that one socket, and enforces the idle and time limits), tracks the
 * socket until it closes, and can wait for all of them to end or destroy them at once.
 */
import type net from 'node:net';
import type { ConnectionInfo } from '../address.js';
import type { ConnectionLimits } from '../admission/limits.js';
import { describeError } from '../errors.js';
import { serveSocket } from './run.js';
import { Slots } from './slots.js';
import type { Service, ServiceSpec } from '../services/types.js';

/**
 * What becomes of one served connection; each is called once at most. In the server
 * process this is the pipeline's Connection itself; in a worker, messages to the server.
 */
export interface ServedHooks {
  /** The connection ended (its socket closed). */
  closed(): void;
  /** The service reported an event through ctx.log (`idle`/`time-limit` when runService closed it for a limit). */
  log(reason: string, code: string): void;
  /** The service threw, rejected, or its socket failed (code `TCPKIT_HANDLER` when the error has none). */
  failed(code: string, message: string): void;
}

/** The connections one process or thread is serving. */
export class LocalConnections {
  readonly #service: Service;
  readonly #spec: ServiceSpec;
  readonly #limits: ConnectionLimits | undefined;
  /** The sockets served now with their ids (a Slots, not a Map by id: see ./slots.ts). */
  readonly #sockets = new Slots<{ id: number; socket: net.Socket }>();
  #served = 0;
  #idle: Array<() => void> = [];

  /** `limits`: idle and time limits enforced on each socket here (default none). */
  constructor(service: Service, spec: ServiceSpec, limits?: ConnectionLimits) {
    this.#service = service;
    this.#spec = spec;
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
    return this.#sockets
      .values()
      .map((s) => s.id)
      .sort((a, b) => a - b);
  }

  /**
   * Serve `socket` (paused, as the acceptor hands it over; serveSocket gives it to the service
   * flowing-capable) with the service; `env` from the server's admission.
   */
  serve(socket: net.Socket, info: ConnectionInfo, env: Readonly<Record<string, string>> | undefined, hooks: ServedHooks): void {
    const slot = this.#sockets.add({ id: info.id, socket });
    const ctx = {
      socket,
      info,
      env,
      options: this.#spec.options ?? {},
      log: (reason: string, code?: string) => hooks.log(reason, code ?? 'TCPKIT_SERVICE'),
    };
    const failed = (err: unknown) => {
      const { code, message } = describeError(err, 'TCPKIT_HANDLER');
      hooks.failed(code, message);
    };
    serveSocket(this.#service, ctx, failed, this.#limits, () => {
      this.#sockets.remove(slot);
      this.#served++;
      hooks.closed();
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
    for (const { socket } of this.#sockets.values()) socket.destroy();
  }
}
