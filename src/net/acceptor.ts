/**
 * The one accept loop of tcpkit: pausable accept on any listening descriptor, with
 * a descriptor-headroom check, EMFILE backoff and an optional PROXY gate. The
 * server's Listener accepts through one; so does every pool worker (a prefork
 * process or a thread) on its own duplicate of the listening socket.
 *
 * Pausing. Node cannot stop accepting on a listening socket while keeping it open.
 * The acceptor keeps a descriptor of the socket (`fd`) and listens on a fresh
 * duplicate of it: pausing closes libuv's handle (and with it that duplicate), the
 * socket stays in LISTEN through `fd` and the kernel queues new connections in the
 * backlog; resuming listens on another duplicate. Nothing is refused or dropped.
 *
 * Descriptor exhaustion. When accept(2) fails with EMFILE, libuv (under Node's
 * net.Server) closes a reserved descriptor, accepts every connection waiting in the
 * backlog and closes it at once, and reports nothing: under `ulimit -n 128`, 300
 * connections to an event-model server saw 192 of them closed unserved and no log
 * line. So the acceptor never lets accept reach the limit: descriptors are handed
 * out lowest-first, so an accepted socket numbered N means N descriptors below it
 * are open. When that number comes within DESCRIPTOR_HEADROOM of the soft limit
 * (RLIMIT_NOFILE), the connection is still served, accepting backs off for
 * BACKOFF_MS (connections wait in the backlog, as with pause), and one `EMFILE`
 * error is reported per REPORT_MS with the count of backoffs it stands for.
 *
 * What the fd number does not show. A connection handed on to a process keeps
 * descriptors here after its socket is closed (a launched child's pidfd and stderr
 * pipe; a fork spare's IPC channel and pipe), and the socket's number is then reused,
 * so accepted numbers stay low while those descriptors pile up above them (under
 * `ulimit -n 64` the fork model and `--exec` under every model reset connections with
 * `spawn EMFILE`). So the estimate is the accepted number plus what launched children
 * hold (the launcher counts them: ../net/launcher.ts launchedDescriptors) plus what
 * owners declare they hold or are about to open (countDescriptors: the fork model's
 * spares and programs being started), summed over the process (serve --config runs
 * several servers in one); near the limit it is checked against the real count.
 *
 * The owner's wish (pause/resume) and the backoff are separate: the acceptor
 * accepts only while it is wanted and not backing off, so an owner that resumes
 * often (a pool worker does after every connection) cannot cut a backoff short.
 */
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import { isMainThread } from 'node:worker_threads';
import { DEFAULT_BACKLOG, REPORT_MS } from '../options.js';
import { fdutil } from './fdutil.js';
import { hasLaunched, launchedDescriptors, queuedDescriptors } from './launcher.js';
import { socketFd, socketOfAccepted } from './internals.js';
import { ProxyGate, type ProxyGateHandlers, type ProxyGateOptions } from './proxy-gate.js';
import type { ConnectionEnds, Endpoint } from '../address.js';

/**
 * Receives each accepted connection, paused: with `announced`, the ends a PROXY header
 * named (the connection's identity from here on, carried by the ConnectionInfo it is
 * admitted with); without, the socket's own ends stand.
 */
export type ConnectionHandler = (socket: net.Socket, announced?: ConnectionEnds) => void;

/**
 * A connection accepted natively (native/accept.c): its descriptor (blocking,
 * close-on-exec, the receiver's to close or hand on) and the peer's address from the
 * accept itself; the local end only when the listener is bound to a wildcard.
 */
export interface AcceptedRecord {
  fd: number;
  /** The peer's address and port ('' and 0 on a UNIX listener, whose peers are known by pid, uid and gid). */
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6' | 'unix';
  /** A UNIX peer's credentials (SO_PEERCRED, read in the same batch). */
  pid?: number;
  uid?: number;
  gid?: number;
  localAddress?: string;
  localPort?: number;
  localFamily?: 'IPv4' | 'IPv6' | 'unix';
  /** Behind a PROXY gate: the ends its header named (absent: served as itself). */
  announced?: ConnectionEnds;
}

/**
 * A record's real ends, as the accept gave them: the peer (on a UNIX listener its credentials), and
 * the local end `local` (the listener's, when bound to one address) or else the record's own.
 */
