/**
 * fork: a process per connection, the seed's design. The parent accepts; a new
 * Node process gets the connected socket as its descriptors 0 and 1 and serves it;
 * the parent closes its own copy at once (so the client sees FIN the moment the
 * child ends) and reaps the child when it exits.
 *
 *   accept ─► admit ─► launch(node workers/conn.js, fds [connfd, connfd, stderr]) ─► parent closes connfd
 *                                                       child serves, exits ─► parent reaps, logs `end`
 *
 * Children are started by the native launcher (../net/launcher.ts: posix_spawn,
 * reaped on a pidfd), not child_process.spawn, which would fork the whole parent.
 * For a service that runs a program (its module exports `program`, as exec does)
 * the parent starts the program itself (inetd's fork + exec, with no Node process
 * in between), so the pid logged is the program's.
 *
 * Limits are enforced from the parent, which holds no copy of the socket: the time
 * limit by a timer (SIGTERM, then SIGKILL), idleness by the child's read/write
 * activity (rchar + wchar in /proc/PID/io; a child that made no read or write
 * system call for the idle time is idle). For a program that only talks to its
 * socket that is exactly "no traffic"; one that also reads files while the peer
 * is silent counts as active. The children serving connections (Node children,
 * spares once given one, programs) are tracked by ./children.ts, which the event
 * model uses for its programs too.
 *
 * With `--spare N`, N children are started ahead of need (../workers/spare.ts): each
 * loads its service and waits on its IPC channel. An admitted socket goes to a ready
 * spare over that channel (SCM_RIGHTS), the parent closes its copy once it is sent,
 * and a replacement spare is started at once; the spare serves that one connection
 * and exits like any child. With no spare ready, a child is started as above. Spares
 * are started with child_process.spawn: they need Node's IPC channel to receive the
 * socket. `--spare` with a program service is refused at start (nothing to start ahead).
 *
 * Reports. A Node child's or spare's descriptor 2 is a pipe this process reads: the
 * service's ctx.log and failures arrive there as records (../workers/child-report.ts)
 * and become the connection's events (`error where service ...`, sanitized by the
 * log grammar, JSON under --log-format json, counted as for every model); any other
 * line it writes there is logged as `stderr pid P id I text T`, as a program's own
 * stderr is. Nothing a child writes reaches the server's stderr raw. A connection's
 * `end` waits (at most STDERR_DRAIN_MS) for its child's last lines.
 *
 * Descriptors. Each child costs this process two descriptors while it lives, after
 * the socket itself is closed here: a launched child its pidfd and stderr pipe (the
 * launcher counts those), a spare its IPC channel and stderr pipe (SPARE_DESCRIPTORS,
 * declared to the listener's acceptor with those of programs about to start:
 * countDescriptors). So near the descriptor limit accepting backs off (connections
 * wait in the backlog, one EMFILE line per burst) instead of a launch failing with
 * EMFILE and the connection being reset.
 *
 * A program that cannot be started (ENOENT, EACCES, EMFILE...) is logged as under
 * every model: `accept` (pid: this process), `error where spawn code C`, `end`.
 */
import os from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type net from 'node:net';
import { formatEndpoint } from '../address.js';
import type { Connection, IncomingConnection } from '../connection/pipeline.js';
import { detachFromServer } from '../net/internals.js';
import type { ChildSpec, SpareMessage, SpareSpec } from '../workers/messages.js';
import { describeError, InvalidOptionError, StateError } from '../errors.js';
import { readyWithin, RestartBackoff } from './supervision.js';
import { OPTIONS, spareWithProgram, TERM_TO_KILL_MS } from '../options.js';
import { entryArgs } from '../workers/entries.js';
import { fromChildProcess, launch, type Launched } from '../net/launcher.js';
import { loadService, programOf, type ProgramLauncher } from '../services/index.js';
import { ReportReader, type ChildReport } from '../workers/child-report.js';
import { PROGRAM_DESCRIPTORS, ServingChildren } from './children.js';
import type { Model, ModelHost, ModelProcess, ModelStats } from './types.js';

const CHILD_ENTRY = entryArgs('conn');
const SPARE_ENTRY = entryArgs('spare');

