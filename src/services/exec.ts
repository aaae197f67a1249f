/**
 * exec: run a program for each connection, as inetd and ucspi-tcp's tcpserver do.
 * The connected socket is the program's descriptors 0 and 1; its descriptor 2 is a
 * pipe whose lines go to the server's log (sanitized, with the program's pid). No
 * shell is involved and nothing the peer sends reaches the command line: the argv
 * is fixed when the server starts.
 *
 * The program learns who its peer is the UCSPI way, from the environment
 * (ucspi-tcp's tcp-environ(5)), or the inetd way, from getpeername on descriptor 0:
 *
 *     PROTO=TCP  TCPLOCALIP  TCPLOCALPORT  TCPREMOTEIP  TCPREMOTEPORT  TCPCONNNUM
 *     TCPREMOTEHOST, TCPLOCALHOST   only with `resolve` (tcpserver -h), when the name is known
 *
 * and on a UNIX-domain socket as ucspi-unix's unixserver does (SO_PEERCRED's values):
 *
 *     PROTO=UNIX  UNIXLOCALPATH  UNIXREMOTEPID  UNIXREMOTEEUID  UNIXREMOTEEGID  TCPCONNNUM
 *
 * The environment is by default the server's own (as tcpserver passes its environment on;
 * `env: { clear: true, pass }` gives only the listed names, as systemd and xinetd do),
 * without tcpkit's internal TCPKIT_* variables and without any UCSPI variable the
 * server itself inherited, plus the UCSPI variables, plus what the matching
 * access rule adds (which may override them, as tcprules' can). IPv4 peers on a
 * dual-stack listener are given as IPv4 (`1.2.3.4`, not `::ffff:1.2.3.4`).
 *
 * Under the fork and event models the server process starts the program directly (no Node
 * process in between; this module's `program` export is how the model learns it
 * can: ../models/children.ts), so `accept ... pid N` and `end pid N exitcode X` are the
 * program's own. Prefork and threads workers start it through `program` too, on the
 * native path (../workers/worker.ts). Elsewhere (iterative, the pools' socket path) this
 * module's default export starts it from whichever process accepted the connection and
 * waits for it to exit. Either way through
 * the native launcher (../net/launcher.ts: posix_spawn, reaped on a pidfd).
 *
 * stderr: each program gets its own pipe, read by the launcher's thread of the process
 * that started it (no net.Socket per program; lines delivered with the pid), so every
 * line is attributed to that program's pid (and, under fork, to the connection id);
 * lines are cut at 4096 bytes and logged sanitized. `stderr: 'inherit'`
 * (--exec-stderr inherit) gives the program the server's own descriptor 2 instead.
 *
 * Descriptors: every descriptor tcpkit and Node open is close-on-exec, so the
 * program holds exactly 0, 1 and 2 (checked in test/e2e/exec.test.ts).
 */
import { spawn } from 'node:child_process';
import dns from 'node:dns/promises';
import type net from 'node:net';
import type { ConnectionInfo } from '../address.js';
import { unmapIPv4 } from '../admission/access.js';
import { describeError, SystemCallError } from '../errors.js';
import { spawnFailedCode, STDERR_CODE, stderrReason } from '../events.js';
import { fromChildProcess, spawn as launchOff, STDERR_DRAIN_MS, type Child } from '../net/launcher.js';
import { eachLine } from '../net/programs.js';
import type { EnvPolicy, ExecOptions } from './exec-options.js';
import type { ProgramLauncher, ServiceContext } from './types.js';


/** The UCSPI variables tcpkit sets or clears for each program (tcp-environ(5)). */
export const UCSPI_VARIABLES = [
  'PROTO',
  'TCPLOCALIP',
  'TCPLOCALPORT',
  'TCPLOCALHOST',
  'TCPREMOTEIP',
  'TCPREMOTEPORT',
  'TCPREMOTEHOST',
  'TCPREMOTEINFO',
  'TCPCONNNUM',
  'UNIXLOCALPATH',
  'UNIXREMOTEPID',
  'UNIXREMOTEEUID',
  'UNIXREMOTEEGID',
] as const;

/** How long a name lookup (`resolve`) may delay the program's start. */
const LOOKUP_TIMEOUT_MS = 2000;

/** Longest stderr line logged in one piece; longer ones are cut into several events. */
const MAX_STDERR_LINE = 4096;

let startEnv: Readonly<Record<string, string>> | undefined;
/**
 * The server's environment as it was at the first connection: read once, because
 * process.env is a getenv() per key on every access, which per connection costs more
 * than the rest of the environment's assembly.
 */
