/**
 * What the two models that serve in the server process (event, iterative) share:
 * the service loaded here, the connections served here (../connection/local.ts),
 * a graceful close that lets them finish for the grace period, and one `parent` row
 * in the stats. Each model only says when to serve.
 */
import type { IncomingConnection } from '../connection/pipeline.js';
import { LocalConnections, type ServedHooks } from '../connection/local.js';
import { loadService } from '../services/index.js';
import type { Model, ModelHost, ModelName, ModelStats } from './types.js';

/** The base of event and iterative. */
export abstract class InProcessModel implements Model {
  abstract readonly name: ModelName;
  readonly accepts = 'server' as const;
  protected readonly host: ModelHost;
  #conns: LocalConnections | undefined;
  readonly #startedAt = Date.now();

  constructor(host: ModelHost) {
    this.host = host;
  }

  async start(): Promise<void> {
    this.#conns = new LocalConnections(await loadService(this.host.service), this.host.service, this.host.limits);
  }

  /** Connections being served now. */
  protected get serving(): number {
    return this.#conns?.size ?? 0;
  }

  abstract dispatch(conn: IncomingConnection): void;

  /** Serve it here; `ended` runs after the pipeline has counted its end. */
  protected serve(conn: IncomingConnection, ended?: () => void): void {
    conn.opened(process.pid);
    // The connection is its own ServedHooks (closed, log, failed); a wrapper only when something follows its end.
    const hooks: ServedHooks = ended
      ? {
          closed: () => {
            conn.closed();
            ended();
          },
          log: (reason, code) => conn.log(reason, code),
          failed: (code, message) => conn.failed(code, message),
        }
      : conn;
    this.#conns!.serve(conn.socket, conn.info, conn.env, hooks);
  }

  pauseAccept(): void {
    this.host.listener.pause();
  }

  resumeAccept(): void {
    this.host.listener.resume();
  }

  async close(graceMs: number): Promise<void> {
    const conns = this.#conns;
    if (!conns) return;
    const timer = setTimeout(() => conns.destroyAll(), graceMs);
    await conns.idle();
    clearTimeout(timer);
  }

  destroy(): void {
    this.#conns?.destroyAll();
  }

  stats(): ModelStats {
    const conns = this.#conns;
    return {
      model: this.name,
      processes: [
        {
          pid: process.pid,
          threadId: 0,
          role: 'parent',
          state: conns && conns.size > 0 ? 'serving' : 'idle',
          connections: conns?.ids() ?? [],
          served: conns?.served ?? 0,
          startedAt: this.#startedAt,
        },
      ],
      crashed: 0,
      spawned: 0,
    };
  }
}
