/**
 * The server's process title: `tcpkit serve ARGS` in `ps`'s args column (instead of
 * `node /path/to/bin/tcpkit.js serve ARGS`) and `tcpkit` as the process name (/proc/PID/comm),
 * so `pidof tcpkit`, `pgrep -x tcpkit` and `ps -C tcpkit` find the server whatever path it was
 * installed at, and `pgrep -f 'tcpkit serve'` no longer needs the script's name.
 */
import fs from 'node:fs';

/** The process name `pidof`/`pgrep -x` match. Linux keeps 15 bytes of it. */
export const PROCESS_NAME = 'tcpkit';

/**
 * Set this process's title to `tcpkit COMMAND ARGV...` and its name to `tcpkit`. Changes
 * process-wide state (process.title overwrites the argv area /proc/PID/cmdline shows, cut to
 * that area's length; process.argv is unchanged, so a SIGUSR2 successor still starts as this
 * one did). Node sets the name (comm) to the first 15 bytes of the title, `tcpkit serve --`,
 * which `pgrep -x tcpkit` does not match: the name is then written on its own through
 * /proc/self/comm (the main thread's, which is the process's). Best effort: on a system
 * without /proc the title alone is set.
 */
export function setProcessTitle(command: string, argv: readonly string[]): void {
  process.title = [PROCESS_NAME, command, ...argv].join(' ');
  try {
    fs.writeFileSync('/proc/self/comm', PROCESS_NAME);
  } catch {
    // No writable /proc (not Linux, or a sandbox that hides it): the title is still there for ps -f and pgrep -f.
  }
}
