/**
 * The per-connection process launcher (native/launch.c): posix_spawn of a program
 * on a connected socket, reaped by the helper's own thread on pidfds.
 *
 * Why not child_process.spawn: libuv forks the whole Node process and blocks the
 * event loop until the child has exec'd (several ms, more as the server grows);
 * glibc's posix_spawn is a vfork, and the exec's failure comes back at once as an
 * error. child_process stays for long-lived children that need Node's IPC channel
 * (pool workers, the fork model's spares); libuv reaps those by pid and the
 * launcher reaps its own by pidfd, so neither ever takes the other's status.
 *
 * One handle per child (`Child`), which owns nothing but the child's pid and, from
 * launch() or spawn() without onStderr, its stderr pipe (a net.Socket, destroyed at its
 * end of stream): the pidfd belongs to the native side, which closes it when it reaps
 * the child, and so does a pipe spawn() reads natively (closed at its end of stream).
 */
import net from 'node:net';
import os from 'node:os';
import { type ChildProcess } from 'node:child_process';
import { SystemCallError } from '../errors.js';
import { fdutil } from './fdutil.js';
import { socketFd } from './internals.js';
import { findProgram } from './programs.js';

/**
 * After a child exits, how long its connection's `end` waits for the rest of its
 * stderr (a descendant may hold the pipe open). 1 s.
 */
export const STDERR_DRAIN_MS = 1000;

/** How a child ended: `code` when it exited, `signal` (a name) when a signal ended it. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A started process, whichever way it was started. */
export interface Child {
  readonly pid: number;
  /** Resolves once the child has been reaped (no zombie is left). Never rejects. */
  readonly exited: Promise<Exit>;
  /** Send `signal`; false if the child is already gone. */
  kill(signal: NodeJS.Signals): boolean;
}

/** What launch() starts. */
export interface LaunchOptions {
  /** The program: a path, or a name looked up in the server's PATH as execvp does. */
  file: string;
  /** Its argv, argv[0] included. */
  argv: readonly string[];
  /** Its complete environment (nothing is inherited implicitly). */
  env: Readonly<Record<string, string>>;
  /** The connected socket: the child's descriptors 0 and 1. The caller closes its own copy afterwards. */
  socket: net.Socket;
  /** The child's descriptor 2: `pipe` (default) gives a new pipe, read as `Launched.stderr`; `inherit` gives the server's. */
  stderr?: 'pipe' | 'inherit';
  /** Start it in a session of its own (a ^C at the server's terminal does not reach it). Default false. */
  setsid?: boolean;
}

/** A child the launcher started. */
export interface Launched extends Child {
  /** The read end of its stderr pipe (with `stderr: 'pipe'`), ended when the program and its descendants close it. */
  readonly stderr: net.Socket | null;
}

/** The kinds of report the native thread sends (native/launch.c `enum REPORT_*`). */
const EXIT = 0;
const SPAWNED = 1;
const FAILED = 2;
const LINES = 3;
const STDERR_END = 4;
/** The system calls a FAILED report names, by index (native/launch.c failed_calls). */
const FAILED_CALLS = ['posix_spawn', 'pipe2', 'pidfd_open', 'epoll_ctl'];

interface Native {
  /** fn(EXIT, pid, code | null, signo) | fn(SPAWNED, token, pid, stderrFd) | fn(FAILED, token, errno, call). */
  onExit(fn: (kind: number, a: number, b: number | null, c: number, text?: string) => void): void;
  launch(file: string, argv: readonly string[], env: string[], fd0: number, fd1: number, fd2: number, setsid: boolean): { pid: number; stderr: number };
  spawn(file: string, argv: readonly string[], env: string[], fd: number, fd2: number, setsid: boolean, owned: boolean, token: number, lines: boolean): void;
  kill(pid: number, signo: number): boolean;
}
const native = fdutil as unknown as Native;

