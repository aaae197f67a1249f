#!/usr/bin/env node
// `npm run bench`: measure tcpkit's designs against each other (UNP ch. 30) and
// against the tools users would pick instead, on this machine, and regenerate
// docs/benchmarks.md WHOLE from this one run (seven tables, SVG charts, the machine, the goals,
// a reading): every figure in it comes from this run, every table is stamped with when it ran,
// the load average at its start and the options of the run. Nothing is kept from an earlier run.
//
//   node bench/run.js [--quick] [--only cpu-per-conn,designs,exec,bulk,capacity,growth,launcher,unix,tls] [--rows LIST] [--rounds N]
//                     [--out FILE] [--no-install]
//   (launcher: bench/launcher.js, tcpkit --exec against tcpserver, xinetd, socat with one client; TCPKIT_BEFORE=DIR adds an earlier build)
//   node bench/run.js --from docs/benchmarks/results.json    (render the same run's document again, no measuring)
//
// --only and --rows measure less; the document then holds only what was measured and says which
// parts were left out (to try a change quickly, write elsewhere: --out /tmp/bench.md). --rows LIST
// keeps only the rows of the cpu-per-conn and bulk tables whose label contains one of the
// comma-separated words (the plain Node rows, their base, always run). --rounds N (default 5,
// --quick 1): those two tables run every row once per round, interleaved, and report medians.
//
// The hand-written reading (bench/reading.md) must not quote figures: a test
// (test/unit/bench/benchmarks-doc.test.ts) checks that every figure in the document's prose appears in its tables.
//
// --quick scales every count down (about two minutes). Counts used are printed in the
// document. Every load is bounded in count and time (tcpkit bench --duration), and every
// process started here is killed by pid when the script ends.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { cpuOf, memoryOf, processTree } from '../dist/bench/index.js';
import { buildBulkClient, buildConnClient, runBulkClient, runConnClient } from './lib/connclient.js';
import { barChart, lineChart } from './lib/svg.js';
import { ROOT, descriptorLimit, descriptorsOf, firstLine, killAll, runLoad, sleep, spawnTracked, BIN } from './lib/procs.js';
import * as peers from './lib/peers.js';

/** The usage text: this file's header comment, from `npm run bench` on. */
function usageText() {
  const text = fs.readFileSync(new URL(import.meta.url), 'utf8').split('\n');
  const start = text.findIndex((l) => l.startsWith('// `npm run bench`'));
  const end = text.findIndex((l, i) => i > start && !l.startsWith('//'));
  return text.slice(start, end).map((l) => l.replace(/^\/\/ ?/, '')).join('\n');
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      help: { type: 'boolean', short: 'h' },
      quick: { type: 'boolean' },
      only: { type: 'string' },
      out: { type: 'string' },
      'no-install': { type: 'boolean' },
      from: { type: 'string' },
      rows: { type: 'string' },
      rounds: { type: 'string' },
    },
  });
} catch (err) {
  // An unknown or malformed option: one line and the usage, not a stack trace.
  process.stderr.write(`bench/run.js: ${err.message}\n\n${usageText()}\n`);
  process.exit(100);
}
if (parsed.values.help) {
  process.stdout.write(`${usageText()}\n`);
  process.exit(0);
}
const flags = parsed.values;
const QUICK = Boolean(flags.quick);
const PARTS = ['cpu-per-conn', 'designs', 'exec', 'bulk', 'capacity', 'growth', 'launcher', 'unix', 'tls'];
const ONLY = new Set((flags.only ?? PARTS.join(',')).split(','));
for (const part of ONLY) if (!PARTS.includes(part)) usage(`--only: unknown part ${JSON.stringify(part)} (parts: ${PARTS.join(', ')})`);
const ROWS = flags.rows ? flags.rows.split(',').filter(Boolean) : undefined;
const ROUNDS = flags.rounds === undefined ? (flags.quick ? 1 : 5) : Number(flags.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 20) usage(`--rounds: must be an integer from 1 to 20, got ${JSON.stringify(flags.rounds)}`);

/** A bad option: say which, exit 100 (usage) before anything is started. */
function usage(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(100);
}

/** Whether --rows keeps a row (base rows always run: the ratios need them). */
const keepRow = (label, base = false) => base || !ROWS || ROWS.some((w) => label.includes(w));
/** `rows` starting at `by` (mod length): each round starts with another row, so no row always follows the same neighbour. */
const rotate = (rows, by) => rows.map((_, i) => rows[(i + by) % rows.length]);
/**
 * Each row once per round, `rounds` rounds interleaved (each round starting one row later), its server started
 * before and stopped after `measure(server, row, round)`; returns every row's samples, a failure kept as `{ reason }`.
 */
async function interleaved(part, rows, rounds, measure) {
  const samples = new Map(rows.map((r) => [r.label, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const row of rotate(rows, round - 1)) {
      let server;
      try {
        server = await row.start();
      } catch (err) {
        samples.get(row.label).push({ reason: err.message });
        log(`${part} ${row.label}: ${err.message}`);
        continue;
      }
      try {
        samples.get(row.label).push(await measure(server, row, round));
      } catch (err) {
        samples.get(row.label).push({ reason: err.message });
        log(`${part} round ${round} ${row.label}: ${err.message}`);
      } finally {
        await server.stop();
      }
    }
  }
  return samples;
}

/** The median of the finite numbers in `values`, or null. */
function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}
const OUT = path.resolve(flags.out ?? path.join(ROOT, 'docs', 'benchmarks.md'));
const CHART_DIR = path.join(path.dirname(OUT), 'benchmarks');
const t0 = Date.now();
/** When this run started. */
const RUN_AT = new Date(t0).toISOString();
/** The parts of a run, by their key in results.json, and the title the document gives each. */
const PART_TITLES = {
  cpuPerConn: 'table 0 (CPU per connection)',
  designs: 'table 1 (designs)',
  exec: 'table 2 (a program per connection)',
  bulk: 'table 3 (bulk)',
  capacity: 'table 4 (capacity)',
  growth: 'table 5 (growth)',
  launcher: 'section 6 (the native launcher)',
  unix: 'table 7 (UNIX-domain sockets)',
  tls: 'table 8 (TLS)',
};
const PART_KEYS = Object.keys(PART_TITLES);
/** This run's options as typed after `npm run bench --` (every table's stamp repeats them). */
const OPTIONS = process.argv
  .slice(2)
  .map((a) => (/[\s()|]/.test(a) ? `'${a}'` : a))
  .join(' ');
const loadNow = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
const utc = (iso) => `${String(iso).slice(0, 16).replace('T', ' ')} UTC`;
/** The line under every table's heading: when it ran, the load then, and the run's options. */
const stampLine = (st, options) =>
  st ? `_Measured ${utc(st.at)}, load average (1, 5, 15 min) ${st.load} at the start of this table; options: ${options ? `\`${options}\`` : 'none (the defaults)'}._` : '';

/** The counts of this run (the document states them). */
const COUNTS = {
  cpuPerConn: { procs: 2, conns: QUICK ? 1000 : 5000, warm: QUICK ? 200 : 500, bytes: 4000, rounds: ROUNDS },
  designs: { clients: 2, conns: QUICK ? 500 : 5000, forkConns: QUICK ? 40 : 200, bytes: 4000 },
  // exec: 4 × 250 even when quick: the goals against tcpserver are read from this table, and 100 moved them by ±15%.
  exec: { clients: 4, conns: QUICK ? 250 : 500, bytes: 64 },
  unix: { clients: 4, conns: QUICK ? 500 : 2500, execConns: QUICK ? 100 : 500, bytes: 64, rounds: ROUNDS },
  bulk: { size: QUICK ? 256 * 2 ** 20 : 2 * 2 ** 30, rounds: ROUNDS },
  capacity: { target: QUICK ? 20_000 : 100_000, perShard: 15_000, hold: 600 },
  growth: { levels: [1, 10, 100, 1000], total: QUICK ? 1000 : 4000, bytes: 4000 },
  tls: { clients: 4, conns: QUICK ? 250 : 1000, execConns: QUICK ? 50 : 250, size: QUICK ? 256 * 2 ** 20 : 2 ** 30, rounds: ROUNDS },
};

const log = (msg) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`);
const fixed = (v, d = 2) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : '—');
const int = (v) => (typeof v === 'number' && Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '—');
const mib = (b) => (typeof b === 'number' ? (b / 2 ** 20).toFixed(1) : '—');
const errorsOf = (r) =>
  Object.entries(r?.errors ?? {})
    .map(([c, n]) => `${c} ${n}`)
    .join(', ') || 'none';

/** Start a server, run one load against it with its pid, stop it. Never throws: failures become { reason }. */
async function measure(label, start, loadArgs, { timeoutMs = 300_000 } = {}) {
  let server;
  try {
    server = await start();
  } catch (err) {
    log(`${label}: ${err.message}`);
    return { label, reason: err.message };
  }
  try {
    const report = await runLoad(server.port, [...loadArgs, '--server-pid', String(server.pid)], { timeoutMs });
    const cpu = report.server?.cpu;
    log(
      `${label}: ${report.connections.completed} ok ${report.connections.failed} failed, ${report.connections.perSecond}/s, ` +
        `cpu ${cpu?.totalSeconds}s, ${report.throughput.mibPerSecond} MiB/s, errors ${errorsOf(report)}`,
    );
    return { label, report };
  } catch (err) {
    log(`${label}: ${err.message}`);
    return { label, reason: err.message };
  } finally {
    await server.stop();
  }
}

const models = peers.availableModels();
const services = peers.availableServices();
const hasModel = (m) => models.includes(m);
const NOT_AVAILABLE = (what) => `not available: this build has no ${what} (tcpkit serve --help)`;

