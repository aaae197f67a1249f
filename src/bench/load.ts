/**
 * One run of the load generator: its counters, its open sockets and its clock,
 * shared by the modes (requests.ts, echo.ts, bulk.ts, idle.ts). The run owns every
 * socket it opens: each is tracked on open and untracked on close, and `stop()`
 * destroys whatever is still open when the duration cap is reached.
 */
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { formatAddress } from '../address.js';
import { ConnectTimeoutError, PrematureCloseError, ProtocolError, ReadTimeoutError, TcpkitError } from '../errors.js';
import type { ResolvedBenchOptions } from './options.js';

/** Why a connection ended early without being the server's fault: the run was stopped. */
export class RunStoppedError extends TcpkitError {
  constructor() {
    super('TCPKIT_BENCH_STOPPED', 'the run reached its duration cap');
  }
}

/** States of a run: `running` until `stop()` (the cap) or `finish()` (the work is done). */
export type LoadRunState = 'running' | 'stopped' | 'finished';

/** The shared state of one run. */
export class LoadRun {
  readonly options: ResolvedBenchOptions;
  readonly address: string;
  state: LoadRunState = 'running';
  readonly startedAt = performance.now();
  endedAt = 0;
  /** Connections attempted, completed (all their work done), failed (an error), aborted (cut by the cap). */
  attempted = 0;
  completed = 0;
  failed = 0;
  aborted = 0;
  /** Request/response exchanges completed (echo lines; one per connection in requests mode). */
  exchanges = 0;
  bytesSent = 0;
  bytesReceived = 0;
  /** Milliseconds from the start of connect() to the last byte of the connection's work. */
  readonly latencies: number[] = [];
  readonly errors = new Map<string, number>();
  firstError: string | undefined;
  private readonly open = new Set<net.Socket>();
  private nextSource = 0;

  constructor(options: ResolvedBenchOptions) {
    this.options = options;
    this.address = options.path !== undefined ? `unix:${options.path}` : formatAddress(options.host, options.port);
  }

  /** Milliseconds since the run started (or its length, once ended). */
  elapsedMs(): number {
    return (this.endedAt || performance.now()) - this.startedAt;
  }

  /** Whether new work may start. */
  get running(): boolean {
    return this.state === 'running';
  }

  /** Record a failed connection by its error code. */
  fail(err: unknown): void {
    if (err instanceof RunStoppedError) {
      this.aborted++;
      return;
    }
    this.failed++;
    const e = err as { code?: unknown; message?: unknown };
    const code = typeof e?.code === 'string' ? e.code : 'EUNKNOWN';
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
    this.firstError ??= typeof e?.message === 'string' ? e.message : String(err);
  }

  /** The duration cap: stop starting work and destroy every open socket. Idempotent. */
  stop(): void {
    if (this.state !== 'running') return;
    this.state = 'stopped';
    this.endedAt = performance.now();
    for (const s of this.open) s.destroy(new RunStoppedError());
  }

  /**
   * Asked to end early (Ctrl-C, a caller's AbortSignal). Idle mode ends its hold and
   * releases the connections it holds normally, so its report still says how many were
   * held; the other modes stop as at the duration cap.
   */
  interrupted = false;

  /** End the run early; see `interrupted`. Idempotent. */
  interrupt(): void {
    this.interrupted = true;
    if (this.options.mode !== 'idle') this.stop();
  }

  /** The work is done. Idempotent; a stopped run stays stopped. */
  finish(): void {
    if (this.state !== 'running') return;
    this.state = 'finished';
    this.endedAt = performance.now();
  }

  /** Sockets open right now. */
  get openCount(): number {
    return this.open.size;
  }

  /** Destroy every socket still open (idle mode's end; the cap). */
  destroyAll(): void {
    for (const s of this.open) s.destroy();
  }