const errnoNames = new Map<number, string>(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));
const signalNames = new Map<number, NodeJS.Signals>(Object.entries(os.constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

/** Children started from this thread and not yet reaped: pid -> how to report its exit. */
const waiting = new Map<number, (exit: Exit) => void>();
/**
 * Descriptors this thread's launched children hold in this process: a pidfd each until
 * reaped (the native side's), a stderr pipe each until it is read to its end.
 */
let heldDescriptors = 0;
/** Whether this thread has launched anything yet. */
let launchedAny = false;
let listening = false;

/** Stderr pipes the native thread reads (spawn with `onStderr`), by pid: where their lines go. */
const readers = new Map<number, { line(text: string): void; end(): void }>();

/** spawn() requests on the native thread, by token: what to do with its SPAWNED or FAILED report. */
const requests = new Map<number, (pid: number, stderrFd: number, err?: NodeJS.ErrnoException) => void>();
let nextToken = 1;

/** Every report of the native thread, in the order it sent them (a child's SPAWNED before its EXIT). */
function report(kind: number, a: number, b: number | null, c: number, text?: string): void {
  if (kind === EXIT) return reaped(a, b, c);
  if (kind === LINES) {
    const reader = readers.get(a);
    if (reader && text) {
      const lines = text.split('\n');
      lines.pop(); // each line ends in \n: the last piece is empty
      for (const line of lines) reader.line(line.endsWith('\r') ? line.slice(0, -1) : line);
    }
    return;
  }
  if (kind === STDERR_END) {
    const reader = readers.get(a);
    readers.delete(a);
    if (reader) {
      heldDescriptors--; // the pipe, closed by the native thread
      reader.end();
    }
    return;
  }
  const done = requests.get(a);
  requests.delete(a);
  if (kind === SPAWNED) {
    if (done) done(b ?? -1, c);
    else if (c >= 0) fdutil.close(c); // nobody waits (cannot happen): do not leak the pipe
    return;
  }
  const errno = b ?? 0;
  // os.constants.errno, not util's map: libuv's map lacks some (ENOEXEC, which the /bin/sh fallback needs).
  const code = errnoNames.get(errno) ?? 'EIO';
  const syscall = FAILED_CALLS[c] ?? 'posix_spawn';
  done?.(-1, -1, Object.assign(new Error(`${syscall} ${code} (errno ${errno})`), { code, errno: -errno, syscall }));
}

function reaped(pid: number, code: number | null, signo: number): void {
  const done = waiting.get(pid);
  if (done) heldDescriptors--; // its pidfd, closed by the reaper
  waiting.delete(pid);
  done?.({ code: signo ? null : code, signal: signo ? (signalNames.get(signo) ?? null) : null });
}

/** The descriptor under a net.Socket (net/internals.ts reads it); a socket without one cannot be handed on. */
function launchFd(socket: net.Socket): number {
  const fd = socketFd(socket);
  if (fd < 0) throw new SystemCallError('spawn', 'socket', Object.assign(new Error('the socket has no descriptor'), { code: 'EBADF' }));
  return fd;
}

/** The shell execvp(3) hands a file without `#!` to. */
const SHELL = '/bin/sh';

/**
 * Start a program on a connected socket. Throws SystemCallError (`spawn ENOENT
 * PROGRAM`, EACCES, ENOMEM, EAGAIN, EMFILE, ...) when it cannot be started; nothing
 * is left open or running then. Side effect, by necessity: the socket's open file
 * is made blocking (the program shares it), so the caller must not read or write
 * its own copy afterwards, only close it.
 */
export function launch(o: LaunchOptions): Launched {
  listen();
  const fd = launchFd(o.socket);
  const env = Object.entries(o.env).map(([k, v]) => `${k}=${v}`);
  const stderrFd = o.stderr === 'inherit' ? 2 : -1;
  let started: { pid: number; stderr: number };
  try {
    started = native.launch(o.file, o.argv, env, fd, fd, stderrFd, o.setsid === true);
  } catch (err) {
    // Where posix_spawnp found it: it searches the caller's PATH (confstr's default when unset), as execvp does.
    const script = (err as NodeJS.ErrnoException).code === 'ENOEXEC' ? findProgram(o.file, process.env.PATH ?? '/bin:/usr/bin') : undefined;
    if (script === undefined) throw new SystemCallError('spawn', o.file, err);
    // A file the kernel cannot execute (a script without `#!`): run it with /bin/sh, as execvp(3)
    // does and the docs promise. glibc's posix_spawnp does not fall back (POSIX leaves it out).
    try {
      started = native.launch(SHELL, [SHELL, script, ...o.argv.slice(1)], env, fd, fd, stderrFd, o.setsid === true);
    } catch (err2) {
      throw new SystemCallError('spawn', o.file, err2);
    }
  }
  return started_(started.pid, started.stderr);
}

function listen(): void {
  if (listening) return;
  native.onExit(report);
  listening = true;
}

/** The handle of a child the native side started (and will reap), with its stderr pipe's read end or -1. */
function started_(pid: number, stderrFd: number): Launched {
  const exited = new Promise<Exit>((resolve) => waiting.set(pid, resolve));
  heldDescriptors++;
  launchedAny = true;
  let stderr: net.Socket | null = null;
  if (stderrFd >= 0) {
    stderr = new net.Socket({ fd: stderrFd, readable: true, writable: false });
    heldDescriptors++;
    stderr.once('close', () => heldDescriptors--);
    // Its end of stream (every writer gone) is where the descriptor is released.
    stderr.on('end', () => stderr?.destroy());
    stderr.on('error', () => stderr?.destroy());
  }
  return { pid, exited, stderr, kill: (signal) => native.kill(pid, os.constants.signals[signal]) };
}

/** What spawn() starts: LaunchOptions, with the connection as a socket or as a bare descriptor. */
export interface SpawnOptions extends Omit<LaunchOptions, 'socket'> {
  /** The connected socket (kept open by the caller until the promise settles; then only closed). */
  socket?: net.Socket;
  /**
   * Or an accepted descriptor that is the launcher's from this call on: closed once the
   * child holds it; if the program cannot be started it is closed too, before the rejection.
   */
  fd?: number;
  /**
   * With `stderr: 'pipe'` (the default): the pipe is read by the launcher's thread, not as a
   * net.Socket here, and each line (at most 4096 bytes; longer ones in pieces) comes here, in
   * order, after the child's start. `Launched.stderr` is null then; `stderrDone` resolves at its end.
   */
  onStderr?: (line: string, pid: number) => void;
}

/** A child started with spawn(): its stderr, when read natively, ends with `stderrDone`. */
export interface Spawned extends Launched {
  /** Resolves once its stderr pipe has reached its end (every writer gone), or at once without `onStderr`. */
  readonly stderrDone: Promise<void>;
}

/** Requests queued and not yet reported (spawned or failed), for the acceptor's descriptor estimate. */
let queued = 0;

/**
 * launch() off this thread: the native launcher's own thread runs posix_spawn (whose vfork
 * suspends the caller until the child has exec'd), so this event loop goes on accepting and
 * admitting meanwhile. Resolves with the child once it runs; rejects as launch() throws
 * (`spawn ENOENT PROGRAM`, ...). A script without `#!` runs under /bin/sh, as with launch().
 */
export function spawn(o: SpawnOptions): Promise<Spawned> {
  listen();
  const owned = o.fd !== undefined;
  const fd = owned ? o.fd! : launchFd(o.socket!);
  const env = Object.entries(o.env).map(([k, v]) => `${k}=${v}`);
  const stderrFd = o.stderr === 'inherit' ? 2 : -1;
  const setsid = o.setsid === true;
  const lines = stderrFd === -1 && o.onStderr !== undefined;
  const attempt = (file: string, argv: readonly string[]): Promise<Spawned> =>
    new Promise((resolve, reject) => {
      const token = nextToken;
      nextToken = nextToken >= 0x7fffffff ? 1 : nextToken + 1;
      native.spawn(file, argv, env, fd, stderrFd, setsid, owned, token, lines);
      queued++;
      requests.set(token, (pid, stderr, err) => {
        queued--;
        if (err) return reject(err);
        let stderrDone = Promise.resolve();
        if (stderr === -2) {
          // Read by the native thread (-2): register before any of its lines (they follow in the same queue).
          heldDescriptors++;
          stderrDone = new Promise((done) => readers.set(pid, { line: (text) => o.onStderr!(text, pid), end: done }));
        }
        resolve(Object.assign(started_(pid, stderr === -2 ? -1 : stderr), { stderrDone }));
      });
    });
  return attempt(o.file, o.argv).catch((err: NodeJS.ErrnoException) => {
    const script = err.code === 'ENOEXEC' ? findProgram(o.file, process.env.PATH ?? '/bin:/usr/bin') : undefined;
    if (script === undefined) throw new SystemCallError('spawn', o.file, err);
    return attempt(SHELL, [SHELL, script, ...o.argv.slice(1)]).catch((err2: unknown) => {
      throw new SystemCallError('spawn', o.file, err2);
    });
  }).catch((err: unknown) => {
    if (owned) fdutil.close(fd); // handed back with the failure: ours to close
    throw err;
  });
}

/** The same handle for a child_process child (it must have started: `pid` set). */
export function fromChildProcess(child: ChildProcess): Child {
  const pid = child.pid;
  if (pid === undefined) throw new TypeError('fromChildProcess: the child has no pid (it did not start)');
  child.on('error', () => {}); // kill() on an exited child; 'exit' is what counts
  const exited = new Promise<Exit>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return { pid, exited, kill: (signal) => child.kill(signal) };
}

/**
 * Descriptors launched children hold in this process now (their pidfds and stderr
 * pipes), for the acceptor's headroom check (./acceptor.ts): a child costs them after
 * its socket is closed here, where the socket's number no longer shows them.
 */
export function launchedDescriptors(): number {
  return heldDescriptors;
}

/**
 * Descriptors spawn() requests still queued will open here (a pidfd and a stderr pipe
 * each): not open yet, so a real count of /proc/self/fd does not show them.
 */
export function queuedDescriptors(): number {
  return 2 * queued;
}

/** Whether this thread has launched a child yet (its service starts programs). */
export function hasLaunched(): boolean {
  return launchedAny;
}

/** How many launched children this thread has not yet seen reaped (for tests and status). */
export function liveChildren(): number {
  return waiting.size;
}
