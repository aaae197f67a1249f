// The load generator (src/bench/, `tcpkit bench`) against real servers on 127.0.0.1 port 0:
// tiny servers written here (bench protocol, short replies, corrupting echo, silence),
// tcpkit's own echo server, and a plain Node server process for the CPU/memory probe.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runBench } from '../../dist/bench/index.js';
import { ROOT, run, startServer, eventually, portOf, type StartedServer } from '../helpers.js';

/** Start a net server on 127.0.0.1:0 that hands each socket to `onSocket`; tracks its sockets. */
async function tinyServer(onSocket: (socket: net.Socket) => void) {
  const sockets = new Set<net.Socket>();
  // Not half-open: a client's FIN closes the server's side too, as most servers do.
  const server = net.createServer({ allowHalfOpen: false }, (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 1024 }, resolve));
  return {
    port: portOf(server),
    sockets,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The bench protocol ("K\n" -> K bytes, until EOF), counting what it was asked; `short` answers one byte less. */
function benchProtocol(stats: { connections: number; requests: number; bytes: number }, { short = false } = {}) {
  return (socket: net.Socket): void => {
    stats.connections++;
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const n = Number(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        stats.requests++;
        stats.bytes += n;
        if (short) {
          socket.end(Buffer.alloc(n - 1, 0x62));
          return;
        }
        socket.write(Buffer.alloc(n, 0x62));
      }
    });
    socket.on('end', () => socket.end());
  };
}

describe('tcpkit bench: requests mode (UNP ch. 30 client)', () => {
  it('makes exactly clients x conns connections, each asking for and reading exactly K bytes', async () => {
    const stats = { connections: 0, requests: 0, bytes: 0 };
    const srv = await tinyServer(benchProtocol(stats));
    try {
      const r = await runBench({ port: srv.port, clients: 3, conns: 20, bytes: 1000 });
      assert.equal(r.mode, 'requests');
      assert.deepEqual(r.errors, {});
      assert.equal(r.connections.attempted, 60);
      assert.equal(r.connections.completed, 60);
      assert.equal(r.connections.failed, 0);
      assert.equal(r.bytes.received, 60 * 1000);
      assert.equal(r.bytes.sent, 60 * '1000\n'.length);
      assert.equal(r.latencyMs?.samples, 60);
      assert.ok(r.latencyMs!.p50 <= r.latencyMs!.p99 && r.latencyMs!.p99 <= r.latencyMs!.max);
      assert.equal(r.truncated, false);
      // The server saw the same: 60 connections, one request of 1000 bytes each.
      assert.deepEqual(stats, { connections: 60, requests: 60, bytes: 60_000 });
    } finally {
      await srv.close();
    }
  });

  it('counts short replies as TCPKIT_PREMATURE_CLOSE', async () => {
    const stats = { connections: 0, requests: 0, bytes: 0 };
    const srv = await tinyServer(benchProtocol(stats, { short: true }));
    try {
      const r = await runBench({ port: srv.port, clients: 2, conns: 5, bytes: 500 });
      assert.equal(r.connections.completed, 0);
      assert.equal(r.connections.failed, 10);
      assert.deepEqual(r.errors, { TCPKIT_PREMATURE_CLOSE: 10 });
      assert.match(r.firstError ?? '', /server terminated prematurely \(EOF after 499 of 500 bytes\)/);
    } finally {
      await srv.close();
    }
  });

  it('reports refused connections by code, and the CLI exits 111', async () => {
    // A port that was just listening and is now closed: nothing accepts there.
    const srv = await tinyServer(() => {});
    const port = srv.port;
    await srv.close();
    const r = await runBench({ port, clients: 2, conns: 3 });
    assert.equal(r.connections.completed, 0);
    assert.deepEqual(r.errors, { ECONNREFUSED: 6 });
    assert.equal(r.firstError, `connect ECONNREFUSED 127.0.0.1:${port}`);

    const cli = await run(['bench', '127.0.0.1', String(port), '--conns', '2', '--json']);
    assert.equal(cli.code, 111);
    assert.deepEqual(JSON.parse(cli.stdout.toString()).errors, { ECONNREFUSED: 2 });
  });

  it('stops at --duration against a server that never answers, and says truncated', async () => {
    // Reads (so it sees the client's FIN) but never answers.
    const srv = await tinyServer((socket: net.Socket) => socket.resume());
    try {
      const t0 = Date.now();
      const r = await runBench({ port: srv.port, clients: 4, conns: 1000, duration: 1 });
      assert.ok(Date.now() - t0 < 8000, 'the cap ends the run');
      assert.equal(r.truncated, true);
      assert.equal(r.connections.completed, 0);
      assert.equal(r.connections.failed, 0);
      assert.equal(r.connections.aborted, 4);
      await eventually(() => srv.sockets.size === 0, { message: 'the aborted connections closed' });
    } finally {
      await srv.close();
    }
  });
});

