// tcpkit status and the admin endpoint: /status, /metrics (counters move as
// connections happen), /events, discovery by pid, usage errors, any pid.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createServer } from '../../dist/server.js';
import { startAdmin } from '../../dist/status/admin.js';
import { childrenOf, connectTo, echoOnce, eventually, readBytes, run, startServer, waitClose, portOf, type StartedServer, BIN } from '../helpers.js';
import { type ServerEvent, type ServerStats, type StatusSnapshot, type Endpoint } from '../../dist/index.js';

const hasSs = ['/usr/bin/ss', '/bin/ss', '/usr/sbin/ss', '/sbin/ss'].some((p) => fs.existsSync(p));
if (!hasSs) console.log('# ss (iproute2) not installed: byte counts are checked as absent, with their note');
const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-state-'));
const env = { TCPKIT_STATE_DIR: stateDir };
let server: StartedServer;
let adminUrl: string;
before(async () => {
  server = await startServer(['--admin', '127.0.0.1:0'], { env });
  adminUrl = (await server.waitFor(/admin (http:\/\/\S+)\/ pid (\d+)/))[1] ?? '';
});
after(async () => {
  if (server) await server.stop('SIGTERM');
  fs.rmSync(stateDir, { recursive: true, force: true });
});

const get = async (p: string, init?: RequestInit) => {
  const res = await fetch(`${adminUrl}${p}`, init);
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
};
/** The value of one series in Prometheus text, or undefined. */
function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('/metrics: counters move as connections come and go', async () => {
  const m0 = (await get('/metrics')).body;
  assert.equal(metric(m0, 'tcpkit_connections_accepted_total'), 0);
  assert.equal(metric(m0, 'tcpkit_connections_active'), 0);
  assert.equal(metric(m0, 'tcpkit_children_spawned_total{model="fork"}'), 0);
  assert.equal(metric(m0, 'tcpkit_server_info{model="fork",service="echo",state="running"}'), 1);

  for (const msg of ['one\n', 'two\n']) assert.equal((await echoOnce(server.port, msg)).toString(), msg);
  const held = await connectTo(server.port);
  held.write('x');
  await readBytes(held, 1);
  const m1 = await eventually(async () => {
    const t = (await get('/metrics')).body;
    return metric(t, 'tcpkit_connections_ended_total') === 2 ? t : undefined;
  }, { message: 'two connections ended' });
  assert.equal(metric(m1, 'tcpkit_connections_accepted_total'), 3);
  assert.equal(metric(m1, 'tcpkit_connections_active'), 1);
  assert.equal(metric(m1, 'tcpkit_children_spawned_total{model="fork"}'), 3);
  assert.equal(metric(m1, 'tcpkit_children_reaped_total{role="child"}'), 2);
  assert.equal(metric(m1, 'tcpkit_children_crashed_total{model="fork"}'), 0);
  assert.equal(metric(m1, 'tcpkit_connection_duration_seconds_count'), 2);
  assert.equal(metric(m1, 'tcpkit_model_processes{model="fork",role="child",state="serving"}'), 1);

  // /status while one connection is open: the child, its connection id, its socket.
  const s: StatusSnapshot = JSON.parse((await get('/status')).body);
  assert.equal(s.server?.model, 'fork');
  assert.equal(s.server?.active, 1);
  const child = s.processes.find((p) => p.role === 'child')!;
  assert.equal(child.ppid, server.pid);
  assert.deepEqual(child.connections.map((c) => [c.id, c.remote, c.state]), [[3, `127.0.0.1:${held.localPort}`, 'ESTABLISHED']]);
  assert.equal(s.sockets.find((k) => k.connection === 3)?.pids[0], child.pid);
  // Bytes each way, as the kernel counts them (tcp_info through ss, from iproute2).
  if (hasSs) assert.deepEqual([child.bytesIn, child.bytesOut], [1, 1]);
  else assert.match(s.notes.join('\n'), /bytes per connection need ss/);

  // The CLI finds the endpoint from the pid's state file and shows the same, as text.
  const text = (await run(['status', '--pid', String(server.pid)], { env })).stdout.toString();
  assert.match(text, new RegExp(`^tcpkit server pid ${server.pid} .* accepted 3  active 1/40  ended 2`, 'm'));
  assert.match(text, new RegExp(`^${child.pid} +${server.pid} +S +\\S+ +child\\(serving\\) .*#3 127\\.0\\.0\\.1:${held.localPort} ESTABLISHED`, 'm'));
  assert.match(text, new RegExp(`127\\.0\\.0\\.1:${server.port} +127\\.0\\.0\\.1:${held.localPort} +ESTABLISHED +${child.pid} +#3$`, 'm'));

  held.end();
  assert.equal(await waitClose(held), 'end');
  held.destroy();
  await eventually(async () => metric((await get('/metrics')).body, 'tcpkit_connections_active') === 0);
  await eventually(() => childrenOf(server.pid).length === 0, { message: 'children reaped' });
});