function modelRow(label, model, extra, service = 'bench') {
  if (!hasModel(model)) return { label, start: () => Promise.reject(new Error(NOT_AVAILABLE(`--model ${model}`))) };
  if (!services.includes(service)) {
    return { label, start: () => Promise.reject(new Error(NOT_AVAILABLE(`${service} service`))) };
  }
  return { label, model, start: () => peers.tcpkit(label, [service, '--model', model, ...extra]) };
}

// ---------------------------------------------------------------- 0. CPU per connection (issue 14's goals)
/** CPU seconds (user+sys, children included) of a process tree so far, or null when it is gone. */
function treeCpu(pid) {
  const c = cpuOf(pid);
  return c ? c.userSeconds + c.systemSeconds : null;
}

/**
 * The rows of the CPU-per-connection table: plain Node's `net` (its base) and every in-process
 * and pool model, all answering the bench protocol, all loaded by the same C client.
 */
function cpuPerConnRows() {
  const common = ['--max-conns', '1000', '--backlog', '1024'];
  return [
    { label: 'plain Node net', base: true, start: () => peers.nodeFloor('bench') },
    modelRow('event', 'event', common),
    modelRow('iterative', 'iterative', ['--backlog', '1024']),
    modelRow('prefork --workers 2', 'prefork', [...common, '--workers', '2']),
    modelRow('prefork --workers 4', 'prefork', [...common, '--workers', '4']),
    modelRow('threads --workers 2', 'threads', [...common, '--workers', '2']),
    modelRow('threads --workers 4', 'threads', [...common, '--workers', '4']),
  ].filter((r) => keepRow(r.label, r.base));
}

/**
 * Every row once per round, interleaved (so a busy minute on the shared machine hits all rows
 * alike), each on a fresh server: a warm-up run, then the measured run with the server's whole
 * process tree's CPU read before and after. Medians over the rounds.
 */
async function cpuPerConn() {
  const c = COUNTS.cpuPerConn;
  try {
    buildConnClient();
  } catch (err) {
    log(err.message);
    return { reason: err.message, rows: [] };
  }
  const rows = cpuPerConnRows();
  const samples = await interleaved('cpu-per-conn', rows, c.rounds, async (server, row, round) => {
    await runConnClient(server.port, { procs: c.procs, conns: Math.ceil(c.warm / c.procs), bytes: c.bytes });
    const before = treeCpu(server.pid);
    const run = await runConnClient(server.port, { procs: c.procs, conns: c.conns, bytes: c.bytes });
    await sleep(300); // the last connections' ends, and a pool's reports, reach the CPU counters
    const after = treeCpu(server.pid);
    const cpuMsPerConn = before !== null && after !== null ? ((after - before) * 1000) / run.conns : null;
    log(`cpu-per-conn round ${round} ${row.label}: ${int(run.perSecond)}/s, ${fixed(cpuMsPerConn, 3)} ms CPU/conn, errors ${run.errors}`);
    return { ...run, cpuMsPerConn };
  });
  const baseRuns = samples.get('plain Node net').filter((x) => !x.reason);
  const base = baseRuns.length ? { cpuMsPerConn: median(baseRuns.map((x) => x.cpuMsPerConn)), perSecond: median(baseRuns.map((x) => x.perSecond)) } : null;
  return {
    rows: rows.map((r) => {
      const runs = samples.get(r.label);
      const ok = runs.filter((x) => !x.reason);
      return {
        label: r.label,
        /** The plain Node row of the run this row was measured in: ratios are only ever taken within one run. */
        base,
        run: RUN_AT,
        rounds: ok.length,
        conns: ok.reduce((a, x) => a + x.conns, 0),
        errors: ok.reduce((a, x) => a + x.errors, 0),
        perSecond: median(ok.map((x) => x.perSecond)),
        cpuMsPerConn: median(ok.map((x) => x.cpuMsPerConn)),
        reason: ok.length === 0 ? runs.find((x) => x.reason)?.reason ?? 'not measured' : undefined,
      };
    }),
  };
}

// ---------------------------------------------------------------- 1. designs
async function designs() {
  const c = COUNTS.designs;
  const common = ['--max-conns', '1000', '--backlog', '1024'];
  const rows = [
    modelRow('iterative', 'iterative', []),
    modelRow('fork', 'fork', common),
    modelRow('fork --spare 4', 'fork', [...common, '--spare', '4']),
    modelRow('prefork', 'prefork', [...common, '--workers', '4']),
    modelRow('prefork (pass)', 'prefork', [...common, '--workers', '4', '--accept', 'pass']),
    modelRow('threads', 'threads', [...common, '--workers', '4']),
    modelRow('event', 'event', common),
    { label: 'plain Node net', start: () => peers.nodeFloor('bench') },
  ];
  const results = [];
  for (const row of rows) {
    const conns = row.model === 'fork' ? c.forkConns : c.conns;
    const args = ['--clients', String(c.clients), '--conns', String(conns), '--bytes', String(c.bytes), '--duration', '240'];
    results.push({ ...(await measure(row.label, row.start, args)), connections: c.clients * conns });
  }
  return results;
}

/** CPU milliseconds of one bare Node start (`node -e 0`), averaged over `n`: the floor of a Node child per connection. */
async function nodeStartCpuMs(n = 10) {
  const child = spawnTracked(
    ['bash', '-c', `TIMEFORMAT='%U %S'; time (for i in $(seq ${n}); do "$0" -e 0; done)`, process.execPath],
    { raiseLimit: false },
  );
  await child.exited;
  const [user, sys] = child.stderrText().trim().split(/\s+/).map(Number);
  return ((user + sys) * 1000) / n;
}

// ---------------------------------------------------------------- 2. per connection (exec)
async function execRows() {
  const c = COUNTS.exec;
  const args = ['--mode', 'echo', '--clients', String(c.clients), '--conns', String(c.conns), '--bytes', String(c.bytes), '--duration', '240'];
  const execAvailable = /--exec\b/.test(peers.serveHelp());
  const tcpkitExec = (label, extra) => ({
    label,
    start: execAvailable
      ? () => peers.tcpkit(label, [...extra, '--max-conns', '1000', '--exec', '--', '/bin/cat'])
      : () => Promise.reject(new Error(NOT_AVAILABLE('--exec'))),
  });
  const rows = [
    tcpkitExec('tcpkit --exec /bin/cat', []),
    // Node's spawn blocks the process that calls it until the exec is done: workers spawn in parallel.
    ...(hasModel('prefork') ? [tcpkitExec('tcpkit --exec /bin/cat (prefork x2)', ['--model', 'prefork', '--workers', '2'])] : []),
    // The event model starts its programs as fork does, on the native path too.
    tcpkitExec('tcpkit --exec /bin/cat (event)', ['--model', 'event']),
    { label: 'tcpserver cat', start: peers.tcpserver },
    { label: 'socat fork EXEC:cat', start: peers.socat },
    { label: 'xinetd server=/bin/cat', start: () => peers.xinetd({ internal: false }) },
    { label: 'xinetd internal echo', start: () => peers.xinetd({ internal: true }) },
    { label: 'ncat --exec /bin/cat', start: peers.ncat },
    { label: 'plain Node net echo', start: () => peers.nodeFloor('echo') },
    modelRow('tcpkit echo (event)', 'event', ['--max-conns', '1000'], 'echo'),
  ];
  const results = [];
  for (const row of rows) results.push(await measure(row.label, row.start, args));
  return results;
}

// ---------------------------------------------------------------- 7. UNIX-domain sockets (issue 22)
/**
 * Echo over a UNIX socket against the same over TCP loopback (event, prefork x2), and --exec /bin/cat over a
 * UNIX socket against ucspi-unix's unixserver and socat UNIX-LISTEN,fork EXEC:/bin/cat. One load generator for
 * every row (`tcpkit bench --mode echo`, which connects by path or by port), every row once per round,
 * interleaved, medians; CPU per connection is the server's process tree's (children reaped included).
 */
async function unixRows() {
  const c = COUNTS.unix;
  const load = (conns) => ['--mode', 'echo', '--clients', String(c.clients), '--conns', String(conns), '--bytes', String(c.bytes), '--duration', '240'];
  const unixAvailable = /--unix\b/.test(peers.serveHelp());
  const over = (label, transport, extra, conns) => ({
    label,
    conns,
    start:
      transport === 'tcp'
        ? () => peers.tcpkit(label, ['--max-conns', '1000', ...extra])
        : unixAvailable
          ? () => peers.tcpkitUnix(label, ['--max-conns', '1000', ...extra])
          : () => Promise.reject(new Error(NOT_AVAILABLE('--unix'))),
  });
  const rows = [
    over('echo event TCP', 'tcp', ['echo', '--model', 'event'], c.conns),
    over('echo event UNIX', 'unix', ['echo', '--model', 'event'], c.conns),
    ...(hasModel('prefork')
      ? [over('echo prefork x2 TCP', 'tcp', ['echo', '--model', 'prefork', '--workers', '2'], c.conns), over('echo prefork x2 UNIX', 'unix', ['echo', '--model', 'prefork', '--workers', '2'], c.conns)]
      : []),
    over('tcpkit --exec /bin/cat UNIX', 'unix', ['--exec', '--', '/bin/cat'], c.execConns),
    { label: 'unixserver cat', conns: c.execConns, start: peers.unixserver },
    { label: 'socat UNIX-LISTEN,fork EXEC:/bin/cat', conns: c.execConns, start: peers.socatUnix },
  ].filter((r) => keepRow(r.label, r.label === 'unixserver cat'));
  const samples = await interleaved('unix', rows, c.rounds, async (server, row, round) => {
    const report = await runLoad(server.port, [...load(row.conns), '--server-pid', String(server.pid)]);
    const done = report.connections.completed;
    const cpu = report.server?.cpu?.totalSeconds;
    const sample = { perSecond: report.connections.perSecond, cpuMsPerConn: done > 0 && typeof cpu === 'number' ? (cpu * 1000) / done : null, errors: report.errors ?? {}, failed: report.connections.failed };
    log(`unix round ${round} ${row.label}: ${int(sample.perSecond)}/s, ${fixed(sample.cpuMsPerConn, 3)} ms CPU/conn, errors ${errorsOf(report)}`);
    return sample;
  });
  return rows.map((row) => {
    const got = samples.get(row.label);
    const ok = got.filter((x) => !x.reason);
    if (ok.length === 0) return { label: row.label, reason: got[0]?.reason ?? 'not measured' };
    return { label: row.label, perSecond: median(ok.map((x) => x.perSecond)), cpuMsPerConn: median(ok.map((x) => x.cpuMsPerConn)), failed: ok.reduce((n, x) => n + x.failed, 0), rounds: ok.length };
  });
}