export function recordEnds(r: AcceptedRecord, local: Endpoint | undefined): { local: Endpoint; remote: Endpoint } {
  return {
    local: local ?? { address: r.localAddress ?? '', port: r.localPort ?? 0, family: r.localFamily ?? r.family },
    remote: r.family === 'unix' ? { address: '', port: 0, family: 'unix', pid: r.pid, uid: r.uid, gid: r.gid } : { address: r.address, port: r.port, family: r.family },
  };
}

/** Receives each accepted record, in order; the acceptor stops handing them on once paused (see onRecords). */
export type RecordHandler = (record: AcceptedRecord) => void;

/** The native accept watch (native/accept.c). */
interface NativeAccept {
  acceptWatch(fd: number, wantLocal: boolean, perConnection: number, cb: (records: AcceptedRecord[], errno: number) => void): object;
  acceptStart(h: object, stopAt: number): void;
  acceptStop(h: object): void;
  /** Only the stopAt of a watch that may be polling (acceptStart again would take it out of epoll and back: two system calls). */
  acceptLimit(h: object, stopAt: number): void;
  /** Accepts per wake-up at most (1..64; default 64). */
  acceptBatch(h: object, max: number): void;
  acceptClose(h: object): void;
}
const nativeAccept = fdutil as unknown as NativeAccept;
const errnoName = new Map<number, string>(Object.entries(os.constants.errno).map(([k, v]) => [v, k]));

/** Descriptors kept free below the limit: a fork child's pipes, a log file, the admin server. Fixed at 16. */
export const DESCRIPTOR_HEADROOM = 16;
/** How long accepting stops once descriptors run short. Fixed at 100 ms. */
export const BACKOFF_MS = 100;
/** At most one descriptor-exhaustion report per this many ms (src/options.ts). */
export { REPORT_MS };

/** The soft RLIMIT_NOFILE of this process, from /proc/self/limits; Infinity when unknown or unlimited. */
export function descriptorLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return m && m[1] !== 'unlimited' ? Number(m[1]) : Infinity;
  } catch {
    return Infinity;
  }
}

/** Descriptors this process holds now (0 when /proc is not there: then only the fd-number check guards). */
export function openDescriptors(): number {
  try {
    return fs.readdirSync('/proc/self/fd').length - 1; // minus the directory's own descriptor
  } catch {
    return 0;
  }
}

/** Descriptors a connection's owner keeps in this process beyond the accepted sockets still open here. */
export interface DescriptorUse {
  /** Open now for connections being served (a child's pidfd and pipe, a spare's channel), sockets not included. */
  held: number;
  /** Still to be opened for connections already accepted (a program started once its environment is known). */
  reserved: number;
}

/** Every owner's declared use in this process: one descriptor table, whoever's acceptor fills it. */
const owners = new Set<() => DescriptorUse>();

/**
 * In a worker thread the descriptor table is the process's, but the launcher's count is
 * this thread's alone (each thread loads its own): once this thread's service launches
 * programs, the other threads' children may be there too, unseen, so only the real
 * count tells (a readdir of /proc/self/fd per accept, in that case only).
 */
const unseenChildren = (): boolean => !isMainThread && hasLaunched();

/** Nothing declared: one shared answer (declared() runs for every connection). */
const NONE: DescriptorUse = Object.freeze({ held: 0, reserved: 0 });

/** The sum of what every owner declared, and what launched children hold (../net/launcher.ts). */
function declared(): DescriptorUse {
  let held = launchedDescriptors();
  let reserved = queuedDescriptors();
  if (owners.size === 0 && held === 0 && reserved === 0) return NONE;
  for (const use of owners) {
    const u = use();
    held += u.held;
    reserved += u.reserved;
  }
  return { held, reserved };
}

/** An accept-side error: EMFILE backoffs carry how many were folded into this one report. */
export interface AcceptError extends NodeJS.ErrnoException {
  /** Backoffs since the previous report that were not reported on their own. */
  suppressed?: number;
}

/**
 * One report per REPORT_MS: the rest of a burst is counted and folded into the next
 * report's `suppressed`. The pool uses one more of these to fold its workers'
 * reports into one line per burst for the whole server.
 */
export class BurstReporter {
  #last = 0;
  #suppressed = 0;

