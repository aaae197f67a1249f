#!/usr/bin/env node
// `npm run bench:launcher`: a program per connection (issue 13), side by side in one run.
//
// 1. `--exec /bin/cat` (fork model: the parent accepts natively and starts cat on the launcher's thread; prefork x2;
//    fork with --proxy-protocol (peer served direct) and with 10 access rules) against
//    `tcpserver -RHl0 ... cat`, xinetd `server = /bin/cat` and `socat TCP-LISTEN,fork EXEC:/bin/cat`,
//    all driven by the same client (`tcpkit bench --mode echo --clients 1`), rounds interleaved,
//    medians: connections/s, CPU ms per connection of the server's whole process tree (reaped
//    children included), p50/p99.
// 2. The fork model's parent-side CPU per connection (`tcpkit serve echo --model fork`, the
//    parent's own utime+stime from /proc/PID/stat, children excluded), for this build and, with
//    `--before DIR` (a checkout of an earlier commit with dist/ built), for that one.
//
//   node bench/launcher.js [--conns N] [--fork-conns N] [--rounds R] [--before DIR [--before-label TEXT]] [--json]
//
// It prints its tables (markdown) on stdout; --json prints { meta, exec, fork, markdown } instead,
// which `npm run bench` (bench/run.js) reads to put section 6 and its goals into docs/benchmarks.md.
// It never edits docs/benchmarks.md itself: that document holds the figures of one run only.
// Every process started here is killed by pid when the script ends (bench/lib/procs.js).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, BIN, killAll, runLoad, spawnTracked, waitStdout } from './lib/procs.js';
import * as peers from './lib/peers.js';

