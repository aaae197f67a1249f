/**
 * event: every connection in this process's event loop, the select/epoll design.
 * Accepting never waits for a connection to end; one process serves them all.
 *
 *   accept ─► runService(socket) in this process ─► close ─► `end`
 *
 * Isolation: a throw or rejection in a service is contained to its socket by
 * runService, but an uncaught error from a timer or callback, or process.exit,
 * ends the whole server and every connection in it.
 */
import type net from 'node:net';
import { connectionInfo, LocalConnections } from '../connection/local.js';
import { loadService } from '../services/index.js';
import { stderrEvent } from '../services/exec.js';
import type { ServerEvent } from '../events.js';
import type { Model, ModelHost, ModelName, ModelStats } from './types.js';

/** The event model; no options. */
export class EventModel implements Model {
  readonly name = 'event' as const;
  readonly #host: ModelHost;
  #conns: LocalConnections | undefined;
  #startedAt = Date.now();
  #timer: NodeJS.Timeout | undefined;

  constructor(host: ModelHost) {
    this.#host = host;
  }

  async start(): Promise<void> {
    const host = this.#host;
    const service = await loadService(host.service);
    this.#conns = new LocalConnections(
      service,
      host.service,
      {
        closed: (id) => host.closed(id, process.pid, null, null),
        log: (id, reason, code) => host.emit(serviceLog(id, reason, code)),
        failed: (id, err) => host.emit(serviceError(id, err)),
      },
      host.limits,
    );
    host.listener.onConnection((socket) => this.#serve(socket));
  }

  #serve(socket: net.Socket): void {
    const info = connectionInfo(socket, this.#host.nextId());
    if (!info) {
      socket.destroy();
      return;
    }
    const admission = this.#host.admit(info);
    if (!admission.ok) {
      socket.destroy(); // denied or refused, already logged
      return;
    }
    this.#host.opened(info, process.pid);
    this.#conns!.serve(socket, info, admission.env);
  }

  pauseAccept(): void {
    this.#host.listener.pause();
  }

  resumeAccept(): void {
    this.#host.listener.resume();
  }

  async close(graceMs: number): Promise<void> {
    const conns = this.#conns;
    if (!conns) return;
    this.#timer = setTimeout(() => conns.destroyAll(), graceMs);
    await conns.idle();
    clearTimeout(this.#timer);
  }

  destroy(): void {
    this.#conns?.destroyAll();
  }

  stats(): ModelStats {
    return inProcessStats(this.name, this.#conns, this.#startedAt);
  }
}

/**
 * A service's log line as a server event. A connection runService closed for a
 * limit becomes `kill ... signal close reason idle|time-limit` (as the fork model
 * logs a child it signals), so the server counts it; anything else is an error line.
 */
export function serviceLog(id: number, reason: string, code: string, pid = process.pid): ServerEvent {
  if (code === 'idle' || code === 'time-limit') return { type: 'kill', pid, signal: 'close', reason: code };
  // An exec'd program's stderr line: the same `stderr` line as under fork.
  const stderr = stderrEvent(id, reason, code);
  if (stderr) return stderr;
  return { type: 'error', where: 'service', code, message: reason, id, pid };
}

/** A service failure as a server event (shared by the in-process models). */
export function serviceError(id: number, err: unknown): { type: 'error'; where: string; code: string; message: string; id: number; pid: number } {
  const e = err as NodeJS.ErrnoException | undefined;
  return {
    type: 'error',
    where: 'service',
    code: typeof e?.code === 'string' ? e.code : 'TCPKIT_HANDLER',
    message: e?.message ?? String(err),
    id,
    pid: process.pid,
  };
}

export default (host: ModelHost): Model => new EventModel(host);

/**
 * The stats of a model that serves in this process (event, iterative): one
 * `parent` row holding every connection.
 */
export function inProcessStats(model: ModelName, conns: LocalConnections | undefined, startedAt: number): ModelStats {
  return {
    model,
    processes: [
      {
        pid: process.pid,
        threadId: 0,
        role: 'parent',
        state: conns && conns.size > 0 ? 'serving' : 'idle',
        connections: conns?.ids() ?? [],
        served: conns?.served ?? 0,
        startedAt,
      },
    ],
    crashed: 0,
    spawned: 0,
  };
}
