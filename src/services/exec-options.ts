/**
 * The exec service's options and their checks: the program found and runnable, the
 * ids, the environment policy. Apart from ./exec.ts so that the service registry
 * (every process that serves a connection loads it) and `tcpkit check` check an exec
 * spec without loading the launcher, the name lookups and the child handling.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ENV_NAME } from '../admission/access.js';
import { InvalidOptionError } from '../errors.js';
import { findProgram } from '../net/programs.js';

/** The exec service's options (ServiceSpec.options of `{ name: 'exec' }`). */
export interface ExecOptions {
  /** PROGRAM ARGS...: run without a shell; PROGRAM is looked up in PATH if it has no slash. Required. */
  argv: string[];
  /** Look up TCPREMOTEHOST and TCPLOCALHOST (getnameinfo, /etc/hosts then DNS), as tcpserver -h. Default false. */
  resolve?: boolean;
  /** Run the program as this uid (the server must be root). Default: the server's. */
  uid?: number;
  /** Run the program as this gid (the server must be root). Default: the server's. */
  gid?: number;
  /**
   * Which of the server's own variables the program inherits. Default `{ clear: false }`:
   * all of them (as tcpserver), minus TCPKIT_* and inherited UCSPI variables. With
   * `clear: true` only the names in `pass` (as systemd and xinetd do); the UCSPI
   * variables and an access rule's are set either way.
   */
  env?: EnvPolicy;
  /**
   * The program's descriptor 2: `log` (default) a pipe whose lines the server logs as
   * `stderr pid P id I text T`; `inherit` the server's own stderr, untouched (tcpserver's way).
   */
  stderr?: 'log' | 'inherit';
}

/** What of the server's environment reaches an exec'd program (ExecOptions.env). */
export interface EnvPolicy {
  /** Start from an empty environment instead of the server's. Default false. */
  clear: boolean;
  /** With `clear`, the server's variables still passed on, by name. Default none. */
  pass?: readonly string[];
}


/**
 * Whether `ids` (after a drop: that uid, and that gid as its only group) may
 * execute `file`: search permission on every directory above it and execute
 * permission on the file itself, read from the modes and owners as the kernel
 * would decide (ACLs aside). Root (uid 0) needs one execute bit on the file. Used
 * before binding, while the server still runs as root, so that a program the
 * target user cannot run fails at start rather than on every connection.
 * Returns undefined when allowed, else the reason.
 */
export function executableBy(file: string, ids: { uid?: number; gid?: number }): string | undefined {
  const uid = ids.uid ?? process.geteuid?.() ?? 0;
  const gid = ids.gid ?? process.getegid?.() ?? 0;
  const may = (st: fs.Stats, bit: number): boolean => {
    if (uid === 0) return bit !== 1 || (st.mode & 0o111) !== 0 || st.isDirectory();
    if (st.uid === uid) return (st.mode & (bit << 6)) !== 0;
    if (st.gid === gid) return (st.mode & (bit << 3)) !== 0;
    return (st.mode & bit) !== 0;
  };
  const absolute = path.resolve(file);
  const parts = absolute.split('/').filter(Boolean);
  for (let i = 0; i < parts.length; i++) {
    const dir = `/${parts.slice(0, i).join('/')}`;
    try {
      if (!may(fs.statSync(dir), 1)) return `uid ${uid} gid ${gid} cannot search ${dir}`;
    } catch (err) {
      return `${dir}: ${(err as NodeJS.ErrnoException).code ?? 'cannot stat'}`;
    }
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(absolute);
  } catch (err) {
    return `${absolute}: ${(err as NodeJS.ErrnoException).code ?? 'cannot stat'}`;
  }
  if (!st.isFile()) return `${absolute} is not a regular file`;
  if (!may(st, 1)) return `uid ${uid} gid ${gid} may not execute ${absolute} (mode ${(st.mode & 0o7777).toString(8)}, owner ${st.uid}:${st.gid})`;
  return undefined;
}

/**
 * Check that the program of `argv` can be run by `ids` (the user the server or the
 * service drops to), from the modes of the file and its directories; throws
 * InvalidOptionError naming `option`. Call it while still root, before binding.
 */
export function checkRunnableBy(argv0: string, ids: { uid?: number; gid?: number }, option = 'exec'): void {
  if (ids.uid === undefined && ids.gid === undefined) return;
  const found = findProgram(argv0);
  const why = found === undefined ? 'not found' : executableBy(found, ids);
  if (why !== undefined) throw new InvalidOptionError(option, `program ${JSON.stringify(argv0)} cannot be run as the target user: ${why}`);
}

/** Check exec options once, at construction; throws InvalidOptionError naming the field. */
export function checkExecOptions(options: Readonly<Record<string, unknown>> | undefined): ExecOptions {
  const argv = options?.argv;
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) {
    throw new InvalidOptionError('exec', 'needs PROGRAM [ARGS...] (a non-empty list of strings)');
  }
  if (argv[0] === '' || findProgram(argv[0]) === undefined) {
    throw new InvalidOptionError('exec', `program ${JSON.stringify(argv[0])} not found or not executable`);
  }
  for (const key of ['uid', 'gid'] as const) {
    const v = options?.[key];
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0)) {
      throw new InvalidOptionError(key, `must be a numeric id >= 0, got ${JSON.stringify(v)}`);
    }
  }
  return {
    argv: argv as string[],
    resolve: options?.resolve === true,
    uid: options?.uid as number | undefined,
    gid: options?.gid as number | undefined,
    ...(options?.env !== undefined && { env: checkEnvPolicy(options.env) }),
    ...(options?.stderr !== undefined && { stderr: checkStderr(options.stderr) }),
  };
}

function checkStderr(value: unknown): 'log' | 'inherit' {
  if (value !== 'log' && value !== 'inherit') throw new InvalidOptionError('stderr', `must be "log" or "inherit", got ${JSON.stringify(value)}`);
  return value;
}

function checkEnvPolicy(value: unknown): EnvPolicy {
  const v = value as Partial<EnvPolicy> | null;
  if (typeof v !== 'object' || v === null || typeof v.clear !== 'boolean') {
    throw new InvalidOptionError('env', `must be { clear: boolean, pass?: [NAME...] }, got ${JSON.stringify(value)}`);
  }
  const pass = v.pass ?? [];
  if (!Array.isArray(pass)) throw new InvalidOptionError('env.pass', `must be a list of names, got ${JSON.stringify(pass)}`);
  for (const name of pass) {
    if (typeof name !== 'string' || !ENV_NAME.test(name)) {
      throw new InvalidOptionError('env.pass', `${JSON.stringify(name)} is not a variable name (letters, digits, _)`);
    }
  }
  if (!v.clear && pass.length > 0) throw new InvalidOptionError('env.pass', 'applies with clear: true (without it every variable is passed)');
  return { clear: v.clear, pass: [...pass] };
}

