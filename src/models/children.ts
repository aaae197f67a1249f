/**
 * Children that each serve one connection, tracked from the process that started them:
 * what the fork model does for every child and what the event model does for a program
 * service, written once.
 *
 *   startProgram ─► environment ─► launcher (socket or bare descriptor) ─► track
 *   track / adopt ─► conn.opened(pid) ─► limits enforced from here ─► reaped ─► last stderr lines ─► conn.closed(code, signal)
 *
 * The process that tracks them holds no copy of the socket, so the limits are enforced
 * on the child: the time limit by a timer (SIGTERM, then SIGKILL after TERM_TO_KILL_MS),
 * idleness by the child's read/write activity (rchar + wchar in /proc/PID/io, read at most
 * once a second: a child that made no read or write system call for the idle time is
 * idle; for a program that only talks to its socket that is exactly "no traffic"). A
 * program's stderr lines are `stderr pid P id I text T`; one that cannot be started is
 * `accept` (pid: this process), `error where spawn code C`, `end`, under every model.
 * At close, children get the grace period, then SIGTERM, then SIGKILL.
 *
 * Descriptors: a program being started holds none here yet but will open two (its pidfd
 * and stderr pipe, then counted by the launcher): `starting` says how many are on their
 * way, for the owner's declaration to its acceptor (Acceptor.countDescriptors).
 */
import fs from 'node:fs';
import type net from 'node:net';
import type { Connection } from '../connection/pipeline.js';
import { describeError } from '../errors.js';
import { spawnFailedCode } from '../events.js';
import { fdutil } from '../net/fdutil.js';
import { STDERR_DRAIN_MS, type Child } from '../net/launcher.js';
import { TERM_TO_KILL_MS } from '../options.js';
import type { ProgramLauncher } from '../services/index.js';
import type { ModelHost, ModelProcess } from './types.js';

/** How often the tracker reads /proc/PID/io of each child, at most, when an idle timeout is set. */
const IDLE_POLL_MS = 1000;

/** What a program about to be started will hold in this process: its pidfd and its stderr pipe. */
export const PROGRAM_DESCRIPTORS = 2;

interface Served {
  child: Child;
  pid: number;
  conn: Connection;
  state: 'serving' | 'terminating';
  /** The time-limit timer, then the SIGKILL timer once signalled, if any. */
  timer: NodeJS.Timeout | undefined;
  /** rchar + wchar at the last poll, and when it last changed. */
  io: number;
  activeAt: number;
  /** Resolves once the child's stderr (its lines or reports) has been read to the end. */
  reported: Promise<void>;
  /** Called once it is gone and its connection closed (the fork model counts its serving spares). */
  gone?: () => void;
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

/** The children serving connections for one model: see the file comment. */
export class ServingChildren {
  readonly #host: Pick<ModelHost, 'emit' | 'limits'>;
  readonly #children = new Map<number, Served>();
  /** Programs admitted and not yet started (their environment is being assembled, or the launcher is at it). */
  #starting = 0;
  /** Children started by track() over the tracker's life. */
  #spawned = 0;
  /** Children that ended by a signal or a non-zero exit. */
  #crashed = 0;
  #closing = false;
  #idlePoll: NodeJS.Timeout | undefined;
  /** close() waiting for the last child: resolves it. */
  #drained: (() => void) | undefined;
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(host: Pick<ModelHost, 'emit' | 'limits'>) {
    this.#host = host;
  }

  /** Programs admitted and still being started (each will hold PROGRAM_DESCRIPTORS here). */
  get starting(): number {
    return this.#starting;
  }

  /** Children serving a connection now. */
  get size(): number {
    return this.#children.size;
  }

  get spawned(): number {
    return this.#spawned;
  }

  get crashed(): number {
    return this.#crashed;
  }

  /**
   * inetd's fork + exec: the program itself is the child; its stderr lines go to the log.
   * `connection`: a socket (closed here once the program holds it), or an accepted descriptor
   * (the launcher's once handed to startFd; closed here if the program is never started).
   */
  async startProgram(program: ProgramLauncher, connection: net.Socket | number, conn: Connection): Promise<void> {
    const socket = typeof connection === 'number' ? undefined : connection;
    let fd = typeof connection === 'number' ? connection : -1;
    const drop = (): void => (socket ? void socket.destroy() : fd >= 0 ? fdutil.close(fd) : undefined);
    const info = conn.info;
    // Counted as about to open its descriptors until it has (then the launcher counts them).
    this.#starting++;
    let child: Child & { stderrDone?: Promise<void> };
    try {
      // The socket stays paused (unread) while the environment (names) is looked up.
      const env = await program.environment(info, conn.env);
      if (this.#closing) {
        drop();
        conn.closed();
        this.#starting--;
        this.#settle();
        return;
      }
      const onStderr = (text: string, pid: number): void => this.#host.emit({ type: 'stderr', pid, id: info.id, text });
      if (socket) child = await program.start(socket, env, onStderr);
      else {
        const owned = fd;
        fd = -1; // the launcher's now: closed there, started or not
        child = await program.startFd!(owned, env, onStderr);
      }
    } catch (err) {
      drop();
      this.#starting--;
      this.spawnFailed(conn, err);
      this.#settle();
      return;
    }
    this.#starting--;
    this.track(child, conn, child.stderrDone ?? Promise.resolve(), socket);
  }

