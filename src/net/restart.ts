/**
 * Zero-downtime restart: a running server starts its successor (a new tcpkit
 * process, possibly a new version of the code) on the same listening socket, and
 * steps aside only once the successor is accepting.
 *
 *   old: SIGUSR2 ─► spawn successor with the listening socket as fd 3 (LISTEN_FDS=1)
 *                   and a pipe as fd 4 (TCPKIT_NOTIFY_FD=4)
 *   new: listenFds() takes fd 3 ─► listen ─► writes "READY=1" on fd 4, closes it
 *   old: sees READY=1 ─► closes its copy of the listening socket (the socket itself
 *        stays open in the new process: no connection is refused, none in the
 *        backlog is lost) ─► drains its connections ─► exits 0
 *
 * The successor learns its sockets exactly as under systemd. LISTEN_PID must be the
 * successor's own pid, which the old process cannot know before it exists, so the
 * successor is started through `/bin/sh -c 'LISTEN_PID=$$; export LISTEN_PID; exec
 * "$@"'`: `$$` is the shell's pid, and exec keeps it for tcpkit.
 *
 * If the successor exits or is not ready within the timeout, it is killed and the
 * old server goes on serving as if nothing had happened.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { TcpkitError } from '../errors.js';
import { fdutil } from './fdutil.js';

/** Options of startSuccessor. */
export interface SuccessorOptions {
  /** The listening descriptor to pass (it becomes the successor's fd 3). */
  fd: number;
  /** Its name for LISTEN_FDNAMES. Default `tcpkit`. */
  name?: string;
  /** Program and arguments after the Node binary. Default: this process's own (`execArgv`, script, arguments). */
  argv?: string[];
  /** Environment. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Milliseconds to wait for READY=1. Default 30000. */
  timeoutMs?: number;
  /** Called once the successor exists, with its pid. */
  onSpawn?: (pid: number) => void;
}

/** The shell wrapper that gives the successor LISTEN_PID = its own pid. */
const WRAPPER = 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"';

/** Where the successor finds its notification pipe. */
const NOTIFY_FD = 4;

/**
 * Start a successor on the listening descriptor `fd` and resolve with its pid once
 * it reports it is accepting. Rejects with a TcpkitError (`TCPKIT_RESTART`) if it
 * exits first or is not ready in time; it is killed (SIGKILL) in the latter case.
 * The successor's stdout and stderr are this process's.
 */
export function startSuccessor(options: SuccessorOptions): Promise<number> {
  const argv = options.argv ?? [...process.execArgv, ...process.argv.slice(1)];
  const timeoutMs = options.timeoutMs ?? 30_000;
  const env: NodeJS.ProcessEnv = {
    ...(options.env ?? process.env),
    LISTEN_FDS: '1',
    LISTEN_FDNAMES: options.name ?? 'tcpkit',
    TCPKIT_NOTIFY_FD: String(NOTIFY_FD),
  };
  delete env.LISTEN_PID; // set by the wrapper
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', WRAPPER, 'tcpkit-successor', process.execPath, ...argv], {
      stdio: ['ignore', 'inherit', 'inherit', options.fd, 'pipe'],
      env,
    });
    let settled = false;
    let said = '';
    const fail = (message: string, kill: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (kill) child.kill('SIGKILL');
      reject(new TcpkitError('TCPKIT_RESTART', message));
    };
    const timer = setTimeout(() => fail(`successor not ready within ${timeoutMs} ms`, true), timeoutMs);
    child.once('error', (err) => fail(`cannot start the successor: ${err.message}`, false));
    child.once('exit', (code, signal) => fail(`successor exited (${signal ? `signal ${signal}` : `exit code ${code}`}) before it was ready`, false));
    if (child.pid !== undefined) options.onSpawn?.(child.pid);
    const pipe = child.stdio[NOTIFY_FD] as NodeJS.ReadableStream | null;
    pipe?.setEncoding('utf8');
    pipe?.on('data', (text: string) => {
      said += text;
      if (settled || !/^READY=1$/m.test(said)) return;
      settled = true;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      child.unref();
      (pipe as unknown as { destroy(): void }).destroy();
      resolve(child.pid!);
    });
    pipe?.on('error', () => {});
  });
}

/**
 * The descriptor a predecessor asked this process to report readiness on, taken
 * from TCPKIT_NOTIFY_FD (and removed from the environment): made close-on-exec at
 * once, so no child inherits it. Undefined when this process is not a successor.
 */
export function takeNotifyFd(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const text = env.TCPKIT_NOTIFY_FD;
  delete env.TCPKIT_NOTIFY_FD;
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  const fd = Number(text);
  try {
    fdutil.cloexec(fd);
  } catch {
    return undefined; // not open: nobody is waiting
  }
  return fd;
}

/** Tell the predecessor this process is accepting (sd_notify's READY=1), then close the pipe. */
export function notifyReady(fd: number): void {
  try {
    fs.writeSync(fd, `READY=1\nMAINPID=${process.pid}\n`);
  } catch {
    // The predecessor gave up waiting; serving goes on regardless.
  }
  fs.closeSync(fd);
}
