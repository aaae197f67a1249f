/**
 * fork: a process per connection, the seed's design. The parent accepts; a new
 * Node process gets the connected socket as its descriptors 0 and 1 and serves it;
 * the parent closes its own copy at once (so the client sees FIN the moment the
 * child ends) and reaps the child when it exits.
 *
 *   accept ─► admit ─► spawn(node child/conn.js, stdio [connfd, connfd, stderr]) ─► parent closes connfd
 *                                                       child serves, exits ─► parent reaps, logs `end`
 *
 * For the exec service the parent spawns the program itself (inetd's fork + exec,
 * with no Node process in between), so the pid logged is the program's.
 *
 * Limits are enforced from the parent, which holds no copy of the socket: the time
 * limit by a timer (SIGTERM, then SIGKILL), idleness by the child's read/write
 * activity (rchar + wchar in /proc/PID/io; a child that made no read or write
 * system call for the idle time is idle). For a program that only talks to its
 * socket that is exactly "no traffic"; one that also reads files while the peer
 * is silent counts as active.
 */
import fs from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type net from 'node:net';
import { endpointsOf, formatEndpoint, type ConnectionInfo } from '../address.js';
import type { ChildSpec } from '../child/protocol.js';
import { lookupNames, programEnv, startProgram, type ExecOptions } from '../services/exec.js';
import type { Model, ModelHost, ModelProcess, ModelStats } from './types.js';

const CHILD_ENTRY = fileURLToPath(new URL('../child/conn.js', import.meta.url));

/** How long a child gets after SIGTERM before SIGKILL, when the grace period is over. */
const TERM_TO_KILL_MS = 2000;

/** How often the parent reads /proc/PID/io of each child, at most, when an idle timeout is set. */
const IDLE_POLL_MS = 1000;

interface ChildRecord {
  child: ChildProcess;
  pid: number;
  info: ConnectionInfo;
  state: 'serving' | 'terminating';
  /** The time-limit timer, if any. */
  timer: NodeJS.Timeout | undefined;
  /** rchar + wchar at the last poll, and when it last changed. */
  io: number;
  activeAt: number;
}

/** Bytes a process has read and written by system calls (any descriptor); -1 if unreadable. */
function ioCount(pid: number): number {
  try {
    const text = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
    return Number(/rchar: (\d+)/.exec(text)?.[1] ?? 0) + Number(/wchar: (\d+)/.exec(text)?.[1] ?? 0);
  } catch {
    return -1;
  }
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
  #idlePoll: NodeJS.Timeout | undefined;

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
    const admission = this.#host.admit(info);
    if (!admission.ok) {
      // Denied or refused (already logged): closed at once, nothing spawned.
      socket.destroy();
      return;
    }
    const service = this.#host.service;
    if (service.name === 'exec' && !service.handler) {
      void this.#serveExec(socket, info, admission.env);
      return;
    }
    const spec: ChildSpec = { service, info };
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [CHILD_ENTRY, service.name, formatEndpoint(info.remote)], {
        stdio: [socket, socket, 'inherit'],
        env: { ...process.env, TCPKIT_CHILD: JSON.stringify(spec) },
      });
    } catch (err) {
      socket.destroy();
      this.#spawnFailed(info, err);
      return;
    }
    this.#track(child, socket, info);
  }

  /** inetd's fork + exec: the program itself is the child; its stderr lines go to the log. */
  async #serveExec(socket: net.Socket, info: ConnectionInfo, extra: Readonly<Record<string, string>>): Promise<void> {
    // Checked once when the server was made (validateServiceSpec); not again per connection.
    const options = this.#host.service.options as unknown as ExecOptions;
    // The socket stays paused (unread) while the names are looked up.
    const names = options.resolve ? await lookupNames(info) : {};
    if (this.#closing) {
      socket.destroy();
      this.#host.closed(info.id, 0, null, null);
      return;
    }
    let child: ChildProcess;
    try {
      child = startProgram({
        ...options,
        socket,
        env: programEnv(info, { extra, names }),
        onStderr: (text, pid) => this.#host.emit({ type: 'stderr', pid, id: info.id, text }),
      });
    } catch (err) {
      socket.destroy();
      this.#spawnFailed(info, err);
      return;
    }
    this.#track(child, socket, info);
  }

  /** After spawn: the parent closes its copy of the socket and watches the child until it is reaped. */
  #track(child: ChildProcess, socket: net.Socket, info: ConnectionInfo): void {
    // The child has its own copy of connfd now; the parent closes its copy (the seed's Close(connfd)).
    socket.destroy();
    const pid = child.pid;
    if (pid === undefined) {
      // EAGAIN/EMFILE/ENOENT are reported on 'error' asynchronously.
      child.once('error', (err) => this.#spawnFailed(info, err));
      return;
    }
    this.#spawned++;
    const record: ChildRecord = { child, pid, info, state: 'serving', timer: undefined, io: -1, activeAt: Date.now() };
    this.#children.set(pid, record);
    child.on('error', () => {}); // kill() on an exited child; 'exit' is what counts
    this.#host.opened(info, pid);
    const { maxMs, idleMs } = this.#host.limits;
    if (maxMs > 0) record.timer = setTimeout(() => this.#stop(record, 'time-limit'), maxMs);
    if (idleMs > 0) this.#startIdlePoll(idleMs);
    child.once('exit', (code, signal) => {
      // Node has reaped it (waitpid): no zombie is left.
      clearTimeout(record.timer);
      this.#children.delete(pid);
      if (this.#children.size === 0) this.#stopIdlePoll();
      if (signal !== null || code !== 0) this.#crashed++;
      this.#host.closed(info.id, pid, code, signal);
      if (this.#closing && this.#children.size === 0) this.#drained?.();
    });
  }

  #spawnFailed(info: ConnectionInfo, err: unknown): void {
    const e = err as NodeJS.ErrnoException;
    this.#host.emit({ type: 'error', where: 'spawn', code: e?.code ?? 'EIO', message: e?.message ?? String(err), id: info.id });
    // Give back the connection's admission place; it never opened, so no `end` is logged.
    this.#host.closed(info.id, 0, null, null);
  }

  /** A limit is reached: SIGTERM now, SIGKILL if it is still there after TERM_TO_KILL_MS. */
  #stop(r: ChildRecord, reason: 'idle' | 'time-limit'): void {
    if (r.state === 'terminating') return;
    this.#signal(r, 'SIGTERM', reason);
    clearTimeout(r.timer);
    r.timer = setTimeout(() => this.#signal(r, 'SIGKILL', 'term-ignored'), TERM_TO_KILL_MS);
  }

  #startIdlePoll(idleMs: number): void {
    if (this.#idlePoll) return;
    this.#idlePoll = setInterval(() => {
      const now = Date.now();
      for (const r of this.#children.values()) {
        if (r.state !== 'serving') continue;
        const io = ioCount(r.pid);
        // Unreadable (no /proc, or not ours to read): idleness cannot be measured, so never call it idle.
        if (io < 0 || io !== r.io) {
          r.io = io;
          r.activeAt = now;
        } else if (now - r.activeAt >= idleMs) {
          this.#stop(r, 'idle');
        }
      }
    }, Math.max(50, Math.min(IDLE_POLL_MS, idleMs / 4)));
  }

  #stopIdlePoll(): void {
    clearInterval(this.#idlePoll);
    this.#idlePoll = undefined;
  }

  close(graceMs: number): Promise<void> {
    this.#closing = true;
    if (this.#children.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#drained = () => {
        this.#stopIdlePoll();
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
