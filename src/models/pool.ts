/**
 * The supervisor shared by the two pool models, prefork (worker processes) and
 * threads (worker threads): start N workers, keep N running (a worker that dies is
 * restarted with backoff), recycle a worker after K connections (start the
 * replacement first, then drain the old one), turn what workers report into the
 * server's counts, and pass connections to the least busy worker in pass mode.
 *
 * A worker's states: starting → ready → draining → (exit). `stopping` is a worker
 * told to leave because the server is closing.
 *
 * Shared accept: a worker admits by itself with the server's admission unit (access
 * rules from its spec, the service's per-source table in shared memory, ids from the
 * blocks handed out here), keeps to its share of --max-conns, and reports accepts and
 * ends in batches; the pool replays each batch into the pipeline in order (adopt,
 * opened, closed), so the log, the counters and the per-worker counts are those of a
 * round trip, a batch later, with no message per connection. Each worker has a slot in
 * the pool's ledger (shared memory, ../net/shared-counts.ts) where it counts each
 * connection before serving it and records the per-source places it holds: when a
 * worker dies, the connections it had not reported are counted (host.unreported) and
 * its places given back.
 */
import type net from 'node:net';
import type { Connection, IncomingConnection } from '../connection/pipeline.js';
import { serviceLogEvent } from '../events.js';
import { detachFromServer } from '../net/internals.js';
import { BurstReporter, type AcceptError } from '../net/acceptor.js';
import { reserveConnectionIds } from '../connection/pipeline.js';
import { addTlsStats, emptyTlsStats, type TlsStats } from '../tls/gate.js';
import { decodeFromWorker, type BatchEntry, type FromWorker, type ToWorker, type WorkerSpec } from '../workers/messages.js';
import { ID_BLOCK } from '../workers/reports.js';
import { sharedMemory, WorkerLedger } from '../net/shared-counts.js';
import { describeError, ExitCode, TcpkitError } from '../errors.js';
import { readyWithin, RestartBackoff } from './supervision.js';
import { TERM_TO_KILL_MS } from '../options.js';
import type { Model, ModelHost, ModelName, ModelProcess, ModelStats } from './types.js';

/** Ledger cells (places a worker records) beyond its share of --max-conns: a burst libuv accepted past the share. */
const LEDGER_SLACK = 64;

/** One started worker, as the pool sees it: a process or a thread. */
export interface Member {
  readonly pid: number;
  readonly threadId: number;
  /** Send a message, with a socket to hand over in pass mode; `done` gets the error, if any. */
  send(msg: ToWorker, socket?: net.Socket, done?: (err: Error | null) => void): void;
  /** Ask the worker to stop now (SIGTERM for a process, terminate() for a thread). */
  stop(): void;
  /** Kill it now (SIGKILL for a process, terminate() for a thread). */
  kill(): void;
}

/** What a pool model's member factory is told about the worker it starts. */
export interface MemberEvents {
  /** A message as it arrived; the pool decodes it. */
  message(msg: unknown): void;
  exit(code: number | null, signal: string | null): void;
}

type WorkerState = 'starting' | 'ready' | 'draining' | 'stopping';

interface WorkerRecord {
  slot: number;
  member: Member;
  state: WorkerState;
  /** The connections it serves, by the server's id. */
  refs: Map<number, Connection>;
  /**
   * pass mode: our copies of sockets sent to this worker and not yet confirmed sent.
   * Should the worker die first, Node never calls those sends back; without this the
   * copies stay open and their peers wait forever.
   */
  unsent: Set<net.Socket>;
  accepted: number;
  served: number;
  startedAt: number;
  fatal: { code: string; message: string } | undefined;
  /** pass mode: connections it can hold at once (its descriptor room, from `ready`). */
  room: number;
  /** shared: its slot in the ledger, settled once it is gone. */
  ledgerSlot: number | undefined;
  /** Whether it said `drained` (it left when asked, with nothing unreported). */
  drained: boolean;
}

/** TLS counters of workers gone (kept so the totals never go back) and of each live one, by record. */
const retiredTls = new WeakMap<object, TlsStats>();
const workerTls = new WeakMap<WorkerRecord, TlsStats>();

/** Options the pool models resolve before constructing the pool. */
export interface PoolOptions {
  name: ModelName;
  role: 'worker' | 'thread';
  workers: number;
  accept: 'shared' | 'pass';
  maxConnsPerWorker: number;
}