test('/events streams snapshots and log lines; other paths and methods are refused', async () => {
  const chunks = await new Promise<string>((resolve, reject) => {
    const req = http.get(`${adminUrl}/events`, (res) => {
      assert.equal(res.headers['content-type'], 'text/event-stream');
      let text = '';
      let sent = false;
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
        if (!sent && text.includes('event: snapshot')) {
          // Connect once the stream is live: its accept must come through as a log line.
          sent = true;
          echoOnce(server.port, 'hi').catch(reject);
        }
        if (/"line":"accept /.test(text) && /event: snapshot[\s\S]*"line":"accept [\s\S]*event: snapshot/.test(text)) {
          req.destroy();
          resolve(text);
        }
      });
    });
    req.on('error', reject);
  });
  const log: { line: string; event: ServerEvent } = JSON.parse(/event: log\ndata: (\{"time":\d+,"line":"accept .*)\n/.exec(chunks)?.[1] ?? '');
  assert.match(log.line, /^accept 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ IPv4 pid \d+ count 1\/40 id \d+$/);
  assert.equal(log.event.type, 'accept');
  const snap: StatusSnapshot = JSON.parse(/event: snapshot\ndata: (.*)\n/.exec(chunks)?.[1] ?? '');
  assert.equal(snap.server?.pid, server.pid);

  assert.equal((await get('/nope')).status, 404);
  assert.equal((await get('/status', { method: 'POST' })).status, 405);
  const page = await get('/');
  assert.equal(page.status, 200);
  assert.match(page.type ?? '', /^text\/html/);
  assert.doesNotMatch(page.body, /<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3\.org\/2000\/svg)/, 'nothing loaded from elsewhere');
  // A request naming another host (DNS rebinding) is refused.
  const port = new URL(adminUrl).port;
  const status = await new Promise<number | undefined>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/status', headers: { host: `evil.example:${port}` } }, (res) => {
      res.resume();
      resolve(res.statusCode);
    }).on('error', reject);
  });
  assert.equal(status, 403);
  const withThreads: StatusSnapshot = JSON.parse((await get('/status?threads')).body);
  assert.ok((withThreads.processes[0]?.tasks?.length ?? 0) > 1, '?threads lists kernel threads');
});