// ---------------------------------------------------------------- 8. TLS
/**
 * Issue 21's goals, each row beside its peer in the same run: full and resumed handshakes
 * (tcpkit event echo against a plain Node tls.createServer echo), a program per connection
 * over TLS (tcpkit --exec /bin/cat against stunnel4's `exec =`), and one connection's bulk
 * echo through TLS (tcpkit event echo and --exec cat against stunnel4 + cat). Every row
 * uses the same self-signed RSA-2048 certificate; `tcpkit bench --tls` is the client.
 */
async function tlsPart() {
  const c = COUNTS.tls;
  let cert;
  try {
    cert = peers.testCert();
  } catch (err) {
    return { reason: err.message };
  }
  const tlsArgs = ['--tls-cert', cert.cert, '--tls-key', cert.key, '--max-conns', '1000'];
  // The TLS flags first: everything after --exec's `--` is the program's.
  const tcpkitTls = (label, extra) => () => peers.tcpkit(label, [...tlsArgs, ...extra]);
  const echo = (conns, resume) => ['--mode', 'echo', '--tls', ...(resume ? ['--resume'] : []), '--clients', String(c.clients), '--conns', String(conns), '--duration', '240'];
  const bulkArgs = ['--mode', 'bulk', '--tls', '--size', String(c.size), '--duration', '240'];
  const eventEcho = tcpkitTls('tcpkit event echo', ['echo', '--model', 'event']);
  const groups = {
    handshakes: [
      { label: 'plain Node tls echo', start: peers.nodeTls, args: echo(c.conns, false) },
      { label: 'tcpkit event echo', start: eventEcho, args: echo(c.conns, false) },
      { label: 'plain Node tls echo, resumed', start: peers.nodeTls, args: echo(c.conns, true) },
      { label: 'tcpkit event echo, resumed', start: eventEcho, args: echo(c.conns, true) },
    ],
    exec: [
      { label: 'tcpkit --exec /bin/cat', start: tcpkitTls('tcpkit --exec cat', ['--exec', '--', '/bin/cat']), args: echo(c.execConns, false) },
      { label: 'stunnel4 exec=/bin/cat', start: peers.stunnelExec, args: echo(c.execConns, false) },
    ],
    bulk: [
      { label: 'tcpkit event echo', start: eventEcho, args: bulkArgs },
      { label: 'tcpkit --exec /bin/cat', start: tcpkitTls('tcpkit --exec cat', ['--model', 'event', '--exec', '--', '/bin/cat']), args: bulkArgs },
      { label: 'stunnel4 exec=/bin/cat', start: peers.stunnelExec, args: bulkArgs },
    ],
  };
  // Each group's rows interleaved over the rounds (a busy moment of the shared machine hits them alike);
  // each row keeps its median run (by server CPU per connection; bulk: by MiB/s).
  const out = {};
  for (const [name, rows] of Object.entries(groups)) {
    const samples = await interleaved(`tls ${name}`, rows, c.rounds, async (server, row) => {
      const report = await runLoad(server.port, [...row.args, '--server-pid', String(server.pid)], { timeoutMs: 300_000 });
      log(`tls ${name} ${row.label}: ${report.connections.completed} ok ${report.connections.failed} failed, ${report.connections.perSecond}/s, cpu ${report.server?.cpu.totalSeconds}s, ${report.throughput.mibPerSecond} MiB/s`);
      return { label: row.label, report };
    });
    const key = name === 'bulk' ? (r) => r.report.throughput.mibPerSecond : (r) => r.report.server?.cpu.perConnectionMs ?? Infinity;
    out[name] = rows.map((row) => {
      const ok = samples.get(row.label).filter((x) => x.report).sort((a, b) => key(a) - key(b));
      return ok.length ? ok[Math.floor((ok.length - 1) / 2)] : { label: row.label, reason: samples.get(row.label)[0]?.reason ?? 'not run' };
    });
  }
  const { handshakes, exec, bulk } = out;
  return { handshakes, exec, bulk };
}

/** The TLS ratios the goals compare: tcpkit's row over its peer's, within this run. */
function tlsRatios(t) {
  const get = (rows, label) => rows?.find((r) => r.label === label)?.report;
  const cpu = (r) => r?.server?.cpu.perConnectionMs;
  const ratio = (a, b) => (typeof a === 'number' && typeof b === 'number' && b > 0 ? a / b : undefined);
  const out = {};
  for (const suffix of ['', ', resumed']) {
    const mine = get(t.handshakes, `tcpkit event echo${suffix}`);
    const node = get(t.handshakes, `plain Node tls echo${suffix}`);
    out[`handshake${suffix}`] = { cpu: ratio(cpu(mine), cpu(node)), rate: ratio(mine?.connections.perSecond, node?.connections.perSecond) };
  }
  const e = get(t.exec, 'tcpkit --exec /bin/cat');
  const st = get(t.exec, 'stunnel4 exec=/bin/cat');
  out.exec = { rate: ratio(e?.connections.perSecond, st?.connections.perSecond), cpu: ratio(cpu(e), cpu(st)) };
  const stBulk = get(t.bulk, 'stunnel4 exec=/bin/cat')?.throughput.mibPerSecond;
  out.bulkEvent = ratio(get(t.bulk, 'tcpkit event echo')?.throughput.mibPerSecond, stBulk);
  out.bulkExec = ratio(get(t.bulk, 'tcpkit --exec /bin/cat')?.throughput.mibPerSecond, stBulk);
  return out;
}

function tlsSection(t, stamp) {
  const lines = ['## 8. TLS', '', stamp, ''];
  if (t.reason) return [...lines, `Not measured: ${t.reason}.`].join('\n');
  const table = (title, rows, base, cols) => {
    lines.push(`**${title}**`, '', `| server | ${cols.map((c) => c[0]).join(' | ')} |`, `|---|${cols.map(() => '---:|').join('')}`);
    for (const r of rows) {
      const cells = r.report ? cols.map((c) => c[1](r.report, rows.find((x) => x.label === base(r.label))?.report)) : [String(r.reason).replace(/\|/g, '/'), ...cols.slice(1).map(() => '')];
      lines.push(`| ${r.label} | ${cells.join(' | ')} |`);
    }
    lines.push('');
  };
  const cpuMs = (r) => fixed(r.server?.cpu.perConnectionMs, 3);
  const vs = (get) => (r, b) => (b && get(b) ? `${fixed(get(r) / get(b))}x` : '—');
  const hsCols = [
    ['handshakes/s', (r) => int(r.connections.perSecond)],
    ['server CPU ms/handshake', cpuMs],
    ['CPU vs plain Node', vs((x) => x.server?.cpu.perConnectionMs)],
    ['p50 ms', (r) => fixed(r.latencyMs?.p50)],
  ];
  lines.push(`Each row: the median of ${COUNTS.tls.rounds} run${COUNTS.tls.rounds === 1 ? '' : 's'}, the rows of a table interleaved.`, '');
  table(`Handshakes: ${COUNTS.tls.clients} clients × ${int(COUNTS.tls.conns)} connections, one 64-byte line echoed on each (full handshakes, then each resuming the previous session's ticket)`, t.handshakes, (l) => l.replace('tcpkit event echo', 'plain Node tls echo'), hsCols);
  table(`A program per connection over TLS: ${COUNTS.tls.clients} clients × ${int(COUNTS.tls.execConns)} connections`, t.exec, () => 'stunnel4 exec=/bin/cat', [
    ['conn/s', (r) => int(r.connections.perSecond)],
    ['server CPU ms/conn', cpuMs],
    ['CPU vs stunnel4', vs((x) => x.server?.cpu.perConnectionMs)],
    ['conn/s vs stunnel4', vs((x) => x.connections.perSecond)],
  ]);
  table(`Bulk through TLS: ${mib(COUNTS.tls.size)} MiB echoed through one connection`, t.bulk, () => 'stunnel4 exec=/bin/cat', [
    ['MiB/s', (r) => fixed(r.throughput.mibPerSecond, 1)],
    ['vs stunnel4', vs((x) => x.throughput.mibPerSecond)],
    ['server CPU s', (r) => fixed(r.server?.cpu.totalSeconds)],
  ]);
  return lines.join('\n');
}

// ---------------------------------------------------------------- 3. bulk
/**
 * One connection's echo throughput, every row once per round (interleaved), medians. The
 * client is C (bench/c/bulkclient.c, compiled at run time: on the 2 cores it shares with the
 * server a Node client's own CPU would cap every row alike and squeeze the ratios), or
 * `tcpkit bench --mode bulk` when there is no cc. The server's CPU is its process tree's,
 * read around the run (a tcpserver's `cat` counts once reaped).
 */
