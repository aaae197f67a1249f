// Shared test helpers: start the real CLI on port 0, talk to it over real sockets,
// and look at processes and descriptors through /proc.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess, type StdioNull, type StdioPipe } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = path.join(ROOT, 'bin', 'tcpkit.js');

/** How a process ended: an exit code, or the signal that ended it. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** What `run` resolves with. */
export interface RunResult extends Exit {
  stdout: Buffer;
  stderr: string;
}

export interface RunOptions {
  /** Written to the child's stdin, which is then closed (closed at once when absent). */
  input?: string | Buffer;
  /** Default 60,000 ms; the child is SIGKILLed after it. */
  timeoutMs?: number;
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** The child's stdin instead of a pipe (a descriptor, 'ignore', 'inherit' ...). */
  stdin?: StdioPipe | StdioNull | number;
}

/** Run the CLI to completion; resolves { code, signal, stdout, stderr }. Bounded by timeoutMs. */
export function run(args: string[], { input, timeoutMs = 60_000, env, stdin }: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      stdio: [stdin ?? 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    // stdout and stderr are always pipes here; only stdin may be something else.
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tcpkit ${args.join(' ')} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() });
    });
    if (child.stdin) {
      child.stdin.on('error', () => {});
      if (input !== undefined) child.stdin.end(input);
      else child.stdin.end();
    }
  });
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** How long to wait for `ready` (default 20,000 ms). */
  timeoutMs?: number;
  /** What the server should have printed, for the timeout message (default 'its port'). */
  what?: string;
}

/** A tcpkit process started by `spawnServer`. */
export interface SpawnedServer<T> {
  /** What `ready(stdout)` returned. */
  ready: T;
  proc: ChildProcess;
  pid: number;
  exited: Promise<Exit>;
  /** Everything the server wrote to stderr so far. */
  log(): string;
  /** Resolve with the match of `re` in stderr written after `from` (default: anywhere). */
  waitFor(re: RegExp, opts?: { from?: number; timeoutMs?: number }): Promise<RegExpExecArray>;
  /** Send a signal and resolve with the exit { code, signal }. Kills with SIGKILL after timeoutMs. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
}

interface Waiter {
  re: RegExp;
  from: number;
  resolve: (m: RegExpExecArray) => void;
  timer?: NodeJS.Timeout;
}

/**
 * Start `tcpkit ARGS` and resolve once `ready(stdout)` returns a value (what the server
 * printed: a port, a list of bindings). Returns { ready, proc, pid, exited, log(),
 * waitFor(regex), stop(signal) }; shared by every helper that starts a server.
 */
export async function spawnServer<T>(
  args: string[],
  ready: (stdout: string) => T | undefined,
  { env, timeoutMs = 20_000, what = 'its port' }: SpawnOptions = {},
): Promise<SpawnedServer<T>> {
  const proc = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  let stdout = '';
  const waiters = new Set<Waiter>();
  const check = (): void => {
    for (const w of waiters) {
      const m = w.re.exec(stderr.slice(w.from));
      if (m) {
        waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(m);
      }
    }
  };
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c: string) => {
    stderr += c;
    check();
  });
  const exited = new Promise<Exit>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const value = await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not print ${what}; stderr:\n${stderr}`)), timeoutMs);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (c: string) => {
      stdout += c;
      const v = ready(stdout);
      if (v !== undefined) {
        clearTimeout(timer);
        resolve(v);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited ${code} before listening; stderr:\n${stderr}`));
    });
  });
  return {
    ready: value,
    proc,
    pid: proc.pid!,
    exited,
    log: () => stderr,
    waitFor(re, { from = 0, timeoutMs: t = 20_000 } = {}) {
      return new Promise((resolve, reject) => {
        const w: Waiter = { re, from, resolve };
        w.timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`timed out waiting for ${re} in server log:\n${stderr}`));
        }, t);
        waiters.add(w);
        check();
      });
    },
    async stop(signal = 'SIGTERM', t = 30_000) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), t);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

/** A `tcpkit serve` started by `startServer`: a spawned server and the port it printed. */
export type StartedServer = SpawnedServer<number> & { port: number };