describe('tcpkit bench: echo and bulk modes against tcpkit serve echo', () => {
  let server: StartedServer;
  before(async () => {
    server = await startServer(['echo', '-q', '--max-conns', '16']);
  });
  after(async () => {
    await server?.stop();
  });

  it('echo: every line comes back, exactly', async () => {
    const r = await runBench({ port: server.port, mode: 'echo', clients: 2, conns: 4, lines: 3, bytes: 100 });
    assert.deepEqual(r.errors, {});
    assert.equal(r.connections.completed, 8);
    assert.equal(r.exchanges, 24);
    assert.equal(r.bytes.sent, 2400);
    assert.equal(r.bytes.received, 2400);
  });

  it('bulk: 8 MiB through one connection, every byte back in order', async () => {
    const size = 8 * 1024 * 1024;
    const r = await runBench({ port: server.port, mode: 'bulk', size, serverPid: server.pid });
    assert.deepEqual(r.errors, {});
    assert.equal(r.connections.completed, 1);
    assert.equal(r.bytes.sent, size);
    assert.equal(r.bytes.received, size);
    assert.ok(r.throughput.bytesPerSecond > 0);
    // The fork model serves it in a child: the probe counts the child's CPU too.
    assert.ok(r.server!.cpu.totalSeconds > 0, JSON.stringify(r.server?.cpu));
  });
});

describe('tcpkit bench: bulk mode detects a wrong echo', () => {
  it('an echo that changes one byte fails with TCPKIT_ECHO_MISMATCH', async () => {
    let total = 0;
    const srv = await tinyServer((socket: net.Socket) => {
      socket.on('data', (chunk: Buffer) => {
        // Flip one byte 100,000 bytes into the stream.
        if (total <= 100_000 && total + chunk.length > 100_000) {
          chunk = Buffer.from(chunk);
          chunk[100_000 - total] ^= 0xff;
        }
        total += chunk.length;
        socket.write(chunk);
      });
      socket.on('end', () => socket.end());
    });
    try {
      const r = await runBench({ port: srv.port, mode: 'bulk', size: 1024 * 1024 });
      assert.equal(r.connections.completed, 0);
      assert.deepEqual(r.errors, { TCPKIT_ECHO_MISMATCH: 1 });
    } finally {
      await srv.close();
    }
  });
});

