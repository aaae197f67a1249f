// The C load generator of the CPU-per-connection table (bench/c/connclient.c): compiled at
// run time with the system's cc, so the benchmark stands on its own and the client costs
// as little as it can on the cores it shares with the server.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, spawnTracked } from './procs.js';

export const CONNCLIENT_SOURCE = path.join(ROOT, 'bench', 'c', 'connclient.c');

let built;

/** Compile bench/c/connclient.c once per run (cc -O2) into a temporary directory; returns the binary's path. */
export function buildConnClient() {
  if (built) return built;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-bench-'));
  const bin = path.join(dir, 'connclient');
  try {
    execFileSync(process.env.CC ?? 'cc', ['-O2', '-o', bin, CONNCLIENT_SOURCE], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new Error(`cannot compile ${path.relative(ROOT, CONNCLIENT_SOURCE)} with ${process.env.CC ?? 'cc'}: ${String(err.stderr ?? err.message).trim().split('\n')[0]}`);
  }
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  built = bin;
  return bin;
}

/**
 * One run of the C client: `procs` processes x `conns` connections, each asking for (requests)
 * or echoing (echo) `bytes` bytes. Resolves with { conns, seconds, perSecond, errors }.
 */
export async function runConnClient(port, { procs, conns, bytes, mode = 'requests', timeoutMs = 300_000 }) {
  const child = spawnTracked([buildConnClient(), '127.0.0.1', String(port), String(procs), String(conns), String(bytes), mode], { raiseLimit: false });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await child.exited;
  clearTimeout(timer);
  const m = /^(\d+) ([\d.]+) ([\d.]+) (\d+)$/m.exec(child.stdoutText());
  if (!m) throw new Error(`connclient exited ${signal ?? code} without a report: ${child.stderrText().trim().split('\n')[0] ?? ''}`);
  return { conns: Number(m[1]), seconds: Number(m[2]), perSecond: Number(m[3]), errors: Number(m[4]) };
}