/**
 * Start `tcpkit serve ... --port 0 --print-port` and resolve once it prints its port.
 * Returns { port, proc, pid, log(), waitFor(regex), stop(signal) }.
 */
export async function startServer(args: string[] = [], { env, timeoutMs = 20_000 }: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<StartedServer> {
  const server = await spawnServer(
    ['serve', '--host', '127.0.0.1', '--port', '0', '--print-port', ...args],
    (stdout) => {
      const m = /^(\d+)\n/.exec(stdout);
      return m ? Number(m[1]) : undefined;
    },
    { env, timeoutMs },
  );
  return Object.assign(server, { port: server.ready });
}

export interface ConnectOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** The local address to bind before connecting. */
  source?: string;
}

/**
 * A port the kernel says is free now on 127.0.0.1, for peers that need a number in their configuration
 * (HAProxy, nginx, systemd-socket-activate) or a test that binds a port after something else let it go.
 */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const port = portOf(s);
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/**
 * One loopback connection, both ends: the accepted socket (paused, half-open allowed, as a server hands it to a
 * model) and its client. The listener is closed once it has accepted; the two sockets are the caller's.
 */
export async function acceptedPair(): Promise<{ accepted: net.Socket; client: net.Socket }> {
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect(portOf(server), '127.0.0.1');
  await new Promise((resolve) => client.once('connect', resolve));
  const socket = await accepted;
  server.close();
  return { accepted: socket, client };
}

/** The port a listening net.Server (or dgram socket, http server) is bound to. */
export function portOf(server: { address(): net.AddressInfo | string | null }): number {
  const a = server.address();
  assert.ok(a !== null && typeof a === 'object', `not bound to a TCP address: ${String(a)}`);
  return a.port;
}

/**
 * The descriptor of a listening net.Server or a bound dgram socket. Node keeps it on the private `_handle`; tests read
 * the number only (to hand it to a child as fd 3), and this is the one place that touches it.
 */
export function fdOf(owner: object): number {
  const handle: unknown = Reflect.get(owner, '_handle');
  const fd: unknown = typeof handle === 'object' && handle !== null ? Reflect.get(handle, 'fd') : undefined;
  assert.ok(typeof fd === 'number' && fd >= 0, `no descriptor on this handle: ${String(fd)}`);
  return fd;
}

/** What a test caught, checked to be an Error; typed with Node's optional code, errno and syscall. */
export function errnoOf(err: unknown): NodeJS.ErrnoException {
  assert.ok(err instanceof Error, `not an Error: ${String(err)}`);
  return err;
}

/** Connect to 127.0.0.1:port (optionally from `source`). */
export function connectTo(port: number, { host = '127.0.0.1', source }: ConnectOptions = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, localAddress: source, allowHalfOpen: true });
    s.once('connect', () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Send `data`, half-close, and collect everything until the server closes. */
export async function echoOnce(port: number, data: Uint8Array | string, opts?: ConnectOptions): Promise<Buffer> {
  const s = await connectTo(port, opts);
  return exchange(s, data);
}

/** Write data, FIN, read to EOF. Resolves the received Buffer. */
export function exchange(socket: net.Socket, data: Uint8Array | string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => {
      socket.destroy();
      resolve(Buffer.concat(chunks));
    });
    socket.once('error', reject);
    socket.end(data);
  });
}

/** Read from socket until `n` bytes have arrived. */
export function readBytes(socket: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (c: Buffer): void => {
      chunks.push(c);
      got += c.length;
      if (got >= n) {
        socket.off('data', onData);
        socket.pause();
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('end', () => {
      if (got < n) reject(new Error(`EOF after ${got} of ${n} bytes`));
    });
    socket.resume();
  });
}

/** Resolve when the socket sees EOF (or error), with which it was: 'end' or the error's code (its message if it has none). */
export function waitClose(socket: net.Socket, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('socket did not close')), timeoutMs);
    socket.once('end', () => {
      clearTimeout(timer);
      resolve('end');
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code ?? e.message);
    });
    socket.resume();
  });
}

export const sha256 = (buf: Uint8Array | string): string => createHash('sha256').update(buf).digest('hex');
export const random = (n: number): Buffer => randomBytes(n);