async function bulkRows() {
  const { size, rounds } = COUNTS.bulk;
  let cClient = true;
  try {
    buildBulkClient();
  } catch (err) {
    cClient = false;
    log(`${err.message}: bulk falls back to tcpkit bench --mode bulk`);
  }
  COUNTS.bulk.client = cClient ? 'bench/c/bulkclient.c' : 'tcpkit bench --mode bulk';
  const args = ['--mode', 'bulk', '--size', String(size), '--duration', '240', '--timeout', '60'];
  /** One run: { bytesPerSecond, errors: {code: n} }. */
  const load = async (port) => {
    if (!cClient) {
      const report = await runLoad(port, args, { timeoutMs: 300_000 });
      return { bytesPerSecond: report.connections.completed > 0 ? report.throughput.bytesPerSecond : 0, errors: report.errors ?? {} };
    }
    const r = await runBulkClient(port, size);
    return { bytesPerSecond: r.errors ? 0 : r.bytesPerSecond, errors: r.errors ? { [r.firstError ?? 'BULK_FAILED']: 1 } : {} };
  };
  const rows = [
    { label: 'plain Node s.pipe(s)', base: true, start: () => peers.nodeFloor('echo') },
    { label: 'tcpserver cat', base: true, start: peers.tcpserver },
    modelRow('event', 'event', [], 'echo'),
    modelRow('prefork', 'prefork', ['--workers', '4'], 'echo'),
    modelRow('threads', 'threads', ['--workers', '4'], 'echo'),
    modelRow('iterative', 'iterative', [], 'echo'),
    modelRow('fork', 'fork', [], 'echo'),
  ].filter((r) => keepRow(r.label, r.base));
  const samples = await interleaved('bulk', rows, rounds, async (server, row, round) => {
    const before = treeCpu(server.pid);
    const run = await load(server.port);
    await sleep(200);
    const after = treeCpu(server.pid);
    const cpuSeconds = before !== null && after !== null ? after - before : null;
    log(`bulk round ${round} ${row.label}: ${fixed(run.bytesPerSecond / 2 ** 20, 0)} MiB/s, server CPU ${fixed(cpuSeconds)} s, errors ${errorsOf(run)}`);
    return { ...run, cpuSeconds };
  });
  const results = rows.map((r) => {
    const runs = samples.get(r.label);
    const ok = runs.filter((x) => !x.reason && x.bytesPerSecond > 0);
    if (ok.length === 0) return { label: r.label, reason: runs.find((x) => x.reason)?.reason ?? `failed: ${errorsOf(runs[0])}` };
    const bytesPerSecond = median(ok.map((x) => x.bytesPerSecond));
    const cpuSeconds = median(ok.map((x) => x.cpuSeconds));
    const errors = {};
    for (const x of runs) for (const [k, v] of Object.entries(x.errors ?? {})) errors[k] = (errors[k] ?? 0) + v;
    return { label: r.label, rounds: ok.length, bytesPerSecond, cpuSeconds, errors };
  });
  let ceiling;
  try {
    ceiling = await peers.iperf3(size);
    log(`iperf3: ${(ceiling.bytesPerSecond / 2 ** 20).toFixed(0)} MiB/s`);
  } catch (err) {
    ceiling = { reason: err.message };
    log(`iperf3: ${err.message}`);
  }
  return { results, ceiling };
}

// ---------------------------------------------------------------- 4. capacity
async function capacityRow(label, start, target = COUNTS.capacity.target) {
  const { perShard, hold } = COUNTS.capacity;
  const row = { label, target };
  let server;
  try {
    server = await start();
  } catch (err) {
    return { ...row, reason: err.message };
  }
  const shards = [];
  try {
    const tree = () => processTree(server.pid);
    const baseFds = descriptorsOf(tree());
    const before = memoryOf(server.pid);
    const n = Math.ceil(target / perShard);
    for (let i = 0; i < n; i++) {
      const count = Math.min(perShard, target - i * perShard);
      shards.push(
        spawnTracked([
          process.execPath, BIN, 'bench', '127.0.0.1', String(server.port), '--idle', String(count),
          '--source', `127.0.0.${i + 1}`, '--clients', '64', '--hold', String(hold), '--duration', String(hold + 60),
          '--timeout', '60', '--json', '-q',
        ]),
      );
    }
    // Wait until the server holds them all, or stops gaining for 8 s, or 200 s pass.
    let best = 0;
    let bestAt = Date.now();
    let held = { fds: 0, memory: before };
    const deadline = Date.now() + 200_000;
    while (Date.now() < deadline) {
      await sleep(1000);
      const fds = descriptorsOf(tree()) - baseFds;
      if (fds > best) {
        best = fds;
        bestAt = Date.now();
      }
      if (fds >= target || Date.now() - bestAt > 8000 || shards.every((s) => s.exitCode !== null)) break;
    }
    await sleep(1000);
    held = { fds: descriptorsOf(tree()) - baseFds, memory: memoryOf(server.pid) };
    log(`${label}: server holds ${held.fds} descriptors more than at start, rss ${mib(held.memory?.rssBytes)} MiB`);
    const reports = [];
    for (const s of shards) {
      await s.stop('SIGTERM', 60_000);
      try {
        reports.push(JSON.parse(s.stdoutText()));
      } catch {
        reports.push({ errors: { NO_REPORT: 1 }, firstError: firstLine(s.stderrText()), idle: { held: 0, opened: 0 } });
      }
    }
    const errors = {};
    for (const r of reports) for (const [k, v] of Object.entries(r.errors ?? {})) errors[k] = (errors[k] ?? 0) + v;
    const clientHeld = reports.reduce((a, r) => a + (r.idle?.held ?? 0), 0);
    const firstError = reports.find((r) => r.firstError)?.firstError ?? null;
    return { ...row, shards: n, clientHeld, serverFds: held.fds, before, held: held.memory, errors, firstError };
  } catch (err) {
    return { ...row, reason: err.message };
  } finally {
    for (const s of shards) await s.stop('SIGKILL');
    await server.stop();
  }
}

async function capacity() {
  const limit = await descriptorLimit();
  // Shared accept does not spread connections evenly (one worker of 7 reached its limit with
  // 99,100 of 100,000 held), so leave two workers' worth of slack.
  const workers = Math.max(4, Math.ceil(COUNTS.capacity.target / Math.floor(limit * 0.9)) + 2);
  const tcpkitRow = (label, model, extra) =>
    hasModel(model)
      ? () => peers.tcpkit(label, ['echo', '--model', model, '--max-conns', '1000000', '--backlog', '4096', ...extra])
      : () => Promise.reject(new Error(NOT_AVAILABLE(`--model ${model}`)));
  const rows = [
    await capacityRow('event', tcpkitRow('event', 'event', [])),
    await capacityRow(`prefork --workers ${workers}`, tcpkitRow('prefork', 'prefork', ['--workers', String(workers)])),
    // The floor, for memory per connection: one process, so no more than its descriptor limit.
    await capacityRow('plain Node net echo', () => peers.nodeFloor('echo'), Math.min(COUNTS.capacity.target, limit - 500)),
  ];
  return { limit, workers, rows };
}

// ---------------------------------------------------------------- 5. growth
async function growth() {
  const { levels, total, bytes } = COUNTS.growth;
  const common = ['--max-conns', '2000', '--backlog', '4096'];
  const rows = [
    modelRow('event', 'event', common),
    modelRow('prefork', 'prefork', [...common, '--workers', '4']),
    modelRow('threads', 'threads', [...common, '--workers', '4']),
    { label: 'plain Node net', start: () => peers.nodeFloor('bench') },
  ];
  const results = [];
  for (const row of rows) {
    for (const clients of levels) {
      const conns = Math.max(1, Math.round(total / clients));
      const args = ['--clients', String(clients), '--conns', String(conns), '--bytes', String(bytes), '--duration', '120', '--timeout', '30'];
      results.push({ ...(await measure(`${row.label} x${clients}`, row.start, args)), server: row.label, clients });
    }
  }
  return results;
}

// ---------------------------------------------------------------- the document
function machine() {
  const cpu = os.cpus();
  let portRange = '';
  try {
    portRange = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().replace(/\s+/, '-');
  } catch {
    portRange = 'unknown';
  }
  return {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    portRange,
    load: os.loadavg().map((l) => l.toFixed(2)).join(' '),
  };
}

/** Which tcpkit the servers ran: its checkout's commit (and branch), so a reader can tell builds apart. */
function serverBuild() {
  const dir = path.dirname(path.dirname(peers.SERVER_BIN));
  try {
    const git = (...a) => execFileSync('git', ['-C', dir, ...a], { encoding: 'utf8' }).trim();
    const dirty = git('status', '--porcelain', '--untracked-files=no') ? ', with local changes' : '';
    return `commit ${git('rev-parse', '--short', 'HEAD')} (${git('rev-parse', '--abbrev-ref', 'HEAD')}${dirty})`;
  } catch {
    return dir;
  }
}

function writeChart(name, svg) {
  fs.mkdirSync(CHART_DIR, { recursive: true });
  fs.writeFileSync(path.join(CHART_DIR, name), svg);
  return `![${name}](${path.relative(path.dirname(OUT), path.join(CHART_DIR, name))})`;
}

/**
 * Connections the server itself holds: a client counts as open also the connections that
 * wait, established, in the server's accept queue (after the server stopped accepting).
 */
const serverHeld = (r) => Math.min(r.clientHeld, r.serverFds);

const cpuPer10k = (r) => (r.report?.server ? (r.report.server.cpu.totalSeconds * 10_000) / Math.max(1, r.report.connections.completed) : null);
const cpuMsPerConn = (r) => r.report?.server?.cpu.perConnectionMs ?? null;
const reasonCell = (r) => (r.reason ? r.reason.replace(/\|/g, '/') : '');

/**
 * Why CPU per connection in tables 1 and 5 differs from table 0's for the same 4,000-byte exchange, with this
 * run's figures for the event model (`cell`: the figure as this table prints it).
 */
function whyNotTable0(row, cell, table0) {
  const t0row = table0?.rows?.find((r) => r.label === 'event' && !r.reason);
  const text =
    "CPU per connection here is measured differently from table 0's, so compare rows within a table, not figures across tables: " +
    "the load generator is `tcpkit bench` (Node) rather than table 0's C client, the server has no warm-up (the count includes its first, " +
    'unoptimised connections), and connections arrive at another rate, which changes how many the server handles per wake-up. ';
  if (!t0row || !row?.report) return text;
  return `${text}The event model, here: ${cell} at ${int(row.report.connections.perSecond)} conn/s; in table 0: ${fixed(t0row.cpuMsPerConn, 3)} ms per connection at ${int(t0row.perSecond)} conn/s. `;
}