  /** A child started here for `conn`: close this process's copy of its socket, count it, watch it until it is reaped. */
  track(child: Child, conn: Connection, reported: Promise<void>, socket?: net.Socket): void {
    // The child has its own copy of connfd now; this process closes its copy (the seed's Close(connfd)).
    socket?.destroy();
    this.#spawned++;
    this.adopt(child, conn, reported);
  }

  /**
   * A child now serves `conn` (started here, or a spare given it): count it, enforce the
   * limits on it, and close the connection once it has been reaped and its last stderr
   * lines are in. `gone` runs after that.
   */
  adopt(child: Child, conn: Connection, reported: Promise<void>, gone?: () => void): void {
    const pid = child.pid;
    const record: Served = { child, pid, conn, state: 'serving', timer: undefined, io: -1, activeAt: Date.now(), reported, gone };
    this.#children.set(pid, record);
    conn.opened(pid);
    void child.exited.then(({ code, signal }) => this.#exited(record, code, signal));
    const { maxMs, idleMs } = this.#host.limits;
    if (maxMs > 0) record.timer = setTimeout(() => this.#stop(record, 'time-limit'), maxMs);
    if (idleMs > 0) this.#startIdlePoll(idleMs);
  }

  /**
   * Nothing could be started for `conn`: logged as under every model, `accept` (served by
   * this process), `error where spawn`, `end`.
   */
  spawnFailed(conn: Connection, err: unknown): void {
    conn.opened(process.pid);
    const { code, message } = describeError(err, 'EIO');
    conn.log(message, spawnFailedCode(code));
    conn.closed();
  }

  /** A child has been reaped (no zombie is left): its last lines, then its connection's end. */
  #exited(record: Served, code: number | null, signal: string | null): void {
    clearTimeout(record.timer);
    if (signal !== null || code !== 0) this.#crashed++;
    // Its last lines come before its `end`; a descendant holding the pipe delays it at most STDERR_DRAIN_MS.
    let timer: NodeJS.Timeout | undefined;
    const drained = new Promise<void>((resolve) => (timer = setTimeout(resolve, STDERR_DRAIN_MS)));
    void Promise.race([record.reported, drained]).then(() => {
      clearTimeout(timer);
      this.#children.delete(record.pid);
      if (this.#children.size === 0) this.#stopIdlePoll();
      record.conn.closed(code, signal);
      record.gone?.();
      this.#settle();
    });
  }

  /** A limit is reached: SIGTERM now, SIGKILL if it is still there after TERM_TO_KILL_MS. */
  #stop(r: Served, reason: 'idle' | 'time-limit'): void {
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

  #signal(r: Served, signal: NodeJS.Signals, reason: string): void {
    r.state = 'terminating';
    this.#host.emit({ type: 'kill', pid: r.pid, signal, reason });
    r.child.kill(signal);
  }

  /** Closing and nothing left (no child, none starting): close() resolves. */
  #settle(): void {
    if (this.#closing && this.#children.size === 0 && this.#starting === 0) this.#drained?.();
  }

  /**
   * Graceful: no new program starts (one whose environment is still being assembled is
   * dropped); resolves once every child has ended, SIGTERM after `graceMs`, SIGKILL
   * TERM_TO_KILL_MS later. Idempotent.
   */
  close(graceMs: number): Promise<void> {
    this.#closing = true;
    if (this.#children.size === 0 && this.#starting === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.#drained;
      this.#drained = () => {
        previous?.();
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

  /** Forceful: SIGKILL every child now. Idempotent. */
  destroy(): void {
    this.#closing = true;
    for (const r of this.#children.values()) this.#signal(r, 'SIGKILL', 'destroy');
  }

  /** One status row per child (role `child`), serving its one connection. */
  rows(): ModelProcess[] {
    return [...this.#children.values()].map((r) => ({
      pid: r.pid,
      threadId: 0,
      role: 'child',
      state: r.state,
      connections: [r.conn.info.id],
      // A child per connection: the one it serves (it was reported as 0 served while serving it).
      served: 1,
      startedAt: r.conn.info.acceptedAt,
    }));
  }
}