/** Pids whose parent is `pid` (from /proc), with their state letter. */
export function childrenOf(pid: number): { pid: number; state: string }[] {
  const out: { pid: number; state: string }[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push({ pid: Number(d), state: fields[0] });
    } catch {
      // raced with exit
    }
  }
  return out;
}

/**
 * The children this test process started: childrenOf(process.pid) without the esbuild service that tsx (which loads
 * these TypeScript files) keeps running as a child of the process it compiles in. A test that checks it left no
 * process behind counts these.
 */
export function testChildren(): { pid: number; state: string }[] {
  return childrenOf(process.pid).filter((k) => {
    try {
      const argv = fs.readFileSync(`/proc/${k.pid}/cmdline`, 'utf8').split('\0');
      return !(path.basename(argv[0] ?? '') === 'esbuild' && argv.some((a) => a.startsWith('--service=')));
    } catch {
      return true; // raced with exit: counted, as childrenOf counted it
    }
  });
}

/** The descriptors of a process: [{ fd, target }]. */
export function fdsOf(pid: number): { fd: number; target: string }[] {
  const dir = `/proc/${pid}/fd`;
  return fs.readdirSync(dir).map((fd) => {
    let target = '';
    try {
      target = fs.readlinkSync(`${dir}/${fd}`);
    } catch {
      // closed meanwhile
    }
    return { fd: Number(fd), target };
  });
}

/** Socket inodes of a process. */
export function socketInodes(pid: number): string[] {
  return fdsOf(pid)
    .map((f) => /^socket:\[(\d+)\]$/.exec(f.target)?.[1])
    .filter((i): i is string => Boolean(i));
}

/** One row of /proc/net/tcp{,6}, fields as the kernel wrote them (hex). */
export interface TcpRow {
  local: string;
  remote: string;
  state: string;
}

/** TCP sockets by inode from /proc/net/tcp{,6}: Map<inode, { local, remote, state }>. */
export function tcpTable(): Map<string, TcpRow> {
  const map = new Map<string, TcpRow>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.trim().split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      map.set(f[9], { local: f[1], remote: f[2], state: f[3] });
    }
  }
  return map;
}

/** Resident set size in bytes of a process. */
export function rssOf(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

/** Poll `fn` until it returns truthy; reject after timeoutMs. */
export async function eventually<T>(
  fn: () => T | Promise<T>,
  { timeoutMs = 10_000, intervalMs = 50, message = 'condition' }: { timeoutMs?: number; intervalMs?: number; message?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${message} (last: ${JSON.stringify(last)})`);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * What the kernel lets one loopback TCP connection hold in its buffers, from /proc/sys/net/ipv4/tcp_{r,w}mem:
 * `rcv` and `snd` are the default (middle) and maximum (third) figures in bytes, so tests derive their bounds from
 * the machine they run on, not from one machine's numbers. Undefined off Linux.
 */
export function tcpMem(): { rmem: { min: number; def: number; max: number }; wmem: { min: number; def: number; max: number } } | undefined {
  const read = (name: string): { min: number; def: number; max: number } | undefined => {
    try {
      const [min, def, max] = fs.readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/).map(Number);
      if (min === undefined || def === undefined || max === undefined) return undefined;
      return { min, def, max };
    } catch {
      return undefined;
    }
  };
  const rmem = read('tcp_rmem');
  const wmem = read('tcp_wmem');
  return rmem && wmem ? { rmem, wmem } : undefined;
}

/** Every model as the CLI selects it, and the ways a pool gets its connections (tests that run under each). */
export const EVERY_MODEL: ReadonlyArray<readonly [string, string[]]> = [
  ['iterative', ['--model', 'iterative']],
  ['event', ['--model', 'event']],
  ['fork', ['--model', 'fork']],
  ['fork --spare', ['--model', 'fork', '--spare', '1']],
  ['prefork shared', ['--model', 'prefork', '--workers', '2']],
  ['prefork pass', ['--model', 'prefork', '--workers', '2', '--accept', 'pass']],
  ['threads', ['--model', 'threads', '--workers', '2']],
];
