// The C load generators of the CPU-per-connection table (bench/c/connclient.c) and the bulk
// table (bench/c/bulkclient.c): compiled at run time with the system's cc, so the benchmark
// stands on its own and the client costs as little as it can on the cores it shares with the server.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, spawnTracked } from './procs.js';

const built = new Map();
let dir;

/** Compile bench/c/NAME.c once per run (cc -O2) into a temporary directory; returns the binary's path. */
function buildC(name) {
  if (built.has(name)) return built.get(name);
  if (!dir) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-bench-'));
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  const source = path.join(ROOT, 'bench', 'c', `${name}.c`);
  const bin = path.join(dir, name);
  try {
    execFileSync(process.env.CC ?? 'cc', ['-O2', '-o', bin, source], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new Error(`cannot compile ${path.relative(ROOT, source)} with ${process.env.CC ?? 'cc'}: ${String(err.stderr ?? err.message).trim().split('\n')[0]}`);
  }
  built.set(name, bin);
  return bin;
}

/** The short-connection client (bench/c/connclient.c), compiled; throws when it cannot be. */
export const buildConnClient = () => buildC('connclient');
/** The bulk client (bench/c/bulkclient.c), compiled; throws when it cannot be. */
export const buildBulkClient = () => buildC('bulkclient');

/**
 * One run of the C bulk client: `bytes` through one connection, every byte checked.
 * Resolves with { bytes, seconds, bytesPerSecond, errors } (errors 1: the echo differed, was short, or failed).
 */
export async function runBulkClient(port, bytes, { timeoutMs = 300_000 } = {}) {
  const child = spawnTracked([buildBulkClient(), '127.0.0.1', String(port), String(bytes)], { raiseLimit: false });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await child.exited;
  clearTimeout(timer);
  const m = /^(\d+) ([\d.]+) ([\d.]+) (\d+)$/m.exec(child.stdoutText());
  if (!m) throw new Error(`bulkclient exited ${signal ?? code} without a report: ${child.stderrText().trim().split('\n')[0] ?? ''}`);
  const seconds = Number(m[2]);
  return { bytes: Number(m[1]), seconds, bytesPerSecond: seconds > 0 ? Number(m[1]) / seconds : 0, errors: Number(m[4]), firstError: child.stderrText().trim().split('\n')[0] || undefined };
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