function serverEnv(): Readonly<Record<string, string>> {
  if (!startEnv) {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    startEnv = env;
  }
  return startEnv;
}

/**
 * The program's environment: `base` (default the server's, read once) without TCPKIT_* and
 * inherited UCSPI variables, then the UCSPI variables of `info`, then `names`
 * (from lookupNames), then `extra` (access rule variables, TCPCONNNUM). With
 * `policy.clear`, `base` contributes only the names in `policy.pass`.
 */
export function programEnv(
  info: ConnectionInfo,
  {
    extra = {},
    names = {},
    base = serverEnv(),
    policy,
  }: {
    extra?: Readonly<Record<string, string>>;
    names?: Readonly<Record<string, string>>;
    base?: NodeJS.ProcessEnv;
    policy?: EnvPolicy;
  } = {},
): Record<string, string> {
  const env: Record<string, string> = {};
  const cleared = new Set<string>(UCSPI_VARIABLES);
  const passed = policy?.clear ? new Set(policy.pass ?? []) : undefined;
  for (const [k, v] of Object.entries(base)) {
    if (v === undefined || k.startsWith('TCPKIT_') || cleared.has(k)) continue;
    if (passed && !passed.has(k)) continue;
    env[k] = v;
  }
  if (info.local.family === 'unix') {
    env.PROTO = 'UNIX';
    env.UNIXLOCALPATH = info.local.address;
    env.UNIXREMOTEPID = String(info.remote.pid ?? 0);
    env.UNIXREMOTEEUID = String(info.remote.uid ?? -1);
    env.UNIXREMOTEEGID = String(info.remote.gid ?? -1);
    return { ...env, ...names, ...extra };
  }
  env.PROTO = 'TCP';
  env.TCPLOCALIP = unmapIPv4(info.local.address);
  env.TCPLOCALPORT = String(info.local.port);
  env.TCPREMOTEIP = unmapIPv4(info.remote.address);
  env.TCPREMOTEPORT = String(info.remote.port);
  return { ...env, ...names, ...extra };
}

