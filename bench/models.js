#!/usr/bin/env node
// `npm run bench:models`: UNP ch. 30's experiment for every tcpkit model, bounded.
//
// For each model: start `tcpkit serve bench --model M` on 127.0.0.1 port 0; run C
// client loops in this process, each connection asking for REPLY bytes ("4000\n"),
// reading them, and closing; measure connections/s and the server's CPU time
// (user+sys of the server, its reaped children (cutime/cstime) and its live children,
// from /proc/PID/stat), scaled to 1000 connections. Prints a table and writes it to
// docs/models.md between the bench markers.
//
// Options: --conns N (default 2000; fork models use N/10), --concurrency C (default 4),
// --reply BYTES (default 4000), --only MODEL_LABEL, --no-write.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin', 'tcpkit.js');
const DOC = path.join(ROOT, 'docs', 'models.md');
const TICKS = 100; // USER_HZ on Linux: /proc/PID/stat counts CPU in 1/100 s.

const { values } = parseArgs({
  options: {
    conns: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '4' },
    reply: { type: 'string', default: '4000' },
    only: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
  },
});
const CONNS = Number(values.conns);
const CONCURRENCY = Number(values.concurrency);
const REPLY = Number(values.reply);

const MODELS = [
  { label: 'iterative', args: ['--model', 'iterative'] },
  { label: 'event', args: ['--model', 'event'] },
  { label: 'fork', args: ['--model', 'fork'], scale: 0.1 },
  { label: 'fork --spare 4', args: ['--model', 'fork', '--spare', '4'], scale: 0.1 },
  { label: 'prefork ×4 shared', args: ['--model', 'prefork', '--workers', '4', '--accept', 'shared'] },
  { label: 'prefork ×4 pass', args: ['--model', 'prefork', '--workers', '4', '--accept', 'pass'] },
  { label: 'threads ×4', args: ['--model', 'threads', '--workers', '4'] },
];

/** utime+stime+cutime+cstime of a process, in ticks; 0 if it is gone. */
function cpuTicks(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return 0;
  }
}

/** The server's CPU so far: itself, its reaped children, and its live children. */
function serverCpu(pid) {
  let ticks = cpuTicks(pid);
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === pid) ticks += cpuTicks(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return ticks / TICKS;
}

function startServer(args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BIN, 'serve', 'bench', '--host', '127.0.0.1', '--port', '0', '--print-port', '--quiet', '--max-conns', '64', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stderr.on('data', (c) => (err += c));
    proc.stdout.on('data', (c) => {
      out += c;
      const m = /^(\d+)\n/.exec(out);
      if (m) resolve({ proc, port: Number(m[1]), log: () => err });
    });
    proc.once('exit', (code) => reject(new Error(`server exited ${code}: ${err}`)));
  });
}

/** One short connection: ask for REPLY bytes, read them, close. */
function oneConnection(port, latencies) {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = 0;
    s.on('connect', () => s.write(`${REPLY}\n`));
    s.on('data', (c) => {
      got += c.length;
      if (got >= REPLY) s.end();
    });
    s.on('error', reject);
    s.on('close', () => {
      latencies?.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (got === REPLY) resolve();
      else reject(new Error(`got ${got} of ${REPLY} bytes`));
    });
  });
}

async function runModel(m) {
  const n = Math.max(20, Math.round(CONNS * (m.scale ?? 1)));
  const server = await startServer(m.args);
  try {
    // Warm up: let pools and spares settle.
    for (let i = 0; i < 4; i++) await oneConnection(server.port);
    await new Promise((r) => setTimeout(r, 300));
    const cpu0 = serverCpu(server.proc.pid);
    const t0 = process.hrtime.bigint();
    let next = 0;
    const latencies = [];
    const loop = async () => {
      while (next < n) {
        next++;
        await oneConnection(server.port, latencies);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, loop));
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    // Let the last children exit and be reaped into cutime/cstime.
    await new Promise((r) => setTimeout(r, 500));
    const cpu = serverCpu(server.proc.pid) - cpu0;
    latencies.sort((x, y) => x - y);
    const median = latencies[Math.floor(latencies.length / 2)];
    return { label: m.label, conns: n, perSec: n / wall, cpuPer1000: (cpu * 1000) / n, median };
  } finally {
    server.proc.kill('SIGTERM');
    await new Promise((r) => server.proc.once('exit', r));
  }
}

const LOAD = os.loadavg().map((x) => x.toFixed(1)).join(' ');
const rows = [];
for (const m of MODELS) {
  if (values.only && m.label !== values.only) continue;
  const r = await runModel(m);
  rows.push(r);
  process.stdout.write(
    `${r.label.padEnd(20)} ${String(r.conns).padStart(5)} conns  ${r.perSec.toFixed(0).padStart(6)} conn/s  ${r.cpuPer1000.toFixed(2).padStart(7)} s CPU per 1000  ${r.median.toFixed(1).padStart(6)} ms median\n`,
  );
}

const table = [
  `Measured ${new Date().toISOString().slice(0, 10)} on ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, Node ${process.version};`,
  `${CONCURRENCY} client loops in one process, each connection asking for ${REPLY} bytes (\`tcpkit serve bench\`);`,
  `load average before the run ${LOAD}.`,
  '',
  '| model | connections | connections/s | server CPU s per 1000 connections | median connection time ms |',
  '|---|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.label} | ${r.conns} | ${r.perSec.toFixed(0)} | ${r.cpuPer1000.toFixed(2)} | ${r.median.toFixed(1)} |`),
].join('\n');

if (!values['no-write'] && !values.only) {
  const begin = '<!-- bench:models begin -->';
  const end = '<!-- bench:models end -->';
  let doc = fs.existsSync(DOC) ? fs.readFileSync(DOC, 'utf8') : `# Concurrency models\n\n${begin}\n${end}\n`;
  if (!doc.includes(begin)) doc += `\n${begin}\n${end}\n`;
  doc = doc.replace(new RegExp(`${begin}[\\s\\S]*?${end}`), `${begin}\n${table}\n${end}`);
  fs.writeFileSync(DOC, doc);
  process.stdout.write(`written to ${path.relative(process.cwd(), DOC)}\n`);
}
