// Processes the benchmark script starts: servers and peers (with `ulimit -n` raised
// to the hard limit, through bash, which then execs the server so the pid is the
// server's own), and load-generator runs. Every process is tracked and killed by pid
// when the script ends, whatever the way it ends.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = path.join(ROOT, 'bin', 'tcpkit.js');

const started = new Set();

/** Kill every process this script started and that is still running (by pid, SIGKILL). */
export function killAll() {
  for (const p of started) {
    if (p.exitCode === null && p.signalCode === null) {
      try {
        p.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Spawn `argv` with the soft descriptor limit raised as far as allowed (`ulimit -n`), tracked.
 * Returns the ChildProcess with `.output()` (stdout+stderr so far) and `.stop()`.
 */
export function spawnTracked(argv, { cwd, env, raiseLimit = true, stdin = 'ignore' } = {}) {
  const cmd = raiseLimit
    ? ['bash', '-c', 'ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"', 'bash', ...argv]
    : argv;
  const child = spawn(cmd[0], cmd.slice(1), { cwd, env: { ...process.env, ...env }, stdio: [stdin, 'pipe', 'pipe'] });
  started.add(child);
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (c) => {
    if (out.length < 4_000_000) out += c;
  });
  child.stderr.on('data', (c) => {
    if (err.length < 200_000) err += c;
  });
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('error', () => {});
  child.stdoutText = () => out;
  child.stderrText = () => err;
  child.stop = async (signal = 'SIGTERM', ms = 10_000) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    const r = await child.exited;
    clearTimeout(timer);
    return r;
  };
  return child;
}

/** A port free on 127.0.0.1 right now (for peers that cannot bind port 0 and tell us). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolve once 127.0.0.1:port accepts a connection (polling), or reject after ms. */
export async function waitListening(port, child, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`exited ${child.exitCode ?? child.signalCode}: ${firstLine(child.stderrText())}`);
    }
    const ok = await new Promise((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`not listening on 127.0.0.1:${port} after ${ms} ms`);
}

/** Resolve with the first line of stdout that matches `re` (its match), or reject. */
export async function waitStdout(child, re, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const m = re.exec(child.stdoutText());
    if (m) return m;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`exited ${child.exitCode ?? child.signalCode}: ${firstLine(child.stderrText() || child.stdoutText())}`);
    }
    await sleep(50);
  }
  throw new Error(`no ${re} on stdout after ${ms} ms; stderr: ${firstLine(child.stderrText())}`);
}

export function firstLine(text) {
  return (text ?? '').trim().split('\n')[0]?.slice(0, 200) ?? '';
}

/**
 * Run `tcpkit bench HOST PORT ARGS --json -q` in its own process and resolve with its report.
 * Rejects when it prints no report (usage error, crash).
 */
export async function runLoad(port, args, { timeoutMs = 300_000 } = {}) {
  // `port` may be a UNIX socket target, `unix:PATH`.
  const target = typeof port === 'string' && port.startsWith('unix:') ? [port] : ['127.0.0.1', String(port)];
  const child = spawnTracked([process.execPath, BIN, 'bench', ...target, ...args, '--json', '-q']);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const { code } = await child.exited;
  clearTimeout(timer);
  try {
    return JSON.parse(child.stdoutText());
  } catch {
    throw new Error(`tcpkit bench ${args.join(' ')} exited ${code} without a report: ${firstLine(child.stderrText())}`);
  }
}

/** The soft and hard descriptor limits a raised child gets. */
export async function descriptorLimit() {
  const child = spawnTracked(['bash', '-c', 'ulimit -n'], {});
  await child.exited;
  return Number(child.stdoutText().trim());
}

/** Number of open descriptors of a process tree (pids from processTree). */
export function descriptorsOf(pids) {
  let n = 0;
  for (const pid of pids) {
    try {
      n += fs.readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      // gone
    }
  }
  return n;
}

export const cores = () => os.cpus().length;
