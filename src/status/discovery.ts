/**
 * How `tcpkit status --pid PID` finds a server's admin endpoint: a server with an
 * admin endpoint writes a small state file named by its pid, and removes it when
 * it closes. The directory is private to the user: `$XDG_RUNTIME_DIR/tcpkit/`
 * where that is set (systemd makes it per-user, mode 0700), else
 * `$TMPDIR/tcpkit-UID/` created mode 0700.
 *
 * A server killed with SIGKILL leaves its file behind; readers check that the pid
 * is alive and started when the file says, so a stale file or a reused pid is ignored.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

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

/** The directory state files live in. Default: `$XDG_RUNTIME_DIR/tcpkit`, else `$TMPDIR/tcpkit-UID`. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TCPKIT_STATE_DIR) return env.TCPKIT_STATE_DIR;
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'tcpkit');
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return path.join(os.tmpdir(), `tcpkit-${uid}`);
}

/** The state file of `pid`. */
export function stateFile(pid: number, dir = stateDir()): string {
  return path.join(dir, `${pid}.json`);
}

/** Write this process's record (atomically: write then rename). Returns the path, for removal. */
export function writeState(record: StateRecord, dir = stateDir()): string {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = stateFile(record.pid, dir);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
  return file;
}

/** Remove a state file; a missing file is fine. */
export function removeState(file: string): void {
  fs.rmSync(file, { force: true });
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
export function readState(pid: number, { dir = stateDir(), startedAt }: { dir?: string; startedAt?: number } = {}): StateRecord | undefined {
  let record: StateRecord;
  try {
    record = JSON.parse(fs.readFileSync(stateFile(pid, dir), 'utf8')) as StateRecord;
  } catch {
    return undefined;
  }
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
