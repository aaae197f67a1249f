// Helpers of the descriptor-exhaustion tests (test/e2e/hostile-descriptors.test.ts, descriptors-pools.test.ts):
// a server started under a low `ulimit -n`, clients that hold their connection open, and a process's CPU time.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { BIN, type Exit } from './helpers.js';

/** utime + stime of a process, in seconds (0 once it is gone). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // fields 14 and 15, in clock ticks (USER_HZ 100)
  } catch {
    return 0;
  }
}

export interface Limited {
  proc: ChildProcess;
  pid: number;
  port: number;
  exited: Promise<Exit>;
  log(): string;
}

/** `tcpkit serve ARGS` on 127.0.0.1, port 0, under `ulimit -n LIMIT`; resolves once it printed its port. */
export async function startLimited(args: string[], limit = 128): Promise<Limited> {
  const cmd = `ulimit -n ${limit} && exec "${process.execPath}" "${BIN}" serve --host 127.0.0.1 --port 0 --print-port ${args.join(' ')}`;
  const proc = spawn('bash', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c: string) => (log += c));
  const exited = new Promise<Exit>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no port; stderr:\n${log}`)), 60_000);
    proc.stdout.once('data', (c: Buffer) => {
      clearTimeout(timer);
      resolve(Number(String(c).trim()));
    });
  });
  return { proc, pid: proc.pid!, port, exited, log: () => log };
}

export interface Holding {
  socket: net.Socket;
  connected: Promise<void>;
  done: Promise<Buffer>;
}

/** Connect, send `payload`, keep the write side open until told; resolves what came back at EOF. */
export function holdingClient(port: number, payload: string): Holding {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const chunks: Buffer[] = [];
  const connected = new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
  const done = new Promise<Buffer>((resolve, reject) => {
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => {
      s.destroy();
      resolve(Buffer.concat(chunks));
    });
    s.once('error', reject);
  });
  done.catch(() => {});
  s.write(payload);
  return { socket: s, connected, done };
}