describe('tcpkit bench: idle mode', () => {
  it('holds N connections from 2 source addresses at once, then closes them all', async () => {
    const seen = new Map<string | undefined, number>();
    let peak = 0;
    const srv = await tinyServer((socket: net.Socket) => {
      seen.set(socket.remoteAddress, (seen.get(socket.remoteAddress) ?? 0) + 1);
      peak = Math.max(peak, srv.sockets.size + 1);
    });
    try {
      const r = await runBench({
        port: srv.port,
        idle: 400,
        mode: 'idle',
        clients: 50,
        hold: 0.5,
        sources: ['127.0.0.1', '127.0.0.2'],
      });
      assert.deepEqual(r.errors, {});
      assert.equal(r.idle?.opened, 400);
      assert.equal(r.idle?.held, 400);
      assert.equal(r.idle?.peakHeld, 400);
      assert.deepEqual(r.idle?.bySource, { '127.0.0.1': 200, '127.0.0.2': 200 });
      // The server saw them all open together, 200 from each address.
      assert.ok(peak >= 400, `server peak ${peak}`);
      assert.deepEqual(Object.fromEntries(seen), { '127.0.0.1': 200, '127.0.0.2': 200 });
      await eventually(() => srv.sockets.size === 0, { message: 'idle connections closed after the hold' });
    } finally {
      await srv.close();
    }
  });

  it('counts connections the server drops during the hold', async () => {
    const srv = await tinyServer((socket: net.Socket) => setTimeout(() => socket.destroy(), 100));
    try {
      const r = await runBench({ port: srv.port, mode: 'idle', idle: 20, hold: 1 });
      assert.equal(r.idle?.opened, 20);
      assert.equal(r.idle?.held, 0);
      assert.equal(r.connections.failed, 20);
      assert.equal(Object.values(r.errors).reduce((a, b) => a + b, 0), 20);
    } finally {
      await srv.close();
    }
  });
});