const { values } = parseArgs({
  options: {
    conns: { type: 'string', default: '400' },
    'fork-conns': { type: 'string', default: '150' },
    rounds: { type: 'string', default: '3' },
    bytes: { type: 'string', default: '100' },
    before: { type: 'string' },
    'before-label': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const CONNS = Number(values.conns);
const FORK_CONNS = Number(values['fork-conns']);
const ROUNDS = Number(values.rounds);
const BYTES = Number(values.bytes);
const TICKS = 100; // USER_HZ: /proc/PID/stat counts CPU in 1/100 s.
const IDLE_SECONDS = 5;
const BEFORE_LABEL = values['before-label'] ?? (values.before ? path.resolve(values.before) : '');

const log = (m) => process.stderr.write(`${m}\n`);
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
const fixed = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '—');

/** tcpkit serve from a given bin (this build, or --before's). */
async function tcpkitFrom(bin, args) {
  const child = spawnTracked([process.execPath, bin, 'serve', '--host', '127.0.0.1', '--port', '0', '--print-port', '-q', ...args]);
  const port = Number((await waitStdout(child, /^(\d+)\n/))[1]);
  return { pid: child.pid, port, stop: async () => { child.kill('SIGTERM'); await child.exited; } };
}

/** The process's own CPU seconds (utime + stime), children excluded. */
function ownCpu(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

async function load(server, conns, { idlePerSecond = 0 } = {}) {
  const before = ownCpu(server.pid);
  const t0 = Date.now();
  const report = await runLoad(server.port, ['--mode', 'echo', '--clients', '1', '--conns', String(conns), '--bytes', String(BYTES), '--duration', '300', '--server-pid', String(server.pid)]);
  const parent = ownCpu(server.pid) - before;
  const seconds = (Date.now() - t0) / 1000;
  const n = report.connections.completed;
  return {
    // The parent's CPU net of what it spends idle over the same time (timers, GC): the per-connection part.
    parentNetMs: ((parent - idlePerSecond * seconds) * 1000) / n,
    rate: report.connections.perSecond,
    cpuMs: (report.server.cpu.totalSeconds * 1000) / n,
    parentMs: (parent * 1000) / n,
    p50: report.latencyMs?.p50,
    p99: report.latencyMs?.p99,
    failed: report.connections.failed,
  };
}

async function execComparison() {
  const exec = (...args) => () => tcpkitFrom(BIN, ['--max-conns', '1000', ...args, '--exec', '--', '/bin/cat']);
  // Ten rules, the last one matching: every connection is checked against all ten (first match wins).
  const rules = [...Array.from({ length: 9 }, (_, i) => ['--deny', `10.${i}.0.0/16`]).flat(), '--allow', '127.0.0.0/8'];
  const rows = [
    { label: 'tcpkit --exec /bin/cat (fork)', start: exec() },
    { label: 'tcpkit --exec /bin/cat (prefork x2)', start: exec('--model', 'prefork', '--workers', '2') },
    // The bench client sends no PROXY header: the peer is untrusted and served direct, so this row measures the
    // gate (the connection takes the net.Socket path: net/fast-path.ts), not the header's parse.
    { label: 'tcpkit --exec /bin/cat (fork), --proxy-protocol', start: exec('--proxy-protocol', '--proxy-from', '10.255.255.0/24', '--proxy-untrusted', 'direct') },
    { label: 'tcpkit --exec /bin/cat (fork), 10 access rules', start: exec(...rules) },
    { label: 'tcpserver -RHl0 cat', start: peers.tcpserver },
    { label: 'xinetd server=/bin/cat', start: () => peers.xinetd({ internal: false }) },
    { label: 'socat fork EXEC:/bin/cat', start: peers.socat },
  ];
  if (values.before) {
    rows.push({ label: `tcpkit --exec /bin/cat (fork), before: ${BEFORE_LABEL}`, start: () => tcpkitFrom(path.join(path.resolve(values.before), 'bin', 'tcpkit.js'), ['--max-conns', '1000', '--exec', '--', '/bin/cat']) });
  }
  const servers = [];
  for (const r of rows) {
    try {
      servers.push({ ...r, server: await r.start(), runs: [] });
    } catch (err) {
      servers.push({ ...r, reason: err.message, runs: [] });
    }
  }
  for (const s of servers) if (s.server) await load(s.server, Math.min(50, CONNS)); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    for (const s of servers) {
      if (!s.server) continue;
      const m = await load(s.server, CONNS);
      s.runs.push(m);
      log(`round ${round + 1} ${s.label}: ${m.rate}/s cpu ${fixed(m.cpuMs, 3)} ms/conn p50 ${m.p50} p99 ${m.p99} failed ${m.failed}`);
    }
  }
  for (const s of servers) await s.server?.stop();
  return servers.map((s) => ({
    label: s.label,
    reason: s.reason,
    rate: median(s.runs.map((m) => m.rate)),
    cpuMs: median(s.runs.map((m) => m.cpuMs)),
    p50: median(s.runs.map((m) => m.p50)),
    p99: median(s.runs.map((m) => m.p99)),
    failed: s.runs.reduce((a, m) => a + m.failed, 0),
  }));
}

async function forkParent() {
  const builds = [{ label: 'this build', bin: BIN, args: [] }];
  // Spares trade CPU for first-byte latency; replacements are paced (one Node start at a time), so p99 is compared too.
  builds.push({ label: 'this build, --spare 2', bin: BIN, args: ['--spare', '2'] });
  if (values.before) builds.push({ label: `before: ${BEFORE_LABEL}`, bin: path.join(path.resolve(values.before), 'bin', 'tcpkit.js'), args: [] });
  const servers = [];
  for (const b of builds) servers.push({ ...b, server: await tcpkitFrom(b.bin, ['echo', '--model', 'fork', '--max-conns', '1000', ...b.args]), runs: [] });
  // Each connection lasts ~0.1 s here, so the parent's idle CPU is a visible share: measure it first.
  for (const s of servers) {
    const c0 = ownCpu(s.server.pid);
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    s.idlePerSecond = (ownCpu(s.server.pid) - c0) / IDLE_SECONDS;
    log(`fork parent, ${s.label}: idle ${fixed(s.idlePerSecond * 1000, 1)} ms CPU per second`);
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const s of servers) {
      const m = await load(s.server, FORK_CONNS, { idlePerSecond: s.idlePerSecond });
      s.runs.push(m);
      log(`round ${round + 1} fork parent, ${s.label}: ${m.rate}/s parent ${fixed(m.parentMs, 3)} ms/conn (net of idle ${fixed(m.parentNetMs, 3)}) tree ${fixed(m.cpuMs, 1)} ms/conn`);
    }
  }
  for (const s of servers) await s.server.stop();
  return servers.map((s) => ({
    label: s.label,
    rate: median(s.runs.map((m) => m.rate)),
    parentMs: median(s.runs.map((m) => m.parentMs)),
    parentNetMs: median(s.runs.map((m) => m.parentNetMs)),
    idleMsPerSecond: s.idlePerSecond * 1000,
    cpuMs: median(s.runs.map((m) => m.cpuMs)),
    p50: median(s.runs.map((m) => m.p50)),
    p99: median(s.runs.map((m) => m.p99)),
  }));
}

function render(exec, fork, meta) {
  const ts = exec.find((r) => r.label.startsWith('tcpserver'));
  const lines = [
    `Measured ${meta.date} by \`node bench/launcher.js${meta.args}\`, tcpkit ${meta.build}; ` +
      `${meta.machine}; load average before the run ${meta.load}. One client process (\`tcpkit bench --mode echo --clients 1\`), ` +
      `${CONNS} connections per round (${BYTES} bytes echoed each), ${ROUNDS} rounds interleaved across the servers, medians. ` +
      'CPU is the server\'s whole process tree (user+sys, reaped children included). Only ratios within this run compare.',
    '',
    '| server | conn/s | vs tcpserver | CPU ms / conn | CPU vs tcpserver | p50 ms | p99 ms | failed |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of exec) {
    if (r.reason) {
      lines.push(`| ${r.label} | not measured: ${r.reason} | | | | | | |`);
      continue;
    }
    lines.push(
      `| ${r.label} | ${fixed(r.rate, 0)} | ${ts ? fixed(r.rate / ts.rate) : '—'}x | ${fixed(r.cpuMs, 2)} | ${ts ? fixed(r.cpuMs / ts.cpuMs) : '—'}x | ${fixed(r.p50)} | ${fixed(r.p99)} | ${r.failed} |`,
    );
  }
  lines.push('', `The fork model's parent (\`serve echo --model fork\`: a Node child per connection), ${FORK_CONNS} connections per round, ${ROUNDS} rounds interleaved:`, '');
  // The idle rate (logged) is a few 10 ms ticks over 5 s: too coarse to subtract in the table.
  lines.push('| build | conn/s | parent CPU ms / conn | tree CPU ms / conn | p50 ms | p99 ms |', '|---|---:|---:|---:|---:|---:|');
  for (const r of fork) lines.push(`| ${r.label} | ${fixed(r.rate, 1)} | ${fixed(r.parentMs, 3)} | ${fixed(r.cpuMs, 1)} | ${fixed(r.p50)} | ${fixed(r.p99)} |`);
  lines.push('', `(/proc counts CPU in 10 ms ticks: over ${FORK_CONNS} connections a round resolves ${fixed(10 / FORK_CONNS, 3)} ms per connection.)`);
  return lines.join('\n');
}

function build() {
  try {
    const git = (...a) => execFileSync('git', ['-C', ROOT, ...a], { encoding: 'utf8' }).trim();
    return `commit ${git('rev-parse', '--short', 'HEAD')} (${git('rev-parse', '--abbrev-ref', 'HEAD')})`;
  } catch {
    return ROOT;
  }
}

async function main() {
  const meta = {
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    args: process.argv.slice(2).filter((a) => a !== '--json').map((a) => (/[\s()]/.test(a) ? ` '${a}'` : ` ${a}`)).join(''),
    build: build(),
    machine: `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, ${os.type()} ${os.release()}`,
    load: os.loadavg().map((l) => l.toFixed(2)).join(' '),
  };
  const exec = await execComparison();
  const fork = await forkParent();
  const table = render(exec, fork, { ...meta, load: `${meta.load} (after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')})` });
  process.stdout.write(values.json ? `${JSON.stringify({ meta, conns: CONNS, forkConns: FORK_CONNS, rounds: ROUNDS, exec, fork, markdown: table })}\n` : `${table}\n`);
}

try {
  await main();
} finally {
  killAll();
}