test('status --json and --watch; usage and lookup errors', async () => {
  const j = JSON.parse((await run(['status', '--port', String(server.port), '--json'], { env })).stdout.toString());
  assert.equal(j.server.pid, server.pid);
  assert.equal(j.processes[0].role, 'parent');
  assert.equal(j.processes[0].stat, 'S', 'read by the CLI, the parent is asleep, not answering');

  const w = await run(['status', '--port', String(server.port), '--watch', '0.2', '--count', '2'], { env });
  assert.equal(w.code, 0);
  assert.equal(w.stdout.toString().match(/^Active Internet connections/gm)?.length, 2);

  const cases: [args: string[], code: number, re: RegExp][] = [
    [['status', '--pid', '1', '--port', '2'], 100, /give --pid or --port, not both/],
    [['status', '--watch', '0.01'], 100, /--watch: must be a number of seconds from 0.2 to 3600/],
    [['status', '--count', '2'], 100, /--count needs --watch/],
    [['status', '--bogus'], 100, /unknown option --bogus/],
    [['status', '--port', '70000'], 100, /--port: must be an integer from 1 to 65535/],
    [['status', '--pid', String(2 ** 22)], 111, /no process 4194304/],
    [['status', '--admin', '127.0.0.1:1'], 111, /admin endpoint http:\/\/127\.0\.0\.1:1 did not answer/],
    [['serve', '--admin', '192.0.2.1:0'], 100, /192\.0\.2\.1 is not a loopback address.*--admin-public/],
    [['serve', '--admin-public'], 100, /--admin-public needs --admin/],
    [['serve', '--admin', 'nonsense'], 100, /--admin: expected HOST:PORT/],
  ];
  for (const [args, code, re] of cases) {
    const r = await run(args, { env });
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});

test('any pid: a plain Node server seen from /proc alone', async () => {
  const plain = spawn(process.execPath, ['-e', `
    const s = require('net').createServer((c) => c.pipe(c)).listen(0, '127.0.0.1', () => console.log(s.address().port));`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const port = Number(await new Promise((r) => plain.stdout.once('data', (d) => r(String(d)))));
    const c = await connectTo(port);
    const r = await run(['status', '--pid', String(plain.pid), '--json'], { env });
    const s: StatusSnapshot = JSON.parse(r.stdout.toString());
    assert.equal(s.server, undefined);
    assert.deepEqual(s.ports, [port]);
    assert.deepEqual(s.processes.map((p) => [p.pid, p.role]), [[plain.pid, 'parent']]);
    assert.deepEqual(s.processes[0]?.connections.map((x) => x.remote), [`127.0.0.1:${c.localPort}`]);
    assert.match(s.notes.join('\n'), /need the server's admin endpoint/);
    c.destroy();
  } finally {
    plain.kill('SIGKILL');
  }
});

test('startAdmin: library use, loopback only unless allowed, state file removed on close', async () => {
  const srv = createServer({ host: '127.0.0.1', port: 0 });
  await srv.listen();
  try {
    await assert.rejects(startAdmin(srv, { host: '0.0.0.0', stateFile: false }), {
      code: 'TCPKIT_INVALID_OPTION',
      message: /admin: 0\.0\.0\.0 is not a loopback address/,
    });
    await assert.rejects(startAdmin(srv, { port: server.port, stateFile: false }), { code: 'EADDRINUSE' });
    const admin = await startAdmin(srv);
    const file = path.join(process.env.XDG_RUNTIME_DIR ? path.join(process.env.XDG_RUNTIME_DIR, 'tcpkit') : path.join(os.tmpdir(), `tcpkit-${process.getuid?.()}`), `${process.pid}.json`);
    assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).admin, admin.url);
    const metrics = await (await fetch(`${admin.url}/metrics`)).text();
    assert.match(metrics, /^tcpkit_connections_accepted_total 0$/m);
    await admin.close();
    await admin.close();
    assert.equal(fs.existsSync(file), false);
  } finally {
    await srv.close();
  }
});

test('the state file goes when the server stops', async () => {
  const s = await startServer(['--admin', '127.0.0.1:0'], { env });
  await s.waitFor(/admin http/);
  const file = path.join(stateDir, `${s.pid}.json`);
  assert.ok(fs.existsSync(file));
  assert.equal((await s.stop('SIGTERM')).code, 0);
  assert.equal(fs.existsSync(file), false);
});

test('models show up through stats(): worker threads and their connections', async () => {
  // A threads-model server's stats() as the contract (src/models/types.ts) describes it; the socket is real.
  const { collectStatus } = await import('../../dist/status/snapshot.js');
  const net = await import('node:net');
  const listener = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => listener.once('listening', r));
  const port = portOf(listener);
  const c = await connectTo(port);
  const now = Date.now();
  const local: Endpoint = { address: '127.0.0.1', port, family: 'IPv4' };
  const remote: Endpoint = { address: '127.0.0.1', port: c.localPort ?? 0, family: 'IPv4' };
  const stats: ServerStats = {
    state: 'running', pid: process.pid, local, listener: 'accepting', model: 'threads', service: 'echo', maxConns: 40,
    accepted: 1, active: 1, ended: 0, startedAt: now, denied: 0,
    limits: { refused: { 'per-source': 0, rate: 0 }, closed: { idle: 0, 'time-limit': 0 }, sources: 1 },
    connections: [{ id: 7, local, remote, acceptedAt: now, pid: process.pid }],
    models: {
      model: 'threads', spawned: 2, crashed: 0,
      processes: [
        { pid: process.pid, threadId: 1, role: 'thread', state: 'serving', connections: [7], served: 3, startedAt: now },
        { pid: process.pid, threadId: 2, role: 'thread', state: 'idle', connections: [], served: 4, startedAt: now },
      ],
    },
  };
  try {
    const s = collectStatus({ server: stats });
    assert.deepEqual(s.ports, [port]);
    const rows = s.processes.map((p) => [p.tid, p.role, p.state ?? null, p.connections.map((x) => [x.id, x.state])]);
    assert.deepEqual(rows[0].slice(0, 2), [0, 'parent']);
    // (This test's own children, the servers it started, follow the parent as children.)
    assert.deepEqual(rows.filter((r) => r[1] === 'thread'), [
      [1, 'thread', 'serving', [[7, 'ESTABLISHED']]],
      [2, 'thread', 'idle', []],
    ]);
    assert.equal(s.sockets.find((k) => k.connection === 7)?.remote.port, c.localPort);
  } finally {
    c.destroy();
    listener.close();
  }
});

test('elsewhere than Linux: says what cannot be shown, and still shows what an admin endpoint reports', async () => {
  // The CLI with process.platform made to read "freebsd": /proc is not consulted.
  const fake = `data:text/javascript,Object.defineProperty(process, 'platform', { value: 'freebsd' })`;
  const runAs = (args: string[]) =>
    new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const p = spawn(process.execPath, ['--import', fake, BIN, ...args], {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      p.stdout.on('data', (c: Buffer) => (out += c));
      p.once('error', reject);
      p.once('exit', (code) => resolve({ code, out }));
    });
  const bare = await runAs(['status', '--port', String(server.port)]);
  assert.equal(bare.code, 0);
  assert.match(bare.out, /^\(no sockets\)$/m);
  assert.match(bare.out, /^note: sockets and processes come from Linux's \/proc, which freebsd does not have; only what a server's admin endpoint reports can be shown$/m);
  const viaAdmin = await runAs(['status', '--admin', adminUrl]);
  assert.equal(viaAdmin.code, 0);
  assert.match(viaAdmin.out, new RegExp(`^tcpkit server pid ${server.pid} `, 'm'));
  assert.match(viaAdmin.out, new RegExp(`LISTEN +${server.pid}`));
});