/** The backoff slot of the spares: they restart as one. */
const SPARES = 0;
/** Replacement spares starting at once, once serving: one per CPU. */
const SPARE_STARTS_AT_ONCE = Math.max(1, os.availableParallelism());

/**
 * Descriptors a spare (child_process) keeps open in this process, waiting or serving:
 * its IPC channel and its stderr pipe. A launched child's (pidfd, pipe) the launcher counts.
 */
const SPARE_DESCRIPTORS = 2;

interface SpareRecord {
  child: ChildProcess;
  pid: number;
  state: 'starting' | 'ready';
  startedAt: number;
  /** Its stderr read to the end (its reports: ../workers/child-report.ts). */
  reported: Promise<void>;
  /** The connection it was given, once given one. */
  conn?: Connection;
}

/** The fork model: `spare` children started ahead (default 0). */
export class ForkModel implements Model {
  readonly name = 'fork' as const;
  readonly accepts = 'server' as const;
  readonly #host: ModelHost;
  /** The children serving connections (Node children, spares given one, programs): limits, reaping, ends. */
  readonly #children: ServingChildren;
  /** Spares started (the children serving connections count theirs). */
  #spawned = 0;
  /** Spares that died before serving. */
  #crashed = 0;
  #closing = false;
  /** close() waiting for the last spare to leave: resolves it. */
  #sparesGone: (() => void) | undefined;
  #timers = new Set<NodeJS.Timeout>();
  /** Children started ahead of need, not yet given a connection. */
  readonly #spares = new Map<number, SpareRecord>();
  readonly #spareTarget: number;
  /** Restarts of spares that died before serving, with backoff (./supervision.ts). */
  readonly #spareRestarts = new RestartBackoff();
  /** Serving: replacements start at most SPARE_STARTS_AT_ONCE at a time (see #topUp). */
  #paced = false;
  #onSpareChange: (() => void) | undefined;
  /** Set when the service runs a program per connection (exec): the parent starts it itself. */
  #program: ProgramLauncher | undefined;
  /** The Node children's environment (the server's), read once: process.env is a getenv() per key. */
  readonly #childEnv = definedEnv();
  /** Children that were spares, serving now (their descriptors are SPARE_DESCRIPTORS, not the launcher's). */
  #spareServing = 0;

  constructor(host: ModelHost) {
    this.#host = host;
    this.#children = new ServingChildren(host);
    this.#spareTarget = host.options.spare ?? OPTIONS.spare.default;
  }

