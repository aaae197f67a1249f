// Helpers shared by the super-server tests.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, childrenOf, connectTo, eventually, exchange } from './helpers.js';

/** Connect, send nothing (half-close), read everything to EOF, parse one JSON line. */
export async function ask(port, opts) {
  const s = await connectTo(port, opts);
  const out = await exchange(s, Buffer.alloc(0));
  return JSON.parse(out.toString());
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-test-'));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Whether ::1 can be bound here (IPv6 loopback). */
export function hasIPv6() {
  return Object.values(os.networkInterfaces()).flat().some((i) => i && i.family === 'IPv6' && i.address === '::1');
}

/**
 * Start `tcpkit serve --config FILE --print-port` and resolve once it has printed
 * `count` bindings (`SERVICE LISTEN HOST:PORT`). Returns { ports: { 'SERVICE LISTEN': port },
 * proc, pid, log(), waitFor(re, { from }), stop(signal) }.
 */
export async function startConfigServer(file, count, { env, args = [], timeoutMs = 20_000 } = {}) {
  const proc = spawn(process.execPath, [BIN, 'serve', '--config', file, '--print-port', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  let stdout = '';
  const waiters = new Set();
  const check = () => {
    for (const w of waiters) {
      const m = w.re.exec(stderr.slice(w.from));
      if (m) {
        waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(m);
      }
    }
  };
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c) => {
    stderr += c;
    check();
  });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const ports = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not print its ports; stderr:\n${stderr}`)), timeoutMs);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (c) => {
      stdout += c;
      const lines = stdout.split('\n').filter(Boolean);
      if (lines.length >= count) {
        clearTimeout(timer);
        resolve(Object.fromEntries(lines.map((l) => {
          const [service, listen, local] = l.split(' ');
          return [`${service} ${listen}`, Number(/:(\d+)$/.exec(local)[1])];
        })));
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited ${code} before listening; stderr:\n${stderr}`));
    });
  });
  return {
    ports,
    proc,
    pid: proc.pid,
    exited,
    log: () => stderr,
    waitFor(re, { from = 0, timeoutMs: t = 20_000 } = {}) {
      return new Promise((resolve, reject) => {
        const w = { re, from, resolve };
        w.timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`timed out waiting for ${re} in server log:\n${stderr}`));
        }, t);
        waiters.add(w);
        check();
      });
    },
    async stop(signal = 'SIGTERM', t = 30_000) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), t);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

/**
 * Stop servers the way an operator does (SIGTERM), after checking that every
 * program and child they started is gone; the exit must be clean.
 */
export async function stopAll(servers) {
  const problems = [];
  for (const s of servers) {
    if (s.proc.exitCode !== null || s.proc.signalCode !== null) continue;
    try {
      await eventually(() => childrenOf(s.pid).length === 0, { timeoutMs: 10_000, message: `children of server ${s.pid} to end` });
    } catch (err) {
      problems.push(err.message);
    }
    const r = await s.stop('SIGTERM');
    if (r.code !== 0) problems.push(`server ${s.pid} exited ${r.code ?? r.signal}`);
  }
  if (problems.length) throw new Error(problems.join('\n'));
}