function designsSection(results, nodeStartMs, stamp, table0) {
  const base = cpuPer10k(results.find((r) => r.label === 'iterative') ?? {});
  const lines = [
    '## 1. Designs (UNP ch. 30)',
    '',
    stamp,
    '',
    `${COUNTS.designs.clients} clients, each making connections one after another; each connection asks the bench service for ` +
      `${COUNTS.designs.bytes} bytes and closes (UNP's client.c). ${int(COUNTS.designs.clients * COUNTS.designs.conns)} connections per design ` +
      `(fork: ${int(COUNTS.designs.clients * COUNTS.designs.forkConns)}, as each costs a Node process start), scaled to CPU per 10,000 connections. ` +
      'Server CPU is user+sys of the server and all its children (reaped ones included), from /proc/PID/stat. ' +
      whyNotTable0(results.find((r) => r.label === 'event'), `${fixed(cpuPer10k(results.find((r) => r.label === 'event') ?? {}))} s per 10,000 connections`, table0) +
      `A bare Node start (\`node -e 0\`) costs ${fixed(nodeStartMs, 1)} ms of CPU here: ${fixed((nodeStartMs ?? NaN) * 10, 0)} s per 10,000, the floor of a Node child per connection.`,
    '',
    '| design | connections | CPU s / 10,000 conns | vs iterative | conns/s | p99 ms | errors |',
    '|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of results) {
    if (r.reason) {
      lines.push(`| ${r.label} | — | ${reasonCell(r)} | | | | |`);
      continue;
    }
    const cpu = cpuPer10k(r);
    lines.push(
      `| ${r.label} | ${int(r.report.connections.completed)} | ${fixed(cpu)} | ${base ? `${fixed(cpu / base, 1)}x` : '—'} | ` +
        `${int(r.report.connections.perSecond)} | ${fixed(r.report.latencyMs?.p99)} | ${errorsOf(r.report)} |`,
    );
  }
  lines.push('');
  lines.push(
    writeChart(
      'designs-cpu.svg',
      barChart({
        title: 'Server CPU per 10,000 connections of 4,000 bytes (lower is better)',
        unit: 'CPU seconds (user+sys, children included)',
        rows: results.map((r) => ({ label: r.label, value: cpuPer10k(r), note: r.reason ? 'not measured' : undefined })),
      }),
    ),
  );
  // A process per connection dwarfs the rest: the in-process designs again, on their own scale.
  lines.push('');
  lines.push(
    writeChart(
      'designs-cpu-in-process.svg',
      barChart({
        title: 'The same, in-process designs only',
        unit: 'CPU seconds per 10,000 connections',
        rows: results
          .filter((r) => !r.label.startsWith('fork'))
          .map((r) => ({ label: r.label, value: cpuPer10k(r), note: r.reason ? 'not measured' : undefined })),
      }),
    ),
  );
  return lines.join('\n');
}

function execSection(results, stamp) {
  const tcpserverRate = results.find((r) => r.label === 'tcpserver cat')?.report?.connections.perSecond;
  const c = COUNTS.exec;
  const lines = [
    '## 2. Per connection: a program per connection',
    '',
    stamp,
    '',
    `${c.clients} concurrent clients x ${c.conns} connections each; each connection sends one ${c.bytes}-byte line, ` +
      'reads it back, and closes. Every server but the last two starts `/bin/cat` (or forks itself) per connection.',
    '',
    '| server | conns/s | vs tcpserver | CPU ms / conn | p50 ms | p99 ms | errors |',
    '|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of results) {
    if (r.reason) {
      lines.push(`| ${r.label} | ${reasonCell(r)} | | | | | |`);
      continue;
    }
    const rate = r.report.connections.perSecond;
    lines.push(
      `| ${r.label} | ${int(rate)} | ${tcpserverRate ? `${fixed(rate / tcpserverRate)}x` : '—'} | ${fixed(cpuMsPerConn(r), 3)} | ` +
        `${fixed(r.report.latencyMs?.p50)} | ${fixed(r.report.latencyMs?.p99)} | ${errorsOf(r.report)} |`,
    );
  }
  lines.push('');
  lines.push(
    writeChart(
      'exec-rate.svg',
      barChart({
        title: 'Connections per second, one echoed line each (higher is better)',
        unit: 'connections/s',
        rows: results.map((r) => ({ label: r.label, value: r.report?.connections.perSecond ?? null, note: r.reason ? 'not measured' : undefined })),
      }),
    ),
  );
  return lines.join('\n');
}