describe('tcpkit bench CLI', () => {
  let floor: ChildProcessByStdio<null, Readable, null>;
  let floorPort: number;
  before(async () => {
    // A plain Node bench server in its own process, so its CPU and memory are its own.
    floor = spawn(process.execPath, [path.join(ROOT, 'bench', 'peers', 'node-server.js'), 'bench', '0'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    floorPort = await new Promise<number>((resolve, reject) => {
      floor.stdout.once('data', (c: Buffer) => resolve(Number(String(c).trim())));
      floor.once('exit', (code) => reject(new Error(`node-server exited ${code}`)));
    });
  });
  after(async () => {
    if (floor && floor.exitCode === null) {
      const exited = new Promise((resolve) => floor.once('exit', resolve));
      floor.kill('SIGTERM');
      await exited;
    }
  });

  it('--json prints the report: shape, counts and the server probe', async () => {
    const r = await run([
      'bench', '127.0.0.1', String(floorPort),
      '--clients', '2', '--conns', '50', '--bytes', '4000', '--server-pid', String(floor.pid), '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout.toString());
    assert.deepEqual(Object.keys(report).sort(), [
      'bytes', 'connections', 'elapsedSeconds', 'errors', 'exchanges', 'firstError', 'idle', 'interrupted', 'latencyMs', 'mode',
      'options', 'server', 'startedAt', 'target', 'throughput', 'truncated',
    ]);
    assert.equal(report.target, `127.0.0.1:${floorPort}`);
    assert.deepEqual(report.connections, { ...report.connections, attempted: 100, completed: 100, failed: 0, aborted: 0 });
    assert.ok(report.connections.perSecond > 0);
    assert.deepEqual(Object.keys(report.latencyMs).sort(), ['max', 'mean', 'p50', 'p99', 'samples']);
    assert.equal(report.bytes.received, 400_000);
    assert.equal(report.idle, null);
    const s = report.server;
    assert.equal(s.pid, floor.pid);
    assert.equal(s.alive, true);
    assert.ok(s.cpu.totalSeconds > 0 && s.cpu.perConnectionMs > 0, JSON.stringify(s.cpu));
    assert.ok(s.memory.before.rssBytes > 10 * 2 ** 20 && s.memory.peak.rssBytes >= s.memory.before.rssBytes);
    assert.equal(s.memory.before.processes, 1);
  });

  it('SIGTERM ends an idle hold early and still reports the connections held', async () => {
    const srv = await tinyServer((socket: net.Socket) => socket.resume());
    try {
      const child = spawn(process.execPath, [
        path.join(ROOT, 'bin', 'tcpkit.js'), 'bench', '127.0.0.1', String(srv.port), '--idle', '50', '--hold', '600', '--json',
      ], { stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      child.stdout.on('data', (c: Buffer) => out.push(c));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      try {
        await eventually(() => srv.sockets.size === 50, { message: '50 idle connections at the server' });
        child.kill('SIGTERM');
        assert.equal(await exited, 0);
      } finally {
        child.kill('SIGKILL');
      }
      const report = JSON.parse(Buffer.concat(out).toString());
      assert.equal(report.idle.held, 50);
      assert.ok(report.idle.holdSeconds < 60);
      assert.equal(report.truncated, false);
      await eventually(() => srv.sockets.size === 0, { message: 'connections released' });
    } finally {
      await srv.close();
    }
  });

  it('the default mode against an echo server names the mismatch at once (it timed out every connection)', async () => {
    const echo = await startServer(['--model', 'event']);
    try {
      const t0 = Date.now();
      const r = await run(['bench', '127.0.0.1', String(echo.port), '--conns', '5', '--json']);
      assert.equal(r.code, 111, r.stderr);
      const report = JSON.parse(r.stdout.toString());
      assert.deepEqual(report.errors, { TCPKIT_BENCH_MISMATCH: 5 });
      assert.match(report.firstError, /sent the request line "4000\\n" back: it is an echo server\. --mode requests \(the default\) needs the bench service \(tcpkit serve bench\); for an echo server use --mode echo$/);
      // Five connections of 10 s each before; now well under one --timeout.
      assert.ok(Date.now() - t0 < 10_000, `${Date.now() - t0} ms`);
    } finally {
      await echo.stop();
    }
  });

  it('SIGTERM ends a requests run early: the text report says interrupted, not truncated by --duration', async () => {
    const srv = await tinyServer((socket: net.Socket) => socket.resume());
    try {
      const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'tcpkit.js'), 'bench', '127.0.0.1', String(srv.port), '--timeout', '60'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      child.stdout.on('data', (c: Buffer) => out.push(c));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      try {
        await eventually(() => srv.sockets.size === 1, { message: 'the bench connected' });
        child.kill('SIGTERM');
        await exited;
      } finally {
        child.kill('SIGKILL');
      }
      const first = Buffer.concat(out).toString().split('\n')[0]!;
      assert.match(first, /^tcpkit bench requests 127\.0\.0\.1:\d+: 1 clients x 100 connections x 4000 bytes \(interrupted\)$/);
    } finally {
      await srv.close();
    }
  });

  it('npm run bench -- --help: the usage, exit 0 (it was a stack trace); an unknown option: one line, exit 100', () => {
    const help = spawnSync(process.execPath, [path.join(ROOT, 'bench', 'run.js'), '--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^`npm run bench`: measure tcpkit's designs/);
    assert.match(help.stdout, /node bench\/run\.js \[--quick\]/);
    const bad = spawnSync(process.execPath, [path.join(ROOT, 'bench', 'run.js'), '--bogus'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(bad.status, 100);
    assert.match(bad.stderr, /^bench\/run\.js: Unknown option '--bogus'\n/);
  });

  it('prints a text report without --json', async () => {
    const r = await run(['bench', '127.0.0.1', String(floorPort), '--conns', '5', '--bytes', '10']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /^tcpkit bench requests 127\.0\.0\.1:\d+: 1 clients x 5 connections x 10 bytes$/m);
    assert.match(r.stdout.toString(), /^connections {2}5 completed, 0 failed in [\d.]+ s: [\d.]+ \/s$/m);
    assert.match(r.stdout.toString(), /^errors {7}none$/m);
  });

  const bad: [args: string[], message: RegExp][] = [
    [['--clients', '0'], /--clients: must be an integer from 1/],
    [['--conns', 'many'], /--conns: must be an integer/],
    [['--size', '1XB', '--mode', 'bulk'], /--size: expected a byte count/],
    [['--mode', 'flood'], /--mode: must be one of requests, echo, bulk, idle/],
    [['--idle', '10', '--mode', 'bulk'], /--idle: only with --mode idle/],
    [['--mode', 'idle'], /--idle: --mode idle needs --idle N/],
    [['--source', '127.0.0.1,nowhere', '--idle', '2'], /--source: not an IP address: "nowhere"/],
    [['--duration', '-1'], /--duration|option '--duration/],
    [['--server-pid', '2147483646'], /--server-pid: no process 2147483646/],
    [['--frobnicate'], /unknown option --frobnicate/],
  ];
  for (const [args, message] of bad) {
    it(`bad argument ${args.join(' ')} → exit 100 naming it`, async () => {
      const r = await run(['bench', '127.0.0.1', String(floorPort), ...args]);
      assert.equal(r.code, 100, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stdout.length, 0);
    });
  }

  it('PORT 0 and a bad PORT are usage errors naming PORT', async () => {
    for (const port of ['0', '70000']) {
      const r = await run(['bench', '127.0.0.1', port]);
      assert.equal(r.code, 100);
      assert.match(r.stderr, /PORT: must be an integer from/);
    }
  });
});

describe('npm run bench (bench/run.js): the options of the suite itself', () => {
  /** Run bench/run.js with `args` (stdout and stderr kept, exit code). */
  const suite = (args: string[], timeoutMs = 120_000) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [path.join(ROOT, 'bench', 'run.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (c: string) => (stderr += c));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr });
      });
    });

  for (const [args, message] of [
    [['--only', 'everything'], /--only: unknown part "everything" \(parts: cpu-per-conn, designs, exec, bulk, capacity, growth, launcher, unix, tls\)/],
    [['--rounds', '0'], /--rounds: must be an integer from 1 to 20, got "0"/],
  ] as const) {
    it(`${args.join(' ')} → exit 100 naming it, before starting anything`, async () => {
      const r = await suite([...args]);
      assert.equal(r.code, 100, r.stderr);
      assert.match(r.stderr, message);
    });
  }

  it('--only cpu-per-conn --rows event: the C client compiled and run, plain Node and event side by side, the goal judged', { timeout: 180_000 }, async (t) => {
    const hasCc = await new Promise<boolean>((resolve) => spawn('cc', ['--version'], { stdio: 'ignore' }).once('exit', (c) => resolve(c === 0)).once('error', () => resolve(false)));
    if (!hasCc) return t.skip('no C compiler (cc)');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-bench-run-'));
    try {
      const out = path.join(dir, 'b.md');
      const r = await suite(['--quick', '--no-install', '--only', 'cpu-per-conn', '--rows', 'event', '--rounds', '1', '--out', out]);
      assert.equal(r.code, 0, r.stderr);
      const doc = fs.readFileSync(out, 'utf8');
      assert.match(doc, /^\| plain Node net \| [\d.]+ \| 1\.00x \| [\d,]+ \| 1\.00x \|/m);
      assert.match(doc, /^\| event \| [\d.]+ \| [\d.]+x \| [\d,]+ \| [\d.]+x \| CPU ≤ 1\.1x \| (met|\*\*missed\*\*) \| 0 \|$/m);
      assert.doesNotMatch(doc, /^\| iterative /m, '--rows keeps only the rows named (and the base)');
      assert.match(doc, /^\| event: CPU per connection ≤ 1\.1x plain Node's \| [\d.]+x CPU\/conn/m);
      const saved = JSON.parse(fs.readFileSync(path.join(dir, 'benchmarks', 'results.json'), 'utf8'));
      assert.deepEqual(saved.cpuPerConn.rows.map((row: { label: string }) => row.label), ['plain Node net', 'event']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