  /**
   * Connect to the server from the next source address (if any), tracked until it closes.
   * Rejects with the system error (ECONNREFUSED, EADDRNOTAVAIL, ...) or ConnectTimeoutError.
   * The socket's later errors are left to the caller; a timeout while connected destroys it
   * with ReadTimeoutError. `onread` (bulk mode) reads into one reused buffer instead of
   * 'data' events.
   */
  async connect(onread?: net.OnReadOpts): Promise<net.Socket> {
    if (!this.running) throw new RunStoppedError();
    const { sources } = this.options;
    const localAddress = sources.length > 0 ? sources[this.nextSource++ % sources.length] : undefined;
    this.attempted++;
    if (localAddress === undefined || this.options.mode !== 'idle') return this.connectFrom(localAddress, undefined, onread);
    // Idle mode holds thousands of ports per source address. bind(addr, 0) searches the port
    // space linearly each time (O(n^2) in all: 15,000 connections took a minute of system
    // time), so choose each port ourselves and skip the ones in use.
    const ports = this.portsOf(localAddress);
    for (let tries = 0; ; tries++) {
      const localPort = ports.next();
      try {
        return await this.connectFrom(localAddress, localPort, onread);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || tries >= ports.size || !this.running) throw err;
      }
    }
  }

  private readonly portCursors = new Map<string, PortCursor>();

  private portsOf(address: string): PortCursor {
    let cursor = this.portCursors.get(address);
    if (!cursor) {
      cursor = new PortCursor(ephemeralPortRange());
      this.portCursors.set(address, cursor);
    }
    return cursor;
  }

  /**
   * TLS over a connected socket (certificate not checked: a load generator measures). With
   * `onread` (bulk mode) the decrypted bytes reach its callback from 'data' events: Node's
   * `onread` applies to the TCP socket, which carries ciphertext.
   */
  private startTls(socket: net.Socket, onread?: net.OnReadOpts): Promise<tls.TLSSocket> {
    const resume = this.options.tls === 'resume';
    return new Promise((resolve, reject) => {
      const secure = tls.connect({ socket, rejectUnauthorized: false, ...(resume && lastSession && { session: lastSession }) });
      this.open.add(secure);
      secure.once('close', () => this.open.delete(secure));
      if (resume) secure.on('session', (s: Buffer) => (lastSession = s));
      secure.once('error', reject);
      secure.once('secureConnect', () => {
        secure.removeListener('error', reject);
        if (onread) {
          const cb = onread.callback as (n: number, buf: Buffer) => boolean | void;
          secure.on('data', (c: Buffer) => {
            if (cb(c.length, c) === false) secure.pause();
          });
        }
        resolve(secure);
      });
    });
  }

  private connectFrom(localAddress: string | undefined, localPort: number | undefined, onread?: net.OnReadOpts): Promise<net.Socket> {
    const { host, port, timeout, path } = this.options;
    return new Promise((resolve, reject) => {
      const socket =
        path !== undefined
          ? net.connect({ path, allowHalfOpen: true, onread })
          : net.connect({ host, port, localAddress, localPort, allowHalfOpen: true, noDelay: true, onread });
      this.open.add(socket);
      socket.once('close', () => this.open.delete(socket));
      const timeoutMs = timeout * 1000;
      socket.setTimeout(timeoutMs);
      let connected = false;
      socket.on('timeout', () => {
        socket.destroy(connected ? new ReadTimeoutError(this.address, timeoutMs) : new ConnectTimeoutError(this.address, timeoutMs));
      });
      const onError = (err: Error) => reject(err);
      socket.once('error', onError);
      socket.once('connect', () => {
        connected = true;
        if (this.options.tls === 'off') {
          socket.removeListener('error', onError);
          resolve(socket);
          return;
        }
        this.startTls(socket, onread).then((secure) => {
          socket.removeListener('error', onError);
          resolve(secure);
        }, reject);
      });
    });
  }
}

/** The last TLS session a connection of this process got (--tls resume hands it to the next). */
let lastSession: Buffer | undefined;

/** The ports of the ephemeral range in turn, wrapping around. */
class PortCursor {
  private readonly low: number;
  readonly size: number;
  private at = 0;
  constructor([low, high]: [number, number]) {
    this.low = low;
    this.size = high - low + 1;
  }
  next(): number {
    const port = this.low + (this.at % this.size);
    this.at++;
    return port;
  }
}

/** The kernel's ephemeral port range (net.ipv4.ip_local_port_range); 32768-60999 when unreadable. */
export function ephemeralPortRange(): [number, number] {
  try {
    const [low, high] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low! > 0 && high! >= low!) return [low!, high!];
  } catch {
    // not Linux, or no procfs
  }
  return [32768, 60999];
}

/**
 * Reads on a connected socket in the sizes the protocol expects: `read(n)` resolves
 * when exactly n more bytes have arrived. Bytes nobody asked for, an early EOF, an
 * error or a close all reject the read pending (or the next one) with a coded error.
 */
export class Exchange {
  readonly socket: net.Socket;
  private readonly run: LoadRun;
  private need = 0;
  private got = 0;
  private chunks: Buffer[] | undefined;
  private pending: { resolve: (b: Buffer | undefined) => void; reject: (e: unknown) => void } | undefined;
  private failure: unknown;

  constructor(run: LoadRun, socket: net.Socket) {
    this.run = run;
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onFailure(new PrematureCloseError(`EOF after ${this.got} of ${this.need} bytes`)));
    socket.on('error', (err) => this.onFailure(err));
    socket.on('close', () => this.onFailure(new PrematureCloseError('connection closed')));
  }

  /** Send bytes (the protocol keeps requests small; bulk mode writes with backpressure itself). */
  write(data: Buffer | string): void {
    this.run.bytesSent += typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    this.socket.write(data);
  }

  /** Wait for exactly `n` bytes; `keep` returns them, otherwise they are only counted. */
  read(n: number, keep = false): Promise<Buffer | undefined> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    this.need = n;
    this.got = 0;
    this.chunks = keep ? [] : undefined;
    if (n === 0) return Promise.resolve(keep ? Buffer.alloc(0) : undefined);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
    });
  }

  private onData(chunk: Buffer): void {
    this.run.bytesReceived += chunk.length;
    const p = this.pending;
    if (!p || this.got + chunk.length > this.need) {
      this.onFailure(
        new ProtocolError(`${this.run.address} sent ${this.got + chunk.length - this.need} bytes more than asked for`),
      );
      this.socket.destroy();
      return;
    }
    this.got += chunk.length;
    this.chunks?.push(chunk);
    if (this.got === this.need) {
      this.pending = undefined;
      p.resolve(this.chunks ? Buffer.concat(this.chunks, this.got) : undefined);
    }
  }

  private onFailure(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    const p = this.pending;
    this.pending = undefined;
    p?.reject(err);
  }
}