  async start(): Promise<void> {
    // What each child keeps open here, so that accepting backs off before a launch runs out of descriptors.
    this.#host.listener.countDescriptors(() => ({
      held: SPARE_DESCRIPTORS * (this.#spares.size + this.#spareServing),
      reserved: PROGRAM_DESCRIPTORS * this.#children.starting,
    }));
    // Fail at start, not in every child, when the service (a --handler module) cannot load.
    if (this.#host.service.handler) await loadService(this.#host.service);
    this.#program = await programOf(this.#host.service);
    if (this.#program && this.#spareTarget > 0) {
      // A spare is a Node process waiting to run a service; a program cannot be started before its socket exists.
      throw spareWithProgram(this.#host.service.name);
    }
    if (this.#spareTarget > 0) await this.#sparesReady();
    this.#paced = true;
  }

  /** Start the first spares and wait until they are ready; fail if one cannot start. */
  #sparesReady(): Promise<void> {
    const check = (): boolean | Error => {
      if (this.#spareRestarts.failures(SPARES) > 0) return new StateError('fork: a spare child exited before it was ready (see its stderr)');
      return [...this.#spares.values()].filter((r) => r.state === 'ready').length >= this.#spareTarget;
    };
    const ready = readyWithin('fork: spares', check, (recheck) => {
      this.#onSpareChange = recheck;
      return () => (this.#onSpareChange = undefined);
    });
    this.#topUp();
    return ready;
  }

  /**
   * Keep `--spare` children waiting (not while closing, nor while backing off after failures).
   * At start every spare starts at once; once serving, replacements are paced: at most one Node
   * start per CPU at a time (the next when one is ready), because a burst of starts competes for
   * the CPU with the children serving connections and raised the p99 latency it was meant to lower.
   */
  #topUp(): void {
    while (!this.#closing && !this.#spareRestarts.waiting(SPARES) && this.#spares.size < this.#spareTarget) {
      if (this.#paced && this.#startingSpares() >= SPARE_STARTS_AT_ONCE) break;
      if (!this.#startSpare()) break;
    }
  }

  #startingSpares(): number {
    let n = 0;
    for (const r of this.#spares.values()) if (r.state === 'starting') n++;
    return n;
  }

  #startSpare(): boolean {
    const spec: SpareSpec = { service: this.#host.service };
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [...SPARE_ENTRY, this.#host.service.name], {
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        env: { ...process.env, TCPKIT_SPARE: JSON.stringify(spec) },
        serialization: 'json',
      });
    } catch (err) {
      this.#spareFailed(err);
      this.#spareDied();
      return false;
    }
    const pid = child.pid;
    if (pid === undefined) {
      child.once('error', (err) => this.#spareFailed(err));
      this.#spareDied();
      return false;
    }
    this.#spawned++;
    const record: SpareRecord = { child, pid, state: 'starting', startedAt: Date.now(), reported: Promise.resolve() };
    record.reported = this.#readReports(child.stderr, pid, () => record.conn);
    this.#spares.set(pid, record);
    this.#host.emit({ type: 'spawn', pid, role: 'spare' });
    child.on('error', () => {});
    child.on('message', (msg: SpareMessage) => {
      if (msg.type !== 'ready' || record.state !== 'starting') return;
      record.state = 'ready';
      this.#spareRestarts.ready(SPARES);
      if (this.#closing) child.disconnect();
      this.#onSpareChange?.();
      // Paced: the next replacement starts now that this one is ready.
      this.#topUp();
    });
    child.once('exit', (code, signal) => this.#exited(pid, code, signal));
    return true;
  }

  /** A spare died without serving: retry later, backing off when it keeps happening. */
  #spareDied(): void {
    this.#spareRestarts.retry(SPARES, () => this.#topUp());
    this.#onSpareChange?.();
  }

  /** Give the admitted socket to a ready spare; false if none is ready. */
  #handToSpare(socket: net.Socket, conn: Connection): boolean {
    let spare: SpareRecord | undefined;
    for (const r of this.#spares.values()) {
      if (r.state === 'ready' && r.child.connected) {
        spare = r;
        break;
      }
    }
    if (!spare) return false;
    const { child, pid } = spare;
    this.#spares.delete(pid);
    spare.conn = conn;
    // Send a copy (keepOpen) and close ours once it is on its way.
    detachFromServer(socket);
    child.send({ type: 'connection', info: conn.info } satisfies SpareMessage, socket, { keepOpen: true }, (err) => {
      socket.destroy();
      // The child died before it got the socket: its exit is reported as the connection's end.
      if (err) child.kill('SIGKILL');
    });
    this.#spareServing++;
    this.#children.adopt(fromChildProcess(child), conn, spare.reported, () => this.#spareServing--);
    return true;
  }

  pauseAccept(): void {
    this.#host.listener.pause();
  }

  resumeAccept(): void {
    this.#host.listener.resume();
  }

  /** An admitted connection: a program (exec), a spare or a new child serves it. */
  dispatch(conn: IncomingConnection): void {
    const { socket, info } = conn;
    const service = this.#host.service;
    if (this.#program) {
      void this.#children.startProgram(this.#program, socket, conn);
      return;
    }
    if (this.#spareTarget > 0) {
      const handed = this.#handToSpare(socket, conn);
      this.#topUp();
      if (handed) return;
    }
    const spec: ChildSpec = { service, info };
    let child: Launched;
    try {
      // The native launcher (posix_spawn): the parent's cost no longer grows with its size.
      child = launch({
        file: process.execPath,
        argv: [process.execPath, ...CHILD_ENTRY, service.name, formatEndpoint(info.remote)],
        env: { ...this.#childEnv, TCPKIT_CHILD: JSON.stringify(spec) },
        socket,
        stderr: 'pipe',
      });
    } catch (err) {
      socket.destroy();
      this.#children.spawnFailed(conn, err);
      return;
    }
    this.#children.track(child, conn, this.#readReports(child.stderr, child.pid, () => conn), socket);
  }

  /** A program per connection started from here on a bare descriptor (../net/fast-path.ts decides). */
  servesDescriptors(): boolean {
    return this.#program?.startFd !== undefined;
  }

  /** The native path: the program starts on the accepted descriptor, which never becomes a net.Socket here. */
  serveDescriptor(conn: Connection, fd: number): void {
    void this.#children.startProgram(this.#program!, fd, conn);
  }

  /**
   * Read a Node child's or spare's stderr: its records become its connection's events,
   * other lines `stderr` lines (../workers/child-report.ts). Resolves at its end.
   */
  #readReports(stream: NodeJS.ReadableStream | null, pid: number, connOf: () => Connection | undefined): Promise<void> {
    const reader = new ReportReader(
      (report) => {
        const conn = connOf();
        if (conn) this.#reported(conn, pid, report);
        // A spare reports nothing before it has a connection; a record then is text like any other line.
        else this.#host.emit({ type: 'stderr', pid, text: report.type === 'log' ? report.reason : report.message });
      },
      (text) => this.#host.emit({ type: 'stderr', pid, id: connOf()?.info.id, text }),
    );
    return reader.read(stream);
  }

  /** A child's record, as the in-process models report the same call (connection/local.ts). */
  #reported(conn: Connection, pid: number, r: ChildReport): void {
    if (r.type === 'log') conn.log(r.reason, r.code);
    // conn.failed's event, with the stack for the JSON log (text lines leave it out).
    else this.#host.emit({ type: 'error', where: 'service', code: r.code, message: r.message, id: conn.info.id, pid, ...(r.stack !== undefined && { stack: r.stack }) });
  }

  /** A spare has exited (Node's waitpid): one that never served dies here; a serving one's end is the children's. */
  #exited(pid: number, code: number | null, signal: string | null): void {
    if (this.#spares.has(pid)) {
      this.#spares.delete(pid);
      this.#host.emit({ type: 'exit', pid, role: 'spare', exitcode: code, signal });
      if (!this.#closing) {
        this.#crashed++;
        this.#spareDied();
      }
    }
    if (this.#closing && this.#spares.size === 0) this.#sparesGone?.();
  }

  /** A spare could not be started: logged as `error where spawn`. */
  #spareFailed(err: unknown): void {
    this.#host.emit({ type: 'error', where: 'spawn', ...describeError(err, 'EIO') });
  }

  close(graceMs: number): Promise<void> {
    this.#closing = true;
    this.#spareRestarts.close();
    // Idle spares leave when their channel closes (a spare still starting is told when it is ready).
    for (const r of this.#spares.values()) if (r.state === 'ready' && r.child.connected) r.child.disconnect();
    const children = this.#children.close(graceMs);
    if (this.#spares.size === 0) return children;
    const spares = new Promise<void>((resolve) => {
      this.#sparesGone = () => {
        for (const t of this.#timers) clearTimeout(t);
        this.#timers.clear();
        resolve();
      };
      const grace = setTimeout(() => {
        for (const r of this.#spares.values()) r.child.kill('SIGTERM');
        const kill = setTimeout(() => {
          for (const r of this.#spares.values()) r.child.kill('SIGKILL');
        }, TERM_TO_KILL_MS);
        this.#timers.add(kill);
      }, graceMs);
      this.#timers.add(grace);
    });
    return Promise.all([children, spares]).then(() => undefined);
  }

  destroy(): void {
    this.#closing = true;
    this.#spareRestarts.close();
    this.#children.destroy();
    for (const r of this.#spares.values()) r.child.kill('SIGKILL');
  }

  stats(): ModelStats {
    const processes: ModelProcess[] = this.#children.rows();
    for (const r of this.#spares.values()) {
      processes.push({ pid: r.pid, threadId: 0, role: 'spare', state: r.state, connections: [], served: 0, startedAt: r.startedAt });
    }
    return { model: this.name, processes, crashed: this.#crashed + this.#children.crashed, spawned: this.#spawned + this.#children.spawned };
  }
}

/** process.env without unset entries, as the launcher takes a complete environment. */
function definedEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  return env;
}

export default (host: ModelHost): Model => new ForkModel(host);