  /** Count one occurrence; returns the error to report (with `suppressed` set), or undefined while in a burst. */
  take(err: AcceptError): AcceptError | undefined {
    const now = Date.now();
    if (now - this.#last < REPORT_MS) {
      this.#suppressed += 1 + (err.suppressed ?? 0);
      return undefined;
    }
    err.suppressed = this.#suppressed + (err.suppressed ?? 0);
    this.#last = now;
    this.#suppressed = 0;
    return err;
  }

  /** Count an occurrence that is never reported on its own (a backoff extended). */
  count(): void {
    this.#suppressed++;
  }
}

/** Acceptor states, printable by status views: `paused` (not wanted), `backoff` (descriptors short), `accepting`, `closed`. */
export type AcceptorState = 'accepting' | 'backoff' | 'paused' | 'closed';

/** How an Acceptor is set up. */
export interface AcceptorOptions {
  /** listen(2) backlog re-applied by every listen on a duplicate. Default DEFAULT_BACKLOG. */
  backlog?: number;
  /** Close `fd` on close(): true for the descriptor's owner only. Default false. */
  ownsFd?: boolean;
  /** The soft descriptor limit; tests lower it. Default descriptorLimit(). */
  limit?: number;
}

/**
 * Pausable accept on a listening descriptor. Starts paused: call resume() (or
 * onConnection, for the Listener) to accept. Emits each accepted connection paused
 * (`pauseOnConnect`): the caller decides who reads it.
 */
export class Acceptor {
  readonly backlog: number;
  readonly #ownsFd: boolean;
  readonly #limit: number;
  #fd: number;
  #server: net.Server | undefined;
  #wanted = false;
  #backingOff = false;
  #closed = false;
  #backoffTimer: NodeJS.Timeout | undefined;
  /** The highest descriptor number accepted lately: resume() checks headroom only when it was near the limit. */
  #lastFd = -1;
  readonly #reports = new BurstReporter();
  #onConnection: ConnectionHandler = (s) => s.destroy();
  #onError: (err: AcceptError) => void = () => {};
  #onAccept: () => void = () => {};
  #gate: ProxyGate | undefined;
  #use: (() => DescriptorUse) | undefined;
  /** Native mode (onRecords): the record handler, the watch once made, and records accepted while pausing. */
  #onRecord: RecordHandler | undefined;
  #wantLocal = false;
  #local: Endpoint | undefined;
  /** Descriptors each connection will open soon after its accept (a batch stops early enough for them). */
  #perConnection = 0;
  #watch: object | undefined;
  /** Accepts per wake-up (native mode): 64, or 1 for sockets (onNativeSockets). */
  #perWake = 64;
  #watching = false;
  #held: AcceptedRecord[] = [];
  #drain: NodeJS.Immediate | undefined;

  constructor(fd: number, options: AcceptorOptions = {}) {
    this.#fd = fd;
    this.backlog = options.backlog ?? DEFAULT_BACKLOG;
    this.#ownsFd = options.ownsFd ?? false;
    this.#limit = options.limit ?? descriptorLimit();
  }

