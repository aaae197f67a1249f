/**
 * fork: a process per connection, the seed's design. The parent accepts; a new
 * Node process gets the connected socket as its descriptors 0 and 1 and serves it;
 * the parent closes its own copy at once (so the client sees FIN the moment the
 * child ends) and reaps the child when it exits.
 *
 *   accept ─► spawn(node child/conn.js, stdio [connfd, connfd, stderr]) ─► parent closes connfd
 *                                                       child serves, exits ─► parent reaps, logs `end`
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type net from 'node:net';
import { endpointsOf, formatEndpoint, type ConnectionInfo } from '../address.js';
import type { ChildSpec } from '../child/protocol.js';
import type { Model, ModelHost, ModelProcess, ModelStats } from './types.js';

const CHILD_ENTRY = fileURLToPath(new URL('../child/conn.js', import.meta.url));

/** How long a child gets after SIGTERM before SIGKILL, when the grace period is over. */
const TERM_TO_KILL_MS = 2000;

interface ChildRecord {
  child: ChildProcess;
  pid: number;
  info: ConnectionInfo;
  state: 'serving' | 'terminating';
}

export class ForkModel implements Model {
  readonly name = 'fork' as const;
  readonly #host: ModelHost;
  readonly #children = new Map<number, ChildRecord>();
  #spawned = 0;
  #crashed = 0;
  #closing = false;
  #drained: (() => void) | undefined;
  #timers = new Set<NodeJS.Timeout>();

  constructor(host: ModelHost) {
    this.#host = host;
  }

  async start(): Promise<void> {
    this.#host.listener.onConnection((socket) => this.#serve(socket));
  }

  pauseAccept(): void {
    this.#host.listener.pause();
  }

  resumeAccept(): void {
    this.#host.listener.resume();
  }

  #serve(socket: net.Socket): void {
    const ends = endpointsOf(socket);
    if (!ends) {
      // Reset before we could even ask getpeername: nothing to serve.
      socket.destroy();
      return;
    }
    const info: ConnectionInfo = { id: this.#host.nextId(), ...ends, acceptedAt: Date.now() };
    const spec: ChildSpec = { service: this.#host.service, info };
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [CHILD_ENTRY, this.#host.service.name, formatEndpoint(info.remote)], {
        stdio: [socket, socket, 'inherit'],
        env: { ...process.env, TCPKIT_CHILD: JSON.stringify(spec) },
      });
    } catch (err) {
      socket.destroy();
      this.#spawnFailed(info, err);
      return;
    }
    // The child has its own copy of connfd now; the parent closes its copy (the seed's Close(connfd)).
    socket.destroy();
    const pid = child.pid;
    if (pid === undefined) {
      // EAGAIN/EMFILE/ENOENT are reported on 'error' asynchronously.
      child.once('error', (err) => this.#spawnFailed(info, err));
      return;
    }
    this.#spawned++;
    const record: ChildRecord = { child, pid, info, state: 'serving' };
    this.#children.set(pid, record);
    child.on('error', () => {}); // kill() on an exited child; 'exit' is what counts
    this.#host.opened(info, pid);
    child.once('exit', (code, signal) => {
      // Node has reaped it (waitpid): no zombie is left.
      this.#children.delete(pid);
      if (signal !== null || code !== 0) this.#crashed++;
      this.#host.closed(info.id, pid, code, signal);
      if (this.#closing && this.#children.size === 0) this.#drained?.();
    });
  }

  #spawnFailed(info: ConnectionInfo, err: unknown): void {
    const e = err as NodeJS.ErrnoException;
    this.#host.emit({ type: 'error', where: 'spawn', code: e?.code ?? 'EIO', message: e?.message ?? String(err), id: info.id });
  }

  close(graceMs: number): Promise<void> {
    this.#closing = true;
    if (this.#children.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#drained = () => {
        for (const t of this.#timers) clearTimeout(t);
        this.#timers.clear();
        resolve();
      };
      const grace = setTimeout(() => {
        for (const r of this.#children.values()) this.#signal(r, 'SIGTERM', 'grace');
        const kill = setTimeout(() => {
          for (const r of this.#children.values()) this.#signal(r, 'SIGKILL', 'grace');
        }, TERM_TO_KILL_MS);
        this.#timers.add(kill);
      }, graceMs);
      this.#timers.add(grace);
    });
  }

  destroy(): void {
    this.#closing = true;
    for (const r of this.#children.values()) this.#signal(r, 'SIGKILL', 'destroy');
  }

  #signal(r: ChildRecord, signal: NodeJS.Signals, reason: string): void {
    r.state = 'terminating';
    this.#host.emit({ type: 'kill', pid: r.pid, signal, reason });
    r.child.kill(signal);
  }

  stats(): ModelStats {
    const processes: ModelProcess[] = [...this.#children.values()].map((r) => ({
      pid: r.pid,
      threadId: 0,
      role: 'child',
      state: r.state,
      connections: [r.info.id],
      served: 0,
      startedAt: r.info.acceptedAt,
    }));
    return { model: this.name, processes, crashed: this.#crashed, spawned: this.#spawned };
  }
}

export default (host: ModelHost): Model => new ForkModel(host);
