/**
 * What the code around a started child needs without loading the launcher (native):
 * where execvp(3) finds a program, and the child's stderr pipe read as bounded lines.
 * The exec service's option checks (services/exec-options.ts) and a fork child's
 * report channel (workers/child-report.ts) run in processes that never launch.
 */
import fs from 'node:fs';
import path from 'node:path';

/** Find PROGRAM as execvp would: a path with a slash as is, else the first executable in `envPath`. */
export function findProgram(program: string, envPath = process.env.PATH ?? '/usr/bin:/bin'): string | undefined {
  const executable = (p: string) => {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return fs.statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (program.includes('/')) return executable(program) ? program : undefined;
  for (const dir of envPath.split(':')) {
    const p = path.join(dir || '.', program);
    if (executable(p)) return p;
  }
  return undefined;
}

/**
 * Split what a child writes on a pipe into lines (a trailing `\r` dropped), bounded so
 * that a child cannot make this process buffer without end: a line longer than `max`
 * characters is handed on in `max`-sized pieces. Resolves once the stream has ended,
 * closed or failed, and its last line (one without its newline too) is out. No stream:
 * resolved at once.
 */
export function eachLine(stream: NodeJS.ReadableStream | null | undefined, max: number, onLine: (line: string) => void): Promise<void> {
  if (!stream) return Promise.resolve();
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      onLine(pending.slice(0, nl).replace(/\r$/, ''));
      pending = pending.slice(nl + 1);
    }
    while (pending.length > max) {
      onLine(pending.slice(0, max));
      pending = pending.slice(max);
    }
  });
  return new Promise<void>((resolve) => {
    const done = () => {
      if (pending) onLine(pending);
      pending = '';
      resolve();
    };
    stream.once('end', done);
    stream.once('close', done);
    stream.once('error', done);
  });
}