async function nameOf(address: string, port: number): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), LOOKUP_TIMEOUT_MS);
  });
  try {
    // getnameinfo (libc): /etc/hosts first, then DNS, as tcpserver's lookup does.
    const found = dns.lookupService(address, port).then(
      ({ hostname }) => hostname,
      () => undefined,
    );
    const name = await Promise.race([found, timeout]);
    // getnameinfo falls back to the numeric form when there is no name: that is "unknown".
    return name && !/^[\d.]+$|:/.test(name) ? name : undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** TCPREMOTEHOST and TCPLOCALHOST for `info`, each set only when a name is found. */
export async function lookupNames(info: ConnectionInfo): Promise<Record<string, string>> {
  // A UNIX peer has no address to look up.
  if (info.local.family === 'unix') return {};
  const [remote, local] = await Promise.all([
    nameOf(unmapIPv4(info.remote.address), info.remote.port),
    nameOf(unmapIPv4(info.local.address), info.local.port),
  ]);
  const names: Record<string, string> = {};
  if (remote) names.TCPREMOTEHOST = remote;
  if (local) names.TCPLOCALHOST = local;
  return names;
}

/** A started program: its Child handle, and when its stderr has been read to the end and logged. */
export interface StartedProgram extends Child {
  readonly stderrDone: Promise<void>;
}

/** What startProgram needs. */
export interface StartProgram extends Omit<ExecOptions, 'env'> {
  /** The connected socket: the program's descriptors 0 and 1. The caller closes its own copy afterwards. */
  socket?: net.Socket;
  /** Or a bare accepted descriptor, the launcher's from this call on (never with uid/gid: see program()). */
  fd?: number;
  /** The complete environment (programEnv). */
  env: Record<string, string>;
  /** Each line the program writes on its stderr. */
  onStderr(line: string, pid: number): void;
}

/** Whether the program must run as another user than the server (posix_spawn cannot change ids). */
function needsIds(o: Pick<ExecOptions, 'uid' | 'gid'>): boolean {
  return (o.uid !== undefined && o.uid !== process.getuid?.()) || (o.gid !== undefined && o.gid !== process.getgid?.());
}

/**
 * Start the program on the socket, in a session of its own (as under inetd: a ^C at
 * the server's terminal must not reach the programs; the server drains them on
 * SIGINT, then sends SIGTERM after the grace period). Rejects with SystemCallError
 * (`spawn ENOENT PROGRAM`, EACCES, ENOMEM, EAGAIN, ...) when it cannot be started.
 *
 * Normally through the native launcher (../net/launcher.ts). A program that must
 * run as another uid/gid than the server's (a per-service `user` in a config file,
 * the server itself still root) is started with child_process.spawn instead, which
 * can setgid/setuid between fork and exec; posix_spawn cannot.
 */
export async function startProgram(o: StartProgram): Promise<StartedProgram> {
  if (needsIds(o)) return startAsUser(o);
  // Off the event loop's thread (the launcher's own thread runs posix_spawn): accepting goes on while it execs.
  const stderr = o.stderr === 'inherit' ? 'inherit' : 'pipe';
  // Its stderr lines are read by the launcher's thread (no socket per program here), with its pid.
  return launchOff({ file: o.argv[0]!, argv: o.argv, env: o.env, socket: o.socket, fd: o.fd, setsid: true, stderr, onStderr: o.onStderr });
}

/** The child_process path, only for a program run as another user (see startProgram). */
function startAsUser(o: StartProgram): Promise<StartedProgram> {
  const [program, ...args] = o.argv;
  const child = spawn(program!, args, { stdio: [o.socket!, o.socket!, o.stderr === 'inherit' ? 'inherit' : 'pipe'], env: o.env, uid: o.uid, gid: o.gid, detached: true });
  return new Promise((resolve, reject) => {
    child.once('error', (err) => {
      if (child.pid === undefined) reject(new SystemCallError('spawn', program!, err));
    });
    child.once('spawn', () => {
      const pid = child.pid!;
      const stderrDone = eachLine(child.stderr, MAX_STDERR_LINE, (line) => o.onStderr(line, pid));
      resolve(Object.assign(fromChildProcess(child), { stderrDone }));
    });
  });
}

/**
 * The exec service's capability (ServiceModule.program): a process model that
 * starts a process per connection (fork) starts the program itself, with no Node
 * process in between. `options` were checked when the server was made.
 */
export function program(options: Readonly<Record<string, unknown>>): ProgramLauncher {
  const o = options as unknown as ExecOptions;
  return {
    async environment(info, extra) {
      const names = o.resolve ? await lookupNames(info) : {};
      return programEnv(info, { extra, names, policy: o.env });
    },
    start: (socket, env, onStderr) => startProgram({ ...o, socket, env, onStderr }),
    // child_process (another user) needs a socket: such a service stays on the socket path.
    ...(!needsIds(o) && { startFd: (fd: number, env: Record<string, string>, onStderr: (line: string, pid: number) => void) => startProgram({ ...o, fd, env, onStderr }) }),
  };
}

/**
 * The exec service where the connection is a socket served in-process (iterative; prefork and threads on the socket path):
 * spawn the program, close this process's copy of the socket, wait for the exit.
 * A non-zero exit or a signal is logged; it is the program's business, not a failure.
 */
export default async function exec(ctx: ServiceContext): Promise<void> {
  // Checked once when the server was made (validateServiceSpec), not per connection: a
  // program gone since is the launcher's ENOENT, logged below, not an invalid option.
  const options = ctx.options as unknown as ExecOptions;
  const names = options.resolve ? await lookupNames(ctx.info) : {};
  const env = programEnv(ctx.info, { extra: ctx.env, names, policy: options.env });
  let child: StartedProgram;
  try {
    child = await startProgram({ ...options, socket: ctx.socket, env, onStderr: (line, pid) => ctx.log(stderrReason(pid, line), STDERR_CODE) });
  } catch (err) {
    // `error where spawn code ENOENT ...`, as the fork model logs the same failure (describeError's code and message).
    const { code, message } = describeError(err, 'EIO');
    ctx.log(message, spawnFailedCode(code));
    ctx.socket.destroy();
    return;
  }
  // The program has its own copy of the socket now; this process closes its copy.
  ctx.socket.destroy();
  const { code, signal } = await child.exited;
  // Its stderr usually ends with it, a moment after the exit is reaped: log those last lines first, so they
  // come before the connection's `end`. A descendant that keeps the pipe open holds the end back at most 1 s.
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([child.stderrDone, new Promise<void>((resolve) => (timer = setTimeout(resolve, STDERR_DRAIN_MS)))]);
  clearTimeout(timer);
  if (signal) ctx.log(`pid ${child.pid} ended by signal ${signal}`, 'exit');
  else if (code !== 0) ctx.log(`pid ${child.pid} exitcode ${code}`, 'exit');
}
/** The program holds its own copy of the socket: the connection lasts until it has exited (connection/run.ts). */
exec.holdsConnection = true;