  get state(): AcceptorState {
    if (this.#closed) return 'closed';
    if (!this.#wanted) return 'paused';
    return this.#backingOff ? 'backoff' : 'accepting';
  }

  /** The listening descriptor this acceptor listens through (valid until close). */
  get fd(): number {
    return this.#fd;
  }

  /** Connections accepted and still waiting for their PROXY header. */
  get pending(): number {
    return this.#gate?.pending ?? 0;
  }

  /** Who receives accepted connections (after the PROXY gate, if any, with the ends its header named). */
  onConnection(handler: ConnectionHandler): void {
    this.#onConnection = handler;
  }

  /**
   * Called after every accept, before the PROXY header is read: an owner that bounds
   * what it holds (a pool worker's share of --max-conns) counts `pending` from here.
   */
  onAccept(handler: () => void): void {
    this.#onAccept = handler;
  }

  /**
   * Count what the receiver of the connections keeps open for them beyond their
   * sockets (see the file comment), so accepting backs off before a launch would run
   * out of descriptors. Until close(); `undefined` stops counting. Default: nothing.
   */
  countDescriptors(use: (() => DescriptorUse) | undefined): void {
    if (this.#use) owners.delete(this.#use);
    this.#use = use;
    if (use && !this.#closed) owners.add(use);
  }

  /**
   * Accept natively from now on (native/accept.c): no net.Socket, the peer's address from
   * accept4 itself, one batch per readiness; `handler` gets each record (`wantLocal`: with
   * the local end, for a listener bound to a wildcard). Pausing stops the watch; records of
   * a batch that arrive after a pause wait here, in order, until resume (nothing accepted
   * is dropped). Headroom and EMFILE backoff as for sockets. With acceptProxyProtocol each
   * record passes the PROXY gate first (its header read off the bare descriptor) and goes on
   * with the ends the header named (`announced`). `perConnection`: descriptors each
   * connection opens here soon after (a program's pidfd and pipe), so a batch stops before
   * they would run out. `local`: the listener's fixed local end, when bound to one address
   * (else records carry theirs, `wantLocal`). Call while paused.
   */
  onRecords(handler: RecordHandler, wantLocal: boolean, perConnection: number, local?: Endpoint): void {
    this.#onRecord = handler;
    this.#wantLocal = wantLocal;
    this.#local = local;
    this.#perConnection = perConnection;
  }

  /**
   * Accept natively (as onRecords), but hand each connection on as a paused net.Socket made
   * on its descriptor, to the same onConnection handler (and PROXY gate) as sockets from
   * Node's accept: the peer's address comes from accept4 and is already in the socket's
   * cache (./internals.ts socketOfAccepted), so identifying it makes no getpeername. `local`:
   * the listener's fixed local end (a listener bound to one address); without it each
   * connection's local end comes with the batch (getsockname there). The path decision
   * (./fast-path.ts `native-socket`) says when. `SocketClass`: what to build, net.Socket
   * (default) or a subclass (../connection/run.ts ServedSocket). Call while paused.
   */
  onNativeSockets(local: Endpoint | undefined, SocketClass: typeof net.Socket = net.Socket): void {
    this.onRecords((r) => this.#socketOf(r, local, SocketClass), local === undefined, 0);
    // One per wake-up, as libuv accepts for net.Server: a batch ends only at accept4's EAGAIN, a failing call per
    // wake-up; the listening socket stays readable while more wait, and the next turn of the loop takes the next.
    this.#perWake = 1;
  }

  /** A record as a net.Socket, handed on as the socket path hands one on; a descriptor that cannot become one is closed and reported. */
  #socketOf(r: AcceptedRecord, local: Endpoint | undefined, SocketClass: typeof net.Socket): void {
    let socket: net.Socket;
    try {
      // The record carries address, port and family: Node's peer cache takes it as it is (its fd field is never read there).
      const own = local ?? (r.localAddress === undefined ? undefined : { address: r.localAddress, port: r.localPort ?? 0, family: r.localFamily ?? r.family });
      socket = socketOfAccepted(r.fd, r, own, SocketClass);
    } catch (err) {
      fdutil.close(r.fd);
      this.#onError(err as AcceptError);
      return;
    }
    if (this.#gate) this.#gate.take(socket);
    else this.#onConnection(socket);
  }

  /** Accept errors (EMFILE, ...): accepting goes on; the owner decides what to log. */
  onError(handler: (err: AcceptError) => void): void {
    this.#onError = handler;
  }

  /**
   * Read a PROXY protocol header from every connection before handing it on: the
   * handler then gets the socket with the header consumed (and only the header) and
   * the ends the balancer named, as its second argument. A missing, bad or
   * late header closes that connection and is reported to `onRefuse`. Call before
   * connections arrive; `undefined` turns it off.
   */
  acceptProxyProtocol(options: ProxyGateOptions | undefined, onRefuse: ProxyGateHandlers['refuse'] = () => {}): void {
    this.#gate?.destroy();
    this.#gate = options && new ProxyGate(options, { pass: (socket, announced) => this.#onConnection(socket, announced), refuse: onRefuse });
  }

  /** Resolves once no accepted connection is still waiting for its PROXY header. */
  settled(): Promise<void> {
    return this.#gate?.settled() ?? Promise.resolve();
  }

  /** Close the connections still waiting for their PROXY header. */
  abortPending(): void {
    this.#gate?.destroy();
  }

  /** Stop accepting; new connections wait in the kernel's backlog. Idempotent. */
  pause(): void {
    this.#wanted = false;
    this.#stopListening();
  }

  /** Accept (again), unless backing off: then once the backoff is over. Idempotent. */
  resume(): void {
    if (this.#closed) return;
    this.#wanted = true;
    if (this.#backingOff || this.#server || this.#watching || this.#drain) return;
    // Resumed right after a connection near the limit: check the real count before accepting into EMFILE.
    if (this.#estimate(this.#lastFd) >= this.#limit - 2 * DESCRIPTOR_HEADROOM || unseenChildren()) {
      const open = this.#counted();
      if (open >= this.#limit - DESCRIPTOR_HEADROOM) return this.#backoff(open);
    }
    this.#listen();
  }

  /**
   * Native mode: the records accepted but not yet handed on (a batch that arrived as it paused),
   * now the caller's, in order; a worker about to close its acceptor serves them rather than drop them.
   */
  takeHeld(): AcceptedRecord[] {
    return this.#held.splice(0);
  }

  /** Stop for good; close `fd` if this acceptor owns it. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.pause();
    this.#closed = true;
    if (this.#use) owners.delete(this.#use);
    this.#backingOff = false;
    clearTimeout(this.#backoffTimer);
    clearImmediate(this.#drain);
    this.#drain = undefined;
    if (this.#watch) nativeAccept.acceptClose(this.#watch);
    this.#watch = undefined;
    // Accepted but never handed on (closing while paused at the limit): ours to close.
    for (const r of this.#held.splice(0)) fdutil.close(r.fd);
    if (this.#ownsFd) fdutil.close(this.#fd);
    this.#fd = -1;
  }

  /**
   * Native mode: hand on what waits from an earlier batch, then watch the listening socket.
   * The waiting records go on from the next turn of the loop, not from inside resume(): the
   * owner resuming (the pipeline below its limit) must have finished before the next record
   * can make it pause again.
   */
  #watchNative(): void {
    if (!this.#wanted || this.#backingOff || this.#closed) return;
    if (this.#held.length > 0) {
      this.#drain ??= setImmediate(() => {
        this.#drain = undefined;
        while (this.#held.length > 0 && this.#wanted && !this.#backingOff && !this.#closed) {
          this.#onRecord!(this.#held.shift()!);
          this.#onAccept();
        }
        if (this.#held.length === 0) this.#watchNative();
      });
      return;
    }
    if (!this.#watch) {
      this.#watch = nativeAccept.acceptWatch(this.#fd, this.#wantLocal, this.#perConnection, (records, errno) => this.#batch(records, errno));
      if (this.#perWake !== 64) nativeAccept.acceptBatch(this.#watch, this.#perWake);
    }
    nativeAccept.acceptStart(this.#watch, this.#stopAt());
    this.#watching = true;
  }

  /** The descriptor number at which a native batch stops (the headroom check below then decides). */
  #stopAt(): number {
    const { held, reserved } = declared();
    const limit = Number.isFinite(this.#limit) ? this.#limit : 0x7fffffff;
    return Math.max(0, Math.min(0x7fffffff, limit - DESCRIPTOR_HEADROOM - held - reserved));
  }

  /** One readiness: the records in order, the headroom check on the highest descriptor, EMFILE as a backoff. */
  #batch(records: AcceptedRecord[], errno: number): void {
    let top = -1;
    for (const r of records) if (r.fd > top) top = r.fd;
    if (top >= 0) {
      this.#lastFd = top;
      const { held, reserved } = declared();
      if (top + held + reserved >= this.#limit - DESCRIPTOR_HEADROOM) {
        const open = held + reserved === 0 ? top + 1 : openDescriptors() + reserved;
        if (open >= this.#limit - DESCRIPTOR_HEADROOM) this.#backoff(open);
      }
    }
    if (errno !== 0) {
      const code = errnoName.get(errno) ?? 'EIO';
      if (code === 'EMFILE' || code === 'ENFILE' || code === 'ENOBUFS' || code === 'ENOMEM') this.#backoff(undefined, code);
      else this.#onError(Object.assign(new Error(`accept ${code}`), { code }));
    }
    for (let i = 0; i < records.length; i++) {
      const gate = this.#gate;
      if (gate && !this.#closed) {
        // Its header first, as on the socket path: the gate bounds what waits for one; a record goes on once it passes.
        const r = records[i]!;
        gate.takeDescriptor(r.fd, recordEnds(r, this.#local), (announced) => this.#passed(announced ? { ...r, announced } : r));
        this.#onAccept();
        continue;
      }
      // Paused (the limit) by the previous record: the rest wait, accepted, for resume().
      if (this.#closed) {
        for (const r of records.slice(i)) fdutil.close(r.fd);
        break;
      }
      if (!this.#wanted) {
        this.#held.push(...records.slice(i));
        break;
      }
      this.#onRecord!(records[i]!);
      this.#onAccept();
    }
    // What the records just handed on will hold (queued spawns) counts for the next batch.
    if (this.#watching && this.#watch) nativeAccept.acceptLimit(this.#watch, this.#stopAt());
  }

  /** A record whose PROXY header the gate took: on now, or held in order until resume() (nothing accepted is dropped). */
  #passed(r: AcceptedRecord): void {
    if (this.#closed) fdutil.close(r.fd);
    else if (!this.#wanted || this.#held.length > 0 || this.#backingOff) this.#held.push(r);
    else this.#onRecord!(r);
  }

  #listen(): void {
    if (this.#onRecord) return this.#watchNative();
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
    // A connection accepted just before a pause is still handed on: nothing accepted is ever dropped.
    server.on('connection', (socket: net.Socket) => {
      const fd = socketFd(socket);
      this.#lastFd = fd;
      const { held, reserved } = declared();
      const unseen = unseenChildren();
      if (fd + held + reserved >= this.#limit - DESCRIPTOR_HEADROOM || unseen) {
        // Declared descriptors may sit below `fd` too: only the real count decides.
        const open = held + reserved === 0 && !unseen ? fd + 1 : openDescriptors() + reserved;
        if (open >= this.#limit - DESCRIPTOR_HEADROOM) this.#backoff(open);
      }
      if (this.#gate) this.#gate.take(socket);
      else this.#onConnection(socket);
      this.#onAccept();
    });
    server.on('error', (err: NodeJS.ErrnoException) => {
      // Should libuv report EMFILE after all (its reserve descriptor gone), back off the same way rather than retry at once.
      if (err.code === 'EMFILE' || err.code === 'ENFILE') this.#backoff(undefined, err.code);
      else this.#onError(err);
    });
    // Listening on a descriptor that already listens only re-applies the backlog (for every holder of the
    // socket); it cannot fail with EADDRINUSE. Node reads the backlog of the `{ fd }` form only positionally.
    server.listen({ fd: fdutil.dup(this.#fd) } as net.ListenOptions, this.backlog);
    this.#server = server;
  }

  /**
   * The descriptor number in use once `fd` is, as if what owners hold elsewhere and are
   * about to open sat above it: every number below `fd` is taken (they are handed out
   * lowest-first). An upper bound when some of those sit below `fd`.
   */
  #estimate(fd: number): number {
    const { held, reserved } = declared();
    return fd + held + reserved;
  }

  /** The real count of open descriptors, plus those owners are about to open. */
  #counted(): number {
    return openDescriptors() + declared().reserved;
  }

  #stopListening(): void {
    if (this.#watching && this.#watch) nativeAccept.acceptStop(this.#watch);
    this.#watching = false;
    const server = this.#server;
    this.#server = undefined;
    server?.close();
  }

  /** Stop accepting for BACKOFF_MS because descriptors run short; report once per REPORT_MS. */
  #backoff(open: number | undefined, code = 'EMFILE'): void {
    if (!this.#backingOff) {
      this.#backingOff = true;
      this.#stopListening();
      this.#backoffTimer = setTimeout(() => this.#retry(), BACKOFF_MS);
    }
    const held = open === undefined ? 'accept failed' : `${open} of ${this.#limit} descriptors open`;
    const err: AcceptError = new Error(`${held}; accepting paused ${BACKOFF_MS} ms, new connections wait in the backlog`);
    err.code = code;
    const report = this.#reports.take(err);
    if (report) this.#onError(report);
  }

  /** After a backoff: accept again only once descriptors are free again, else wait another BACKOFF_MS (counted, not reported). */
  #retry(): void {
    if (this.#closed) return;
    if (this.#counted() >= this.#limit - DESCRIPTOR_HEADROOM) {
      this.#reports.count();
      this.#backoffTimer = setTimeout(() => this.#retry(), BACKOFF_MS);
      return;
    }
    this.#backingOff = false;
    this.#lastFd = -1;
    if (this.#wanted) this.#listen();
  }
}