function unixSection(rows, stamp) {
  const c = COUNTS.unix;
  const by = (label) => rows.find((r) => r.label === label && !r.reason);
  const ratio = (a, b) => (a && b && a.perSecond && b.perSecond ? `${fixed(a.perSecond / b.perSecond)}x` : '—');
  const lines = [
    '## 7. UNIX-domain sockets',
    '',
    stamp,
    '',
    `${c.clients} concurrent clients (\`tcpkit bench --mode echo\`, by path or by port) x ${c.conns} connections each for echo, ` +
      `${c.execConns} each for a program per connection; each connection sends one ${c.bytes}-byte line, reads it back and closes. ` +
      `Medians of ${c.rounds} interleaved round(s). CPU per connection: the server's process tree, children included.`,
    '',
    '| server | conns/s | CPU ms / conn | UNIX vs TCP (conns/s) | vs unixserver | failed |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  const base = by('unixserver cat');
  for (const r of rows) {
    if (r.reason) {
      lines.push(`| ${r.label} | ${reasonCell(r)} | | | | |`);
      continue;
    }
    const tcp = r.label.endsWith(' UNIX') ? by(r.label.replace(/ UNIX$/, ' TCP')) : undefined;
    const vsBase = /cat/.test(r.label) && base ? ratio(r, base) : '—';
    lines.push(`| ${r.label} | ${int(r.perSecond)} | ${fixed(r.cpuMsPerConn, 3)} | ${tcp ? ratio(r, tcp) : '—'} | ${vsBase} | ${int(r.failed)} |`);
  }
  lines.push('');
  return lines.join('\n');
}

/** Issue 14's bulk goals: event and prefork at least 1.5x plain Node's s.pipe(s) and 0.6x tcpserver + cat. */
const BULK_GOALS = { 'plain Node s.pipe(s)': 1.5, 'tcpserver cat': 0.6 };

function bulkSection({ results, ceiling }, stamp) {
  const ceil = ceiling.bytesPerSecond;
  const plain = results.find((r) => r.label === 'plain Node s.pipe(s)')?.bytesPerSecond;
  const ts = results.find((r) => r.label === 'tcpserver cat')?.bytesPerSecond;
  const gib = COUNTS.bulk.size / 2 ** 30;
  const plainCpu = results.find((r) => r.label === 'plain Node s.pipe(s)')?.cpuSeconds;
  const ratio = (a, b) => (a && b ? `${fixed(a / b)}x` : '—');
  const lines = [
    '## 3. Bulk: echo throughput through one connection',
    '',
    stamp,
    '',
    `${mib(COUNTS.bulk.size)} MiB sent through one connection while the echo is read back, every byte checked in order ` +
      `(${COUNTS.bulk.client === 'bench/c/bulkclient.c' ? 'bench/c/bulkclient.c, compiled at run time: it writes while it reads, in C so that its own CPU on the shared cores does not cap every row alike' : '`tcpkit bench --mode bulk`'}; the same client for every row), each row once per round, ${COUNTS.bulk.rounds} round(s) interleaved (each round starting one row later), medians. ` +
      'Echo throughput counts each byte once (it crosses loopback twice: out and back). iperf3 sends the same amount one way: the ceiling. ' +
      'Server CPU is the server\'s process tree\'s, read around the run; GiB here are of echoed bytes. ' +
      `Goals: event and prefork at least ${BULK_GOALS['plain Node s.pipe(s)']}x plain Node's \`s.pipe(s)\` and ${BULK_GOALS['tcpserver cat']}x tcpserver + cat.`,
    '',
    '| server | MiB/s echoed | vs plain Node s.pipe(s) | vs tcpserver cat | vs iperf3 | server CPU s / GiB | CPU / GiB vs plain Node | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of results) {
    if (r.reason) {
      lines.push(`| ${r.label} | ${reasonCell(r)} | | | | | | |`);
      continue;
    }
    const bps = r.bytesPerSecond;
    const perGiB = r.cpuSeconds !== null ? r.cpuSeconds / gib : null;
    lines.push(`| ${r.label} | ${int(bps / 2 ** 20)} | ${ratio(bps, plain)} | ${ratio(bps, ts)} | ${ratio(bps, ceil)} | ${fixed(perGiB)} | ${ratio(r.cpuSeconds, plainCpu)} | ${errorsOf(r)} |`);
  }
  lines.push(ceiling.reason ? `| iperf3 (ceiling) | ${ceiling.reason} | | | | | | |` : `| iperf3 one way (ceiling) | ${int(ceil / 2 ** 20)} | | | 1.00x | | | |`);
  lines.push('');
  lines.push(
    writeChart(
      'bulk.svg',
      barChart({
        title: 'Bulk echo through one connection (higher is better)',
        unit: 'MiB/s',
        rows: [
          ...results.map((r) => ({ label: r.label, value: r.bytesPerSecond ? r.bytesPerSecond / 2 ** 20 : null, note: r.reason ? 'not measured' : undefined })),
          { label: 'iperf3 (one way)', value: ceil ? ceil / 2 ** 20 : null, color: '#a5a5a5', note: ceiling.reason ? 'not measured' : undefined },
        ],
        reference: ceil ? { value: ceil / 2 ** 20 / 2, label: 'half the ceiling' } : undefined,
      }),
    ),
  );
  return lines.join('\n');
}

/** Issue 14's CPU-per-connection goals, as a ratio to plain Node's (and conn/s at least a ratio, for the 2-worker pools). */
const CPU_GOALS = {
  event: { cpu: 1.1 },
  iterative: { cpu: 1.2 },
  'prefork --workers 2': { cpu: 1.4, rate: 0.9 },
  'threads --workers 2': { cpu: 1.4, rate: 0.9 },
  'prefork --workers 4': { cpu: 2.0 },
  'threads --workers 4': { cpu: 2.0 },
};

/** One goal's verdict: met, missed, or why not measured. */
function goalVerdict(row, runBase) {
  const base = row.base ?? runBase;
  const goal = CPU_GOALS[row.label];
  if (!goal || !base || row.reason) return { text: goal ? `CPU ≤ ${goal.cpu}x${goal.rate ? `, conn/s ≥ ${goal.rate}x` : ''}` : '', met: undefined };
  const cpu = row.cpuMsPerConn / base.cpuMsPerConn;
  const rate = row.perSecond / base.perSecond;
  const met = cpu <= goal.cpu && (!goal.rate || rate >= goal.rate);
  return { text: `CPU ≤ ${goal.cpu}x${goal.rate ? `, conn/s ≥ ${goal.rate}x` : ''}`, met };
}

function cpuPerConnSection({ rows, reason }, stamp) {
  const c = COUNTS.cpuPerConn;
  const base = rows.find((r) => r.label === 'plain Node net' && !r.reason);
  const lines = [
    '## 0. CPU per connection: tcpkit against plain Node',
    '',
    stamp,
    '',
    `The same C client for every row (bench/c/connclient.c, compiled at run time with cc: UNP ch. 30's client.c protocol): ` +
      `${c.procs} client processes x ${int(c.conns)} connections one after another, each asking the bench service for ${c.bytes} bytes, ` +
      `after ${int(c.warm)} warm-up connections on the same server. Each row once per round, ${c.rounds} round(s) interleaved (each round starting one row later), medians. ` +
      "CPU is user+sys of the server's whole process tree (workers and reaped children included) over the measured run. " +
      'The client runs on the same 2 cores and takes a large share of them, so CPU per connection is the figure that carries ' +
      "to other machines; conn/s shows whether the server's cores are wasted. Only ratios within this table compare. " +
      'To try a change to some rows: `npm run build:ts && node bench/run.js --only cpu-per-conn --rows prefork,threads --out /tmp/bench.md` ' +
      '(plain Node runs too, as their base).',
    '',
    '| server | CPU ms / conn | vs plain Node | conn/s | conn/s vs plain Node | goal | met? | errors |',
    '|---|---:|---:|---:|---:|---|---|---:|',
  ];
  if (reason) lines.push(`| (not measured) | ${reason.replace(/\|/g, '/')} | | | | | | |`);
  for (const r of rows) {
    if (r.reason) {
      lines.push(`| ${r.label} | ${reasonCell(r)} | | | | | | |`);
      continue;
    }
    const b = r.base ?? base;
    const v = goalVerdict(r, base);
    const cpuRatio = b ? `${fixed(r.cpuMsPerConn / b.cpuMsPerConn)}x` : '—';
    const rateRatio = b ? `${fixed(r.perSecond / b.perSecond)}x` : '—';
    const met = v.met === undefined ? (v.text ? 'not measured' : '') : v.met ? 'met' : '**missed**';
    lines.push(`| ${r.label} | ${fixed(r.cpuMsPerConn, 3)} | ${cpuRatio} | ${int(r.perSecond)} | ${rateRatio} | ${v.text} | ${met} | ${r.errors} |`);
  }
  return lines.join('\n');
}

function capacitySection({ limit, workers, rows }, stamp) {
  const { target, perShard } = COUNTS.capacity;
  const lines = [
    '## 4. Capacity: idle connections',
    '',
    stamp,
    '',
    `Aim: ${int(target)} idle connections to the echo service, opened by ${Math.ceil(target / perShard)} load-generator processes of at most ` +
      `${int(perShard)} connections each, each from its own source address 127.0.0.N (one address has ${'only ~28,000 ephemeral ports'}). ` +
      `The descriptor limit here: soft raised to ${int(limit)} (the hard limit; raising it further needs CAP_SYS_RESOURCE). ` +
      `Prefork runs ${workers} workers so that the pool's limit (${workers} x ${int(limit)}) is above the aim. ` +
      '"Open (client side)" also counts connections established in the server\'s accept queue that it never accepted; memory per connection is per connection the server holds (its descriptors, counted in /proc). ' +
      'Memory is the server\'s whole process tree while all connections are held: RSS summed (shared pages counted in every process) and PSS (shared pages divided).',
    '',
    '| server | aim | open (client side) | held by the server | RSS held MiB | PSS held MiB | RSS before MiB | bytes / conn (PSS) | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    if (r.reason) {
      lines.push(`| ${r.label} | ${int(r.target)} | ${reasonCell(r)} | | | | | | |`);
      continue;
    }
    const perConn = serverHeld(r) > 0 && r.held && r.before ? (r.held.pssBytes - r.before.pssBytes) / serverHeld(r) : null;
    lines.push(
      `| ${r.label} | ${int(r.target)} | ${int(r.clientHeld)} | ${int(r.serverFds)} | ${mib(r.held?.rssBytes)} | ${mib(r.held?.pssBytes)} | ${mib(r.before?.rssBytes)} | ` +
        `${int(perConn)} | ${Object.entries(r.errors).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'} |`,
    );
  }
  const firsts = rows.filter((r) => r.firstError).map((r) => `${r.label}: \`${r.firstError}\``);
  if (firsts.length) lines.push('', `First errors: ${firsts.join('; ')}.`);
  lines.push('');
  lines.push(
    writeChart(
      'capacity.svg',
      barChart({
        title: `Idle connections held (aim ${int(target)})`,
        unit: 'connections',
        rows: rows.map((r) => ({ label: r.label, value: r.reason ? null : serverHeld(r), note: r.reason ? 'not measured' : undefined })),
        reference: { value: target, label: 'aim' },
      }),
    ),
  );
  return lines.join('\n');
}

function growthSection(results, stamp, table0) {
  const { levels, total, bytes } = COUNTS.growth;
  const lines = [
    '## 5. Growth: concurrency',
    '',
    stamp,
    '',
    `About ${int(total)} connections per point (clients x connections each), each asking for ${bytes} bytes, at ${levels.join(', ')} concurrent clients. ` +
      whyNotTable0(
        results.find((r) => r.server === 'event' && r.clients === 1),
        `${fixed(cpuMsPerConn(results.find((r) => r.server === 'event' && r.clients === 1) ?? {}), 3)} ms per connection with 1 client`,
        table0,
      ),
    '',
    '| server | clients | connections | conns/s | CPU ms / conn | p50 ms | p99 ms | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of results) {
    if (r.reason) {
      lines.push(`| ${r.server} | ${r.clients} | ${reasonCell(r)} | | | | | |`);
      continue;
    }
    lines.push(
      `| ${r.server} | ${r.clients} | ${int(r.report.connections.completed)} | ${int(r.report.connections.perSecond)} | ${fixed(cpuMsPerConn(r), 3)} | ` +
        `${fixed(r.report.latencyMs?.p50)} | ${fixed(r.report.latencyMs?.p99)} | ${errorsOf(r.report)} |`,
    );
  }
  const names = [...new Set(results.map((r) => r.server))];
  const series = (f) => names.map((n) => ({ label: n, points: results.filter((r) => r.server === n).map((r) => [r.clients, r.report ? f(r) : null]) }));
  lines.push('');
  lines.push(
    writeChart('growth-p99.svg', lineChart({ title: 'p99 latency per connection', xLabel: 'concurrent clients', yLabel: 'p99 ms', series: series((r) => r.report.latencyMs?.p99 ?? null) })),
  );
  lines.push('');
  lines.push(
    writeChart('growth-cpu.svg', lineChart({ title: 'Server CPU per connection', xLabel: 'concurrent clients', yLabel: 'CPU ms / connection', series: series(cpuMsPerConn) })),
  );
  return lines.join('\n');
}

/**
 * Every current performance goal once (from the open issues and the earlier documents), with where this run measured
 * it: one row per goal and model. Goals this bench has no table for say so rather than vanish.
 */
