/**
 * How `tcpkit status --pid PID` finds a server's admin endpoint: a server with an
 * admin endpoint writes a small state file named by its pid, and removes it when
 * it closes. The directory is private to the user: `$XDG_RUNTIME_DIR/tcpkit/`
 * where that is set and belongs to the user (systemd makes it per-user, mode
 * 0700), else `$TMPDIR/tcpkit-UID/` created mode 0700. An existing directory is
 * used only if it is this user's own and no one else can write to it (ensureStateDir).
 *
 * A server killed with SIGKILL leaves its file behind; readers check that the pid
 * is alive and started when the file says, so a stale file or a reused pid is ignored.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StateDirError } from '../errors.js';

/** What a server records about itself. */
export interface StateRecord {
  pid: number;
  /** Base URL of the admin endpoint, e.g. `http://127.0.0.1:9900`. */
  admin: string;
  /** The server's listening address, `host:port`. */
  listen: string;
  /** Milliseconds since the epoch when the server process started (process start, not listen). */
  startedAt: number;
}

const euid = (): number | undefined => (typeof process.geteuid === 'function' ? process.geteuid() : undefined);

/** Whether `dir` exists and belongs to `uid` (a server that dropped to --user keeps root's XDG_RUNTIME_DIR in its environment). */
function ownedBy(dir: string, uid: number | undefined): boolean {
  try {
    return uid === undefined || fs.statSync(dir).uid === uid;
  } catch {
    return false;
  }
}

/**
 * The directory state files live in. Default: `$XDG_RUNTIME_DIR/tcpkit` when that
 * directory belongs to `uid`, else `$TMPDIR/tcpkit-UID`. `TCPKIT_STATE_DIR` overrides both.
 */
export function stateDir(env: NodeJS.ProcessEnv = process.env, uid: number | undefined = euid()): string {
  if (env.TCPKIT_STATE_DIR) return env.TCPKIT_STATE_DIR;
  if (env.XDG_RUNTIME_DIR && ownedBy(env.XDG_RUNTIME_DIR, uid)) return path.join(env.XDG_RUNTIME_DIR, 'tcpkit');
  return path.join(os.tmpdir(), `tcpkit-${uid ?? 'user'}`);
}

/** The state file of `pid`. */
export function stateFile(pid: number, dir = stateDir()): string {
  return path.join(dir, `${pid}.json`);
}

/**
 * Make sure `dir` is a directory only this user can write to: create it mode 0700
 * if it does not exist (with its parents, for a new TCPKIT_STATE_DIR path), then
 * check it without following a link:
 * a directory (not a symlink), owned by this process's user, and not writable by
 * group or others. In a shared /tmp another user may have made `tcpkit-0` first
 * and planted links in it; writing there as root would overwrite their targets.
 * Throws StateDirError naming the directory and what is wrong with it.
 */
export function ensureStateDir(dir: string): void {
  try {
    fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o700 });
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new StateDirError(dir, `cannot create: ${(err as NodeJS.ErrnoException).code}`, err);
  }
  const st = fs.lstatSync(dir);
  if (st.isSymbolicLink()) throw new StateDirError(dir, 'is a symbolic link');
  if (!st.isDirectory()) throw new StateDirError(dir, 'is not a directory');
  const me = euid();
  if (me !== undefined && st.uid !== me) throw new StateDirError(dir, `is owned by uid ${st.uid}, not by this server's uid ${me}`);
  if ((st.mode & 0o022) !== 0) throw new StateDirError(dir, `is writable by group or others (mode ${(st.mode & 0o7777).toString(8)})`);
}

/**
 * Write this process's record atomically: a temporary file created exclusively
 * (O_EXCL, O_NOFOLLOW: never through a planted link), then renamed over the final
 * name (rename replaces a link, it does not follow it). Returns the path, for removal.
 * Throws StateDirError when the directory is unsafe.
 */
export function writeState(record: StateRecord, dir = stateDir()): string {
  ensureStateDir(dir);
  const file = stateFile(record.pid, dir);
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    fs.writeSync(fd, `${JSON.stringify(record)}\n`);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  return file;
}

/**
 * Remove a state file. Never throws: a shutdown must not fail over it (a missing
 * file is fine; one that cannot be removed is left for readers, who ignore the
 * record of a process that is gone).
 */
export function removeState(file: string): void {
  try {
    fs.rmSync(file, { force: true });
  } catch {
    // Left behind; see above.
  }
}

/**
 * The real uid of a running process (the user a server runs as after --user), or
 * undefined. Read from /proc/PID/status: after a drop from root the process is no
 * longer dumpable and its /proc directory is owned by root, whatever its uid.
 */
function ownerOf(pid: number): number | undefined {
  try {
    const m = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The live record of `pid`, or undefined: no file, unreadable, the process is gone,
 * or the pid now belongs to a process that started after the file was written.
 * `startedAt` (from /proc, when known) is compared within 2 s to allow for clock-tick rounding.
 */
export function readState(pid: number, { dir, startedAt }: { dir?: string; startedAt?: number } = {}): StateRecord | undefined {
  // A server that dropped to --user writes in that user's directory: look there too.
  const owner = ownerOf(pid);
  const dirs = dir !== undefined ? [dir] : [...new Set([stateDir(), ...(owner === undefined ? [] : [stateDir(process.env, owner)])])];
  let record: StateRecord | undefined;
  for (const d of dirs) {
    try {
      record = JSON.parse(fs.readFileSync(stateFile(pid, d), 'utf8')) as StateRecord;
      break;
    } catch {
      // Not in this one.
    }
  }
  if (record === undefined) return undefined;
  if (record.pid !== pid || typeof record.admin !== 'string' || !alive(pid)) return undefined;
  if (startedAt !== undefined && Math.abs(record.startedAt - startedAt) > 2000) return undefined;
  return record;
}

/** Live records of every server that left one. */
export function listStates(dir = stateDir()): StateRecord[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: StateRecord[] = [];
  for (const name of names) {
    const m = /^(\d+)\.json$/.exec(name);
    if (!m) continue;
    const r = readState(Number(m[1]), { dir });
    if (r) out.push(r);
  }
  return out.sort((a, b) => a.pid - b.pid);
}
