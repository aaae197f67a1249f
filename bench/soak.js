#!/usr/bin/env node
// Soak: many short echo connections through one server; afterwards its open descriptors,
// child count and memory must return to where they started.
//
//   npm run soak                      100,000 each through event and prefork; 3,000 through fork --spare
//   node bench/soak.js event 5000     one model, N connections
//
// fork --spare runs a Node process per connection (about 20-40 a second on this 2-core
// machine), so its full count is 3,000, not 100,000: that alone would take about an hour.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'tcpkit.js');

/** The models soaked and their server arguments. */
export const SOAK_MODELS = {
  event: ['--model', 'event', '-c', '200'],
  prefork: ['--model', 'prefork', '--workers', '4', '-c', '200'],
  'fork-spare': ['--model', 'fork', '--spare', '4', '-c', '40'],
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function children(pid) {
  let n = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) n++;
    } catch {
      // exited meanwhile
    }
  }
  return n;
}
const fds = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;
const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
const snapshot = (pid) => ({ fds: fds(pid), children: children(pid), rss: rss(pid) });

/** One echo of `data`; rejects on a wrong reply or after timeoutMs. */
function echo(port, data, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('echo hung'));
    }, timeoutMs);
    s.on('data', (c) => chunks.push(c));
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('end', () => {
      clearTimeout(timer);
      s.destroy();
      const got = Buffer.concat(chunks);
      if (got.equals(data)) resolve();
      else reject(new Error(`echo: ${got.length} bytes back of ${data.length}, not equal`));
    });
    s.end(data);
  });
}

/** Wait until `fn()` is true, polling; false after timeoutMs. */
async function until(fn, timeoutMs) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (fn()) return true;
    await sleep(200);
  }
  return fn();
}

/**
 * Run `count` short connections (`concurrency` at once) through a fresh server of `model`.
 * Resolves { model, count, seconds, rate, before, after, failures }. `before` is taken after
 * a warm-up of 200 connections; `after` once the server is quiet again.
 */
export async function soak(model, count, { concurrency = 50 } = {}) {
  const proc = spawn(process.execPath, [BIN, 'serve', '--host', '127.0.0.1', '--port', '0', '--print-port', '-q', ...SOAK_MODELS[model]], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stderr.on('data', (c) => (log += c));
  const exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  try {
    const port = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no port: ${log}`)), 30_000);
      proc.stdout.once('data', (c) => {
        clearTimeout(t);
        resolve(Number(String(c).trim()));
      });
    });
    const data = randomBytes(512);
    const run = async (n) => {
      let next = 0;
      let failures = 0;
      const lane = async () => {
        while (next < n) {
          next++;
          await echo(port, data).catch(() => failures++);
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, n) }, lane));
      return failures;
    };
    await run(Math.min(200, count));
    const expectedChildren = SOAK_MODELS[model].includes('prefork') ? 4 : SOAK_MODELS[model].includes('--spare') ? 4 : 0;
    await until(() => children(proc.pid) === expectedChildren, 30_000);
    await sleep(500);
    const before = snapshot(proc.pid);
    const t0 = Date.now();
    const failures = await run(count);
    const seconds = (Date.now() - t0) / 1000;
    // Quiet again: the same descriptors and children as before (spares refilled, paced one per CPU, workers steady).
    await until(() => fds(proc.pid) <= before.fds && children(proc.pid) === before.children, 90_000);
    const after = snapshot(proc.pid);
    return { model, count, seconds, rate: Math.round(count / seconds), before, after, failures };
  } finally {
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(t);
  }
}

/** What a soak must show: no failure, descriptors and children back, memory within 32 MB + 50 % of the start. */
export function soakProblems(r) {
  const problems = [];
  if (r.failures > 0) problems.push(`${r.failures} connections failed`);
  if (r.after.fds > r.before.fds) problems.push(`descriptors ${r.before.fds} -> ${r.after.fds}`);
  if (r.after.children !== r.before.children) problems.push(`children ${r.before.children} -> ${r.after.children}`);
  if (r.after.rss > r.before.rss * 1.5 + 32 * 1048576) problems.push(`RSS ${r.before.rss} -> ${r.after.rss}`);
  return problems;
}

const mb = (b) => (b / 1048576).toFixed(1);
export const describe = (r) =>
  `${r.model}: ${r.count} connections in ${r.seconds.toFixed(1)} s (${r.rate}/s), failures ${r.failures}; ` +
  `fds ${r.before.fds} -> ${r.after.fds}, children ${r.before.children} -> ${r.after.children}, RSS ${mb(r.before.rss)} -> ${mb(r.after.rss)} MB`;

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [model, n] = process.argv.slice(2);
  const plan = model ? [[model, Number(n ?? 1000)]] : [['event', 100_000], ['prefork', 100_000], ['fork-spare', 3000]];
  let bad = 0;
  for (const [m, count] of plan) {
    const r = await soak(m, count);
    const problems = soakProblems(r);
    console.log(`${describe(r)}${problems.length ? `  PROBLEMS: ${problems.join('; ')}` : '  ok'}`);
    if (problems.length) bad++;
  }
  process.exit(bad ? 1 : 0);
}
