/**
 * `--pid-file PATH`: the server's pid for `kill -HUP $(cat PATH)`, written once the
 * server listens and removed when it exits, as nginx's and sshd's are.
 *
 * Written atomically (a temporary file in the same directory, then rename(2)), so a
 * reader never sees an empty or half-written file; removed only while it still holds
 * our pid, so a successor (SIGUSR2 handover) that has written its own is left alone.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ExitCode, TcpkitError } from '../errors.js';

/** The error for a pid file that cannot be written: names the path and the errno code. */
function pidFileError(file: string, err: unknown): TcpkitError {
  const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return new TcpkitError('TCPKIT_PID_FILE', `--pid-file ${file}: cannot write: ${code}`, { exitCode: ExitCode.TEMPORARY, cause: err });
}

/**
 * Whether `file` could be written by this process (its directory exists and is writable,
 * and `file` is not a directory): `tcpkit check` and serve before binding. Throws as writePidFile.
 */
export function checkPidFile(file: string): void {
  try {
    fs.accessSync(path.dirname(file), fs.constants.W_OK | fs.constants.X_OK);
    if (fs.statSync(file, { throwIfNoEntry: false })?.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
  } catch (err) {
    throw pidFileError(file, err);
  }
}

/** Write `pid` to `file` atomically. Throws TcpkitError TCPKIT_PID_FILE (exit 111) naming the path. */
export function writePidFile(file: string, pid = process.pid): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${pid}.tmp`);
  try {
    fs.writeFileSync(tmp, `${pid}\n`, { mode: 0o644, flag: 'wx' });
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw pidFileError(file, err);
  }
}

/**
 * `--pid-file` once serving (serve, serve --config): write `file` if given; when it cannot be
 * written, `release` stops what was started (the server, its admin endpoint), then the error is thrown.
 */
export async function writePidFileOrRelease(file: string | undefined, release: () => Promise<unknown>): Promise<void> {
  if (file === undefined) return;
  try {
    writePidFile(file);
  } catch (err) {
    await release();
    throw err;
  }
}

/** Remove `file` if it still holds `pid`; never throws (the server is exiting). */
export function removePidFile(file: string, pid = process.pid): void {
  try {
    if (fs.readFileSync(file, 'utf8').trim() === String(pid)) fs.unlinkSync(file);
  } catch {
    // Gone already, or unreadable: nothing of ours to remove.
  }
}
