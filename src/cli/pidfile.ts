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

/** Write `pid` to `file` atomically. Throws TcpkitError TCPKIT_PID_FILE (exit 111) naming the path. */
export function writePidFile(file: string, pid = process.pid): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${pid}.tmp`);
  try {
    fs.writeFileSync(tmp, `${pid}\n`, { mode: 0o644, flag: 'wx' });
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new TcpkitError('TCPKIT_PID_FILE', `--pid-file ${file}: cannot write: ${code}`, { exitCode: ExitCode.TEMPORARY, cause: err });
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