/** The supervisor; prefork and threads each provide `spawn`. */
export abstract class PoolModel implements Model {
  readonly name: ModelName;
  protected readonly host: ModelHost;
  protected readonly pool: PoolOptions;
  readonly #workers = new Set<WorkerRecord>();
  /** Restarts of workers that died unasked, per slot (./supervision.ts). */
  readonly #restarts = new RestartBackoff();
  #held = false;
  #closing = false;
  #crashed = 0;
  #spawned = 0;
  #pending: IncomingConnection[] = [];
  #gone: Array<() => void> = [];
  /** start() waiting: called on every worker state change. */
  #recheck: (() => void) | undefined;
  readonly #acceptReports = new BurstReporter();
  /** shared: the workers' ledger (see the file comment); its descriptor closes once the pool is closed and empty. */
  #ledger: WorkerLedger | undefined;
  /** Messages from and to workers, for stats (see ModelStats.messages). */
  #fromWorkers = 0;
  #toWorkers = 0;

  constructor(host: ModelHost, pool: PoolOptions) {
    this.name = pool.name;
    this.host = host;
    this.pool = pool;
  }

  /** Start one worker with `spec`, reporting through `events` (every message it sent arrives before `exit`). */
  protected abstract spawn(spec: WorkerSpec, events: MemberEvents): Member;

  /** Release what the model holds for a worker once it has exited (a thread's descriptor). */
  protected abstract released(spec: WorkerSpec): void;

  /** shared: the workers accept (the server's own handle stays closed but its socket keeps listening); pass: the server does. */
  get accepts(): 'server' | 'own' {
    return this.pool.accept === 'shared' ? 'own' : 'server';
  }

  async start(): Promise<void> {
    if (this.pool.accept === 'shared') {
      this.host.listener.pause();
      // A slot for each worker and for each replacement started while its predecessor drains.
      this.#ledger = WorkerLedger.create(2 * this.pool.workers, Math.ceil(this.host.maxConns / this.pool.workers) + LEDGER_SLACK);
    }
    for (let slot = 0; slot < this.pool.workers; slot++) this.#start(slot);
    await this.#allReady();
  }

  #allReady(): Promise<void> {
    const check = (): boolean | Error => {
      const all = [...this.#workers];
      const fatal = all.find((w) => w.fatal !== undefined);
      if (fatal) {
        const { code, message } = fatal.fatal!;
        // A bad --handler is a usage error, as it would be in the server process.
        const exitCode = code === 'TCPKIT_INVALID_OPTION' ? ExitCode.USAGE : ExitCode.TEMPORARY;
        return new TcpkitError(code, `${this.name} worker cannot start: ${message}`, { exitCode });
      }
      return all.length > 0 && all.every((w) => w.state === 'ready');
    };
    return readyWithin(`${this.name}: workers`, check, (recheck) => {
      this.#recheck = recheck;
      return () => (this.#recheck = undefined);
    });
  }

  /** A slot's share of --max-conns, so that the workers together never exceed it. */
  #share(slot: number): number {
    const { workers } = this.pool;
    const max = this.host.maxConns;
    if (this.pool.accept === 'pass') return max;
    return Math.floor(max / workers) + (slot < max % workers ? 1 : 0);
  }