function goalsSection(all) {
  const lines = [
    '## Goals',
    '',
    'Each current goal once, with the table of this run that measures it. Goals with no table here are listed as not measured.',
    '',
    '| goal | measured (this run) | met? |',
    '|---|---|---|',
  ];
  const verdict = (ok) => (ok === undefined ? 'not measured' : ok ? 'yes' : '**no**');
  const row = (goal, measured, ok) => lines.push(`| ${goal} | ${String(measured).replace(/\|/g, '/')} | ${verdict(ok)} |`);
  const notRun = (key) => `not measured: ${PART_TITLES[key]} was not run`;

  // Table 0: CPU per connection against plain Node's.
  const t0 = all.cpuPerConn;
  const base0 = t0?.rows.find((r) => r.label === 'plain Node net' && !r.reason);
  for (const [label, goal] of Object.entries(CPU_GOALS)) {
    const text = `${label}: CPU per connection ≤ ${goal.cpu}x plain Node's${goal.rate ? `, conn/s ≥ ${goal.rate}x` : ''}`;
    const r = t0?.rows.find((x) => x.label === label);
    if (!t0 || !r) row(text, notRun('cpuPerConn'), undefined);
    else if (r.reason || !base0) row(text, r.reason ?? 'no plain Node row', undefined);
    else row(text, `${fixed(r.cpuMsPerConn / base0.cpuMsPerConn)}x CPU/conn, ${fixed(r.perSecond / base0.perSecond)}x conn/s (table 0)`, goalVerdict(r, base0).met);
  }

  // Table 2: a program per connection against tcpserver.
  const ex = all.exec;
  const ts = ex?.find((r) => r.label === 'tcpserver cat')?.report;
  for (const [label, name] of [['tcpkit --exec /bin/cat', 'fork model'], ['tcpkit --exec /bin/cat (prefork x2)', 'prefork x2']]) {
    const text = `\`--exec /bin/cat\` (${name}): conn/s ≥ 1.2x tcpserver's, CPU per connection ≤ 0.9x, p50 and p99 no worse`;
    const r = ex?.find((x) => x.label === label);
    if (!ex || !r) row(text, notRun('exec'), undefined);
    else if (!r.report || !ts) row(text, r.reason ?? 'no tcpserver row', undefined);
    else {
      const rate = r.report.connections.perSecond / ts.connections.perSecond;
      const cpu = cpuMsPerConn(r) / (ts.server?.cpu.perConnectionMs ?? NaN);
      const [mine, theirs] = [r.report.latencyMs ?? {}, ts.latencyMs ?? {}];
      const measured = [rate, cpu, mine.p50, theirs.p50, mine.p99, theirs.p99].every((v) => typeof v === 'number' && Number.isFinite(v));
      row(
        text,
        `${fixed(rate)}x conn/s, ${fixed(cpu)}x CPU/conn, p50 ${fixed(mine.p50)} vs ${fixed(theirs.p50)} ms, p99 ${fixed(mine.p99)} vs ${fixed(theirs.p99)} ms (table 2)`,
        measured ? rate >= 1.2 && cpu <= 0.9 && mine.p50 <= theirs.p50 && mine.p99 <= theirs.p99 : undefined,
      );
    }
  }
  // Section 6 (bench/launcher.js): the same program with --proxy-protocol and with 10 access rules, against the plain fork row.
  const lx = all.launcher?.exec;
  const plain = lx?.find((r) => r.label === 'tcpkit --exec /bin/cat (fork)');
  // A saved run from before these rows existed renders as it did then.
  const hasVariants = lx?.some((r) => r.label === 'tcpkit --exec /bin/cat (prefork x2)') ?? false;
  if (!hasVariants) row('`--exec /bin/cat` with `--proxy-protocol`, and with 10 access rules: within 10% of the plain figure', 'not measured: bench/run.js has no such rows yet', undefined);
  for (const variant of hasVariants ? ['--proxy-protocol', '10 access rules'] : []) {
    const text = `\`--exec /bin/cat\` with ${variant}: within 10% of the plain figure (conn/s and CPU per connection)`;
    const r = lx?.find((x) => x.label === `tcpkit --exec /bin/cat (fork), ${variant}`);
    if (!lx || !r || !plain) row(text, !all.launcher ? notRun('launcher') : 'no row', undefined);
    else if (r.reason || plain.reason) row(text, r.reason ?? plain.reason, undefined);
    else {
      const rate = r.rate / plain.rate;
      const cpu = r.cpuMs / plain.cpuMs;
      row(text, `${fixed(rate)}x conn/s, ${fixed(cpu)}x CPU/conn of the plain fork row (section 6)`, Number.isFinite(rate) && Number.isFinite(cpu) ? rate >= 0.9 && cpu <= 1.1 : undefined);
    }
  }
  // The fork and prefork x2 goals from section 6 too (one client, tcpserver in the same run).
  const lts = lx?.find((r) => r.label.startsWith('tcpserver'));
  for (const [label, name] of hasVariants ? [['tcpkit --exec /bin/cat (fork)', 'fork model'], ['tcpkit --exec /bin/cat (prefork x2)', 'prefork x2']] : []) {
    const text = `\`--exec /bin/cat\` (${name}), section 6: conn/s ≥ 1.2x tcpserver's, CPU per connection ≤ 0.9x, p50 and p99 no worse`;
    const r = lx?.find((x) => x.label === label);
    if (!lx || !r || !lts) row(text, !all.launcher ? notRun('launcher') : 'no row', undefined);
    else if (r.reason || lts.reason) row(text, r.reason ?? lts.reason, undefined);
    else {
      const rate = r.rate / lts.rate;
      const cpu = r.cpuMs / lts.cpuMs;
      row(
        text,
        `${fixed(rate)}x conn/s, ${fixed(cpu)}x CPU/conn, p50 ${fixed(r.p50)} vs ${fixed(lts.p50)} ms, p99 ${fixed(r.p99)} vs ${fixed(lts.p99)} ms (section 6)`,
        [rate, cpu, r.p50, r.p99].every(Number.isFinite) ? rate >= 1.2 && cpu <= 0.9 && r.p50 <= lts.p50 && r.p99 <= lts.p99 : undefined,
      );
    }
  }

  // Section 6: the fork model's parent.
  const forkRow = all.launcher?.fork?.find((r) => r.label === 'this build');
  row(
    'fork model: the parent\'s CPU ≤ 0.5 ms per connection (a Node child each)',
    !all.launcher ? notRun('launcher') : forkRow ? `${fixed(forkRow.parentMs, 3)} ms (section 6)` : all.launcher.reason ?? 'no row',
    forkRow && Number.isFinite(forkRow.parentMs) ? forkRow.parentMs <= 0.5 : undefined,
  );

  // Table 3: bulk.
  const bulk = all.bulk;
  const rate = (label) => bulk?.results.find((r) => r.label === label)?.bytesPerSecond;
  for (const label of ['event', 'prefork']) {
    const text = `bulk echo (${label}): MiB/s ≥ ${BULK_GOALS['plain Node s.pipe(s)']}x plain Node's s.pipe(s) and ≥ ${BULK_GOALS['tcpserver cat']}x tcpserver cat's`;
    const a = rate(label);
    const p = rate('plain Node s.pipe(s)');
    const t = rate('tcpserver cat');
    if (!bulk) row(text, notRun('bulk'), undefined);
    else if (!a || !p || !t) row(text, bulk.results.find((r) => r.label === label)?.reason ?? 'a row failed', undefined);
    else row(text, `${fixed(a / p)}x and ${fixed(a / t)}x (table 3)`, a / p >= BULK_GOALS['plain Node s.pipe(s)'] && a / t >= BULK_GOALS['tcpserver cat']);
  }
  {
    const text = 'bulk echo (every model): at least half the iperf3 ceiling';
    const ceil = bulk?.ceiling?.bytesPerSecond;
    const mine = bulk?.results.filter((r) => ['event', 'prefork', 'threads', 'iterative', 'fork'].includes(r.label)) ?? [];
    if (!bulk) row(text, notRun('bulk'), undefined);
    else if (!ceil) row(text, `not measured: iperf3: ${bulk.ceiling.reason}`, undefined);
    else {
      const ok = mine.every((r) => r.bytesPerSecond && r.bytesPerSecond / ceil >= 0.5);
      row(text, `${mine.map((r) => `${r.label} ${r.bytesPerSecond ? `${fixed(r.bytesPerSecond / ceil)}x` : 'failed'}`).join(', ')} (table 3)`, mine.length ? ok : undefined);
    }
  }

  // Table 4: capacity.
  const cap = all.capacity;
  for (const label of ['event', 'prefork']) {
    const text = `${label}: 100,000 idle connections within 1 GiB (PSS)`;
    const r = cap?.rows.find((x) => x.label === label || x.label.startsWith(`${label} `));
    if (!cap || !r) row(text, notRun('capacity'), undefined);
    else if (r.reason || !r.held || !r.before) row(text, r.reason ?? 'no memory reading of the server', undefined);
    else {
      const held = serverHeld(r);
      let measured = `${r.label}: ${int(held)} held by the server, PSS ${mib(r.held.pssBytes)} MiB`;
      if (held < 100_000 && held > 0) {
        const perConn = (r.held.pssBytes - r.before.pssBytes) / held;
        measured += `; at ${int(perConn)} B/connection, 100,000 would need ~${mib(r.before.pssBytes + perConn * 100_000)} MiB`;
      }
      const scale = r.target < 100_000 ? ` (this run aimed at ${int(r.target)} only)` : '';
      row(text, `${measured} (table 4)${scale}`, r.target < 100_000 ? undefined : held >= 100_000 && r.held.pssBytes <= 2 ** 30);
    }
  }

  // Table 8: TLS.
  {
    const t = all.tls;
    const r = t && !t.reason ? tlsRatios(t) : undefined;
    const why = !t ? notRun('tls') : t.reason;
    for (const suffix of ['', ', resumed']) {
      const h = r?.[`handshake${suffix}`];
      row(`TLS${suffix ? ' with resumption' : ' full handshakes'}: tcpkit event echo CPU per handshake ≤ 1.1x a plain Node \`tls\` server's`, h?.cpu !== undefined ? `${fixed(h.cpu)}x CPU, ${fixed(h.rate)}x handshakes/s (table 8)` : why ?? 'a row failed', h?.cpu !== undefined ? h.cpu <= 1.1 : undefined);
    }
    row('TLS: `--exec /bin/cat` conn/s ≥ 1.0x stunnel4\'s at CPU per connection ≤ 1.0x', r?.exec.rate !== undefined && r.exec.cpu !== undefined ? `${fixed(r.exec.rate)}x conn/s, ${fixed(r.exec.cpu)}x CPU/conn (table 8)` : why ?? 'a row failed', r?.exec.rate !== undefined && r.exec.cpu !== undefined ? r.exec.rate >= 1 && r.exec.cpu <= 1 : undefined);
    row('TLS bulk: tcpkit event echo and `--exec cat` ≥ 1.0x stunnel4\'s MiB/s', r?.bulkEvent !== undefined && r.bulkExec !== undefined ? `event ${fixed(r.bulkEvent)}x, --exec cat ${fixed(r.bulkExec)}x (table 8)` : why ?? 'a row failed', r?.bulkEvent !== undefined && r.bulkExec !== undefined ? r.bulkEvent >= 1 && r.bulkExec >= 1 : undefined);
  }
  // Table 7: UNIX-domain sockets.
  {
    const text = 'UNIX sockets: `--exec /bin/cat` conn/s ≥ 1.0x ucspi-unix unixserver\'s';
    const rows = all.unix;
    const mine = rows?.find((r) => r.label === 'tcpkit --exec /bin/cat UNIX');
    const base = rows?.find((r) => r.label === 'unixserver cat');
    if (!rows) row(text, notRun('unix'), undefined);
    else if (!mine?.perSecond || !base?.perSecond) row(text, mine?.reason ?? base?.reason ?? 'a row failed', undefined);
    else {
      const cpu = mine.cpuMsPerConn && base.cpuMsPerConn ? `, ${fixed(mine.cpuMsPerConn / base.cpuMsPerConn)}x CPU/conn` : '';
      row(text, `${fixed(mine.perSecond / base.perSecond)}x conn/s${cpu} (table 7)`, mine.perSecond / base.perSecond >= 1);
    }
  }
  {
    const text = 'UNIX sockets: echo cheaper than over TCP loopback (event and prefork x2, CPU per connection)';
    const rows = all.unix;
    const pairs = ['echo event', 'echo prefork x2'].map((l) => [l, rows?.find((r) => r.label === `${l} UNIX`), rows?.find((r) => r.label === `${l} TCP`)]);
    if (!rows) row(text, notRun('unix'), undefined);
    else if (pairs.some(([, u, t]) => !u?.cpuMsPerConn || !t?.cpuMsPerConn)) row(text, 'a row failed', undefined);
    else row(text, `${pairs.map(([l, u, t]) => `${l.replace('echo ', '')} ${fixed(u.cpuMsPerConn / t.cpuMsPerConn)}x CPU/conn`).join(', ')} (table 7)`, pairs.every(([, u, t]) => u.cpuMsPerConn < t.cpuMsPerConn));
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- 6. launcher (bench/launcher.js)

/** bench/launcher.js's figures and tables, measured now ({ reason } when it failed); TCPKIT_BEFORE=DIR adds an earlier build. */
async function launcherTable() {
  const args = [path.join(ROOT, 'bench', 'launcher.js'), '--json', ...(QUICK ? ['--conns', '250', '--fork-conns', '40'] : []), '--rounds', String(Math.max(ROUNDS, 3))];
  if (process.env.TCPKIT_BEFORE) args.push('--before', process.env.TCPKIT_BEFORE, '--before-label', process.env.TCPKIT_BEFORE_LABEL ?? process.env.TCPKIT_BEFORE);
  const child = spawnTracked([process.execPath, ...args]);
  const { code } = await child.exited;
  if (code !== 0) return { reason: `bench/launcher.js exited ${code}: ${firstLine(child.stderrText())}` };
  try {
    return JSON.parse(child.stdoutText());
  } catch (err) {
    return { reason: `bench/launcher.js printed no JSON: ${err.message}` };
  }
}

function launcherSection(l, stamp) {
  return [
    '## 6. A process per connection without forking Node: the native launcher',
    '',
    stamp,
    '',
    l.reason ? `Not measured: ${l.reason}` : l.markdown,
  ].join('\n');
}

async function main() {
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  let all = {};
  let before;
  let after;
  let minutes;
  let generatedAt = new Date().toISOString();
  let build;
  let quick = QUICK;
  let options;
  if (flags.from) {
    // Render again from a saved results.json (after editing bench/reading.md or the layout), without measuring.
    const saved = JSON.parse(fs.readFileSync(flags.from, 'utf8'));
    ({ machine: { before, after }, minutes, generatedAt, build, quick, options } = saved);
    Object.assign(COUNTS, saved.counts);
    for (const k of [...PART_KEYS, 'unix', 'nodeStartMs', 'models', 'stamps']) if (saved[k] !== undefined) all[k] = saved[k];
  } else {
    if (!flags['no-install']) for (const line of peers.installPeers()) log(line);
    before = machine();
    log(`models: ${models.join(', ') || 'none'}; services: ${services.join(', ')}; ${QUICK ? 'quick' : 'full'} run`);
    all.models = models;
    all.stamps = {};
    /** Measure one part, stamped with when it started and the load average then (its section prints both). */
    const part = async (name, key, fn) => {
      if (!ONLY.has(name)) return;
      all.stamps[key] = { at: new Date().toISOString(), load: loadNow() };
      all[key] = await fn();
    };
    await part('cpu-per-conn', 'cpuPerConn', cpuPerConn);
    await part('designs', 'designs', async () => {
      const rows = await designs();
      all.nodeStartMs = await nodeStartCpuMs();
      log(`node -e 0: ${fixed(all.nodeStartMs, 1)} ms CPU per start`);
      return rows;
    });
    await part('exec', 'exec', execRows);
    await part('bulk', 'bulk', bulkRows);
    await part('capacity', 'capacity', capacity);
    await part('growth', 'growth', growth);
    await part('launcher', 'launcher', launcherTable);
    await part('unix', 'unix', unixRows);
    await part('tls', 'tls', tlsPart);
    minutes = ((Date.now() - t0) / 60_000).toFixed(1);
    after = machine();
    build = serverBuild();
    options = OPTIONS;
  }

  if (!flags.from) {
    // Saved before the document is rendered: a rendering that fails can be done again from it (--from), no re-run.
    fs.mkdirSync(CHART_DIR, { recursive: true });
    const saved = { machine: { before, after }, minutes, generatedAt, build, options, counts: COUNTS, quick, ...all };
    fs.writeFileSync(path.join(CHART_DIR, 'results.json'), `${JSON.stringify(saved, null, 2)}\n`);
  }
  const reading = fs.existsSync(path.join(ROOT, 'bench', 'reading.md')) ? fs.readFileSync(path.join(ROOT, 'bench', 'reading.md'), 'utf8').trim() : '';
  const stamp = (key) => stampLine(all.stamps?.[key], options);
  /** A section whose rendering throws says so (and the run goes on): its figures stay in results.json. */
  const safe = (what, render) => {
    try {
      return render();
    } catch (err) {
      log(`rendering ${what}: ${err.stack ?? err}`);
      return `**${what}: not rendered** (${String(err.message).replace(/\|/g, '/')}); the figures are in docs/benchmarks/results.json.`;
    }
  };
  const left = PART_KEYS.filter((k) => all[k] === undefined);
  const load1 = Number(before.load.split(' ')[0]);
  const doc = [
    '# Benchmarks',
    '',
    '<!-- Generated whole by bench/run.js from one run: do not edit by hand (edit bench/run.js or bench/reading.md and run it again). -->',
    '',
    `Generated by \`npm run bench${options ? ` -- ${options}` : ''}\` (bench/run.js) on ${utc(generatedAt)} in ${minutes} minutes: every figure below comes from this one run. ` +
      `The machine has ${before.cores} cores and ${load1 >= before.cores / 2 ? `was shared and loaded while this ran (load average ${before.load} at the start, ${after.load} at the end): other work ran beside the benchmark, so rates are low and differences under about 20% are noise` : `had a load average of ${before.load} at the start and ${after.load} at the end`}. ` +
      'Every table below says when it ran and the load average at its start. ' +
      'Only ratios within one table compare: each table has its own base row (plain Node, tcpserver) measured beside the others. ' +
      'Regenerate it on your own machine: the figures are this machine\'s.' +
      (left.length ? ` Not measured in this run (--only/--rows): ${left.map((k) => PART_TITLES[k]).join('; ')}.` : ''),
    '',
    '## The machine',
    '',
    `- CPU: ${before.cpu}, ${before.cores} cores; memory ${before.memory}`,
    `- Kernel: ${before.kernel}; Node ${before.node}`,
    `- Ephemeral ports ${before.portRange}; descriptor limit for servers and load generators: ${int(all.capacity?.limit)}`,
    `- Load average (1, 5, 15 min) at start: ${before.load}; at end: ${after.load}`,
    `- tcpkit servers measured: ${build}; models ${(all.models ?? models).join(', ') || 'none'}. The load generators (the C clients of tables 0 and 3, \`tcpkit bench\` for the rest, itself Node) run on the same machine: they share its ${before.cores} cores with the server, and so does whatever else runs there.`,
    '',
    safe('Goals', () => goalsSection(all)),
    '',
    all.cpuPerConn ? safe('table 0', () => cpuPerConnSection(all.cpuPerConn, stamp('cpuPerConn'))) : '',
    '',
    all.designs ? safe('table 1', () => designsSection(all.designs, all.nodeStartMs, stamp('designs'), all.cpuPerConn)) : '',
    '',
    all.exec ? safe('table 2', () => execSection(all.exec, stamp('exec'))) : '',
    '',
    all.bulk ? safe('table 3', () => bulkSection(all.bulk, stamp('bulk'))) : '',
    '',
    all.capacity ? safe('table 4', () => capacitySection(all.capacity, stamp('capacity'))) : '',
    '',
    all.growth ? safe('table 5', () => growthSection(all.growth, stamp('growth'), all.cpuPerConn)) : '',
    '',
    all.launcher ? safe('section 6', () => launcherSection(all.launcher, stamp('launcher'))) : '',
    '',
    // Rendered only when measured: a results.json from before this part renders as it did.
    all.unix ? safe('table 7', () => unixSection(all.unix, stamp('unix'))) : '',
    all.tls ? safe('table 8', () => tlsSection(all.tls, stamp('tls'))) : '',
    '',
    reading ? `## Reading\n\n${reading}` : '',
    '',
  ]
    .join('\n')
    .replace(/\n{3,}/g, '\n\n');
  fs.writeFileSync(OUT, doc);
  log(`wrote ${path.relative(process.cwd(), OUT)} in ${minutes} minutes`);
}

main()
  .catch((err) => {
    process.stderr.write(`bench: ${err.stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(killAll);