  #send(w: WorkerRecord, msg: ToWorker, socket?: net.Socket, done?: (err: Error | null) => void): void {
    this.#toWorkers++;
    w.member.send(msg, socket, done);
  }

  #start(slot: number): void {
    const ledgerSlot = this.#ledger?.claim();
    if (this.#ledger && ledgerSlot === undefined) {
      // Every slot belongs to a worker not yet gone: try again once one has exited.
      this.#restarts.retry(slot, () => this.#start(slot));
      return;
    }
    const { sources } = this.host;
    const spec: WorkerSpec = {
      service: this.host.service,
      mode: this.pool.accept,
      ...(this.#ledger &&
        ledgerSlot !== undefined && {
          access: [...this.host.access],
          ids: { from: reserveConnectionIds(ID_BLOCK), count: ID_BLOCK },
          counts: { table: sources.share(sharedMemory), ledger: this.#ledger.ref!, slot: ledgerSlot, perSource: sources.perSource, rate: sources.rate },
        }),
      backlog: this.host.listener.backlog,
      limit: this.#share(slot),
      maxConns: this.pool.maxConnsPerWorker,
      limits: this.host.limits,
      proxy: this.pool.accept === 'shared' ? this.host.proxy : undefined,
      // Shared mode terminates TLS in the workers; the keys follow in a `tls` message (never in the spec).
      ...(this.pool.accept === 'shared' && this.host.tls && { tls: this.host.tls.settings }),
    };
    const record: WorkerRecord = {
      slot,
      member: undefined as unknown as Member,
      state: 'starting',
      refs: new Map(),
      unsent: new Set(),
      accepted: 0,
      served: 0,
      startedAt: Date.now(),
      fatal: undefined,
      room: Infinity,
      ledgerSlot,
      drained: false,
    };
    try {
      const member = this.spawn(spec, {
        message: (msg) => this.#message(record, msg),
        exit: (code, signal) => {
          this.released(spec);
          this.#exit(record, code, signal);
        },
      });
      record.member = member;
      if (spec.tls && this.host.tls) this.#send(record, { type: 'tls', material: this.host.tls.material() });
    } catch (err) {
      this.host.emit({ type: 'error', where: 'spawn', ...describeError(err, 'EIO') });
      this.released(spec);
      if (ledgerSlot !== undefined) this.#ledger?.settle(ledgerSlot);
      this.#restarts.retry(slot, () => this.#start(slot));
      return;
    }
    this.#spawned++;
    this.#workers.add(record);
    this.host.emit({ type: 'spawn', pid: record.member.pid, role: this.#roleName(record) });
  }

  #roleName(w: WorkerRecord): string {
    return this.pool.role === 'thread' ? `thread${w.member.threadId}` : 'worker';
  }

  #message(w: WorkerRecord, raw: unknown): void {
    const host = this.host;
    const pid = w.member.pid;
    this.#fromWorkers++;
    let msg: FromWorker;
    try {
      msg = decodeFromWorker(raw);
    } catch (err) {
      // Not what a worker of this version sends: dropped, said once per message.
      host.emit({ type: 'error', where: 'worker', ...describeError(err, 'TCPKIT_SPEC'), pid });
      return;
    }
    switch (msg.type) {
      case 'tls-stats':
        workerTls.set(w, msg.stats);
        return;
      case 'ready':
        if (w.state !== 'starting') return;
        w.state = 'ready';
        w.room = msg.room ?? Infinity;
        if (this.#closing) {
          this.#stop(w);
          return;
        }
        if (this.#held && this.pool.accept === 'shared') this.#send(w, { type: 'pause' });
        this.#recheck?.();
        this.#flushPending();
        return;
      case 'batch':
        for (const entry of msg.entries) this.#replay(w, entry);
        this.#maybeRecycle(w);
        return;
      case 'need-ids':
        this.#send(w, { type: 'ids', from: reserveConnectionIds(ID_BLOCK), count: ID_BLOCK });
        return;
      case 'closed':
        this.#ended(w, msg.id);
        // pass mode: a worker that was full has room again for what the server holds.
        if (this.#pending.length > 0) this.#flushPending();
        return;
      case 'log': {
        const conn = w.refs.get(msg.id);
        if (conn) conn.log(msg.reason, msg.code);
        // A program's last stderr lines can arrive after its connection's `closed` (the pipe drains after the
        // exit): still logged, as the `stderr` line they are.
        else this.host.emit(serviceLogEvent(msg.id, w.member.pid, msg.reason, msg.code));
        return;
      }
      case 'failed':
        w.refs.get(msg.id)?.failed(msg.code, msg.message);
        return;
      case 'fatal':
        w.fatal = { code: msg.code, message: msg.message };
        host.emit({ type: 'error', where: 'worker', code: msg.code, message: msg.message, pid });
        this.#recheck?.();
        w.member.stop();
        return;
      case 'drained':
        w.drained = true;
        // A thread cannot safely exit by itself with messages in flight; a process exits on its own.
        if (this.pool.role === 'thread') w.member.stop();
        return;
      case 'event': {
        // Every worker backs off on its own; the server logs one line per burst for all of them.
        const e = msg.event;
        if (e.type === 'error' && e.where === 'accept') {
          const err: AcceptError = Object.assign(new Error(e.message), { code: e.code, suppressed: e.suppressed });
          const report = this.#acceptReports.take(err);
          if (report) this.host.emit({ ...e, suppressed: report.suppressed ?? 0 });
          return;
        }
        this.host.emit(e);
        return;
      }
    }
  }

  /** One entry of a worker's batch, in the order the worker saw it. */
  #replay(w: WorkerRecord, entry: BatchEntry): void {
    switch (entry.k) {
      case 'open': {
        const conn = this.host.adopt(entry.info);
        w.accepted++;
        w.refs.set(entry.info.id, conn);
        conn.opened(w.member.pid);
        return;
      }
      case 'end':
        this.#ended(w, entry.id, entry.at);
        return;
      case 'refused':
        this.host.emit(entry.event);
        return;
    }
  }

  #ended(w: WorkerRecord, id: number, at?: number): void {
    const conn = w.refs.get(id);
    if (!conn) return;
    w.refs.delete(id);
    w.served++;
    conn.closed(null, null, at);
  }

  /** After K connections: start the replacement first, then drain the old worker. */
  #maybeRecycle(w: WorkerRecord): void {
    const k = this.pool.maxConnsPerWorker;
    if (k === 0 || w.accepted < k || w.state !== 'ready' || this.#closing) return;
    w.state = 'draining';
    this.#start(w.slot);
    this.#send(w, { type: 'drain' });
  }

  #exit(w: WorkerRecord, code: number | null, signal: string | null): void {
    this.#workers.delete(w);
    const tlsSeen = workerTls.get(w);
    if (tlsSeen) retiredTls.set(this, addTlsStats(retiredTls.get(this) ?? emptyTlsStats(), { ...tlsSeen, pending: 0 }));
    const pid = w.member.pid;
    // Its connections ended with it (killed, or it crashed): report each.
    for (const conn of w.refs.values()) conn.closed(code, signal);
    w.refs.clear();
    this.#settle(w, code, signal);
    for (const socket of w.unsent) socket.destroy();
    w.unsent.clear();
    const failed = signal !== null || code !== 0;
    if (failed) this.#crashed++;
    this.host.emit({ type: 'exit', pid, role: this.#roleName(w), exitcode: code, signal });
    if (!this.#closing && w.fatal === undefined && (w.state === 'ready' || w.state === 'starting')) {
      // Died unasked: keep the pool at N, backing off when the slot keeps dying.
      this.#restarts.retry(w.slot, () => this.#start(w.slot), Date.now() - w.startedAt);
    }
    if (this.#workers.size === 0) {
      if (this.#closing) this.#ledger?.close();
      for (const resolve of this.#gone.splice(0)) resolve();
    }
  }

  /**
   * shared: what the worker's ledger slot says once it is gone. The places it still
   * held are given back; connections it counted but never reported (a worker killed
   * between two batches: at most a batch's worth) are counted as accepted and ended,
   * and said in one line with their number, never silently.
   */
  #settle(w: WorkerRecord, code: number | null, signal: string | null): void {
    if (w.ledgerSlot === undefined || !this.#ledger) return;
    const { accepted, places } = this.#ledger.settle(w.ledgerSlot);
    w.ledgerSlot = undefined;
    for (const place of places) this.host.sources.release(place);
    const lost = accepted - w.accepted;
    if (lost <= 0) return;
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    // `unreported` makes the pipeline, the metrics and the log count them (see ServerEvent).
    this.host.emit({ type: 'error', where: 'worker', code: 'TCPKIT_WORKER_LOST', pid: w.member.pid, unreported: lost, message: `${this.#roleName(w)} ended (${how}) with ${lost} connection${lost === 1 ? '' : 's'} unreported (accepted since its last report); counted as accepted and ended` });
  }

  /** pass mode: the server accepted and admitted it; hand the socket to the least busy ready worker. */
  dispatch(conn: IncomingConnection): void {
    const w = this.#leastBusy();
    if (!w) {
      // No worker can take it now (all restarting, or out of descriptors): hold it, and let the rest wait in the backlog.
      this.#pending.push(conn);
      this.host.listener.pause();
      if ([...this.#workers].some((x) => x.state === 'ready')) this.#workersFull();
      return;
    }
    const { socket, info } = conn;
    w.refs.set(info.id, conn);
    w.accepted++;
    conn.opened(w.member.pid);
    // Send a copy (keepOpen) and close ours once sent.
    detachFromServer(socket);
    w.unsent.add(socket);
    this.#send(w, { type: 'connection', info, env: conn.env }, socket, (err) => {
      w.unsent.delete(socket);
      socket.destroy();
      if (err && w.refs.delete(info.id)) {
        this.host.emit({ type: 'error', where: 'pass', ...describeError(err, 'EIO'), id: info.id, pid: w.member.pid });
        conn.closed();
      }
    });
    this.#maybeRecycle(w);
  }

  /** pass mode: every ready worker is at its descriptor room; reported as the acceptor reports EMFILE, once per burst. */
  #workersFull(): void {
    const held = [...this.#workers].reduce((n, w) => n + w.refs.size, 0);
    const err: AcceptError = Object.assign(new Error(`workers hold ${held} connections, as many as their descriptors allow; accepting paused, new connections wait in the backlog`), { code: 'EMFILE' });
    const report = this.#acceptReports.take(err);
    if (report) this.host.emit({ type: 'error', where: 'accept', code: 'EMFILE', suppressed: report.suppressed ?? 0, message: report.message });
  }

  #leastBusy(): WorkerRecord | undefined {
    let best: WorkerRecord | undefined;
    for (const w of this.#workers) {
      // A worker with no descriptor room left would lose the socket in recvmsg (EMFILE): skip it.
      if (w.state !== 'ready' || w.refs.size >= w.room) continue;
      if (!best || w.refs.size < best.refs.size) best = w;
    }
    return best;
  }

  #flushPending(): void {
    if (this.pool.accept !== 'pass') return;
    while (this.#pending.length > 0 && this.#leastBusy()) this.dispatch(this.#pending.shift()!);
    if (this.#pending.length === 0 && !this.#held && !this.#closing) this.host.listener.resume();
  }

  pauseAccept(): void {
    this.#held = true;
    if (this.pool.accept === 'pass') this.host.listener.pause();
    else for (const w of this.#workers) if (w.state === 'ready') this.#send(w, { type: 'pause' });
  }

  resumeAccept(): void {
    this.#held = false;
    if (this.pool.accept === 'pass') {
      if (this.#pending.length === 0) this.host.listener.resume();
    } else for (const w of this.#workers) if (w.state === 'ready') this.#send(w, { type: 'resume' });
  }

  #stop(w: WorkerRecord): void {
    if (w.state === 'stopping') return;
    w.state = 'stopping';
    this.#send(w, { type: 'drain' });
  }

  /**
   * No more restarts, and the connections held for a worker are closed (their places
   * given back). With no worker left to exit (all dead and awaiting a restart, or none
   * could be spawned) the ledger's descriptor closes here: #exit will not run to close it.
   */
  #stopStarting(): void {
    this.#closing = true;
    this.#restarts.close();
    for (const c of this.#pending.splice(0)) {
      c.socket.destroy();
      c.closed();
    }
    if (this.#workers.size === 0) this.#ledger?.close();
  }

  close(graceMs: number): Promise<void> {
    this.#stopStarting();
    if (this.#workers.size === 0) return Promise.resolve();
    // Workers still starting are stopped when they report ready.
    for (const w of this.#workers) if (w.state !== 'starting') this.#stop(w);
    return new Promise((resolve) => {
      const timers: NodeJS.Timeout[] = [];
      this.#gone.push(() => {
        for (const t of timers) clearTimeout(t);
        resolve();
      });
      timers.push(
        setTimeout(() => {
          for (const w of this.#workers) w.member.stop();
          timers.push(setTimeout(() => this.destroy(), TERM_TO_KILL_MS));
        }, graceMs),
      );
    });
  }

  destroy(): void {
    this.#stopStarting();
    for (const w of this.#workers) {
      this.host.emit({ type: 'kill', pid: w.member.pid, signal: 'SIGKILL', reason: 'destroy' });
      w.member.kill();
    }
  }

  /** The TLS counters of every worker, those gone included. */
  tlsStats(): TlsStats | undefined {
    if (!this.host.tls || this.pool.accept !== 'shared') return undefined;
    const total = addTlsStats(emptyTlsStats(), retiredTls.get(this) ?? emptyTlsStats());
    total.pending = 0;
    for (const w of this.#workers) {
      const st = workerTls.get(w);
      if (st) addTlsStats(total, st);
    }
    return total;
  }

  /** New TLS material (SIGHUP): to every live worker; new ones get it at start. */
  tlsReload(): void {
    if (!this.host.tls || this.pool.accept !== 'shared') return;
    const material = this.host.tls.material();
    for (const w of this.#workers) if (w.state === 'starting' || w.state === 'ready') this.#send(w, { type: 'tls', material });
  }

  stats(): ModelStats {
    const processes: ModelProcess[] = [...this.#workers].map((w) => ({
      pid: w.member.pid,
      threadId: w.member.threadId,
      role: this.pool.role,
      state: w.state,
      connections: [...w.refs.keys()],
      served: w.served,
      startedAt: w.startedAt,
    }));
    return { model: this.name, processes, crashed: this.#crashed, spawned: this.#spawned, messages: { fromWorkers: this.#fromWorkers, toWorkers: this.#toWorkers } };
  }
}
