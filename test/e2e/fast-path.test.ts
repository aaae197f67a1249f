// The super-server's fast path (issue 23): under every model that runs programs (fork, event, prefork worker processes,
// worker threads) a program service's connections are accepted natively (native/accept.c: no net.Socket, the peer's
// address from accept4) and their programs start on the launcher's own thread (native/launch.c spawn). What must hold
// there, beside everything test/e2e/exec.test.ts checks:
// - nothing piles up: 20,000 `--exec /bin/true` connections leave the server's descriptors and threads as they were;
// - stderr lines of 200 programs running at once are each attributed to the right pid and connection id;
// - `--max-conns 3` is never exceeded while 50 clients wait (a program still starting counts against the limit).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fs from 'node:fs';
import { childrenOf, eventually, fdsOf, sleep, startServer } from '../helpers.js';

/** Threads of a process (/proc/PID/task). */
const tasksOf = (pid: number): number => fs.readdirSync(`/proc/${pid}/task`).length;

/** Connect, send `data` (if any) and end, resolve with what came back once the server closed. */
function roundTrip(port: number, data = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(chunks).toString()));
    s.end(data);
  });
}

test('20,000 --exec /bin/true connections: descriptors and threads back where they started', { timeout: 900_000 }, async () => {
  const server = await startServer(['-q', '--max-conns', '64', '--exec', '--', '/bin/true']);
  try {
    const fds0 = fdsOf(server.pid).length;
    const tasks0 = tasksOf(server.pid);
    const TOTAL = 20_000;
    const PARALLEL = 16;
    let next = 0;
    const deadline = Date.now() + 800_000;
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (next < TOTAL && Date.now() < deadline) {
          next++;
          await roundTrip(server.port);
        }
      }),
    );
    assert.equal(next, TOTAL, `all ${TOTAL} connections made in time`);
    // The launcher's thread and its descriptors end a second after the last child; every pipe and pidfd is released.
    await eventually(() => fdsOf(server.pid).length === fds0 && tasksOf(server.pid) === tasks0, {
      timeoutMs: 30_000,
      message: `descriptors ${fdsOf(server.pid).length} (were ${fds0}), threads ${tasksOf(server.pid)} (were ${tasks0})`,
    });
    assert.deepEqual(childrenOf(server.pid), [], 'every program reaped');
    assert.equal(server.proc.exitCode, null, 'server alive');
  } finally {
    await server.stop();
  }
});

/**
 * The models whose program services take the native path. `programPid`: `accept ... pid P` names the program (the
 * server starts it and tracks it: fork, event), else the process or thread that accepted (a pool's worker).
 * `grandchildren`: the programs are its workers' children (prefork), else the server's own.
 */
const MODELS: Array<{ name: string; args: string[]; programPid: boolean; grandchildren: boolean }> = [
  { name: 'fork', args: [], programPid: true, grandchildren: false },
  { name: 'event', args: ['--model', 'event'], programPid: true, grandchildren: false },
  { name: 'prefork x2', args: ['--model', 'prefork', '--workers', '2'], programPid: false, grandchildren: true },
  { name: 'threads x2', args: ['--model', 'threads', '--workers', '2'], programPid: false, grandchildren: false },
];

/** The programs a server runs now: its children (fork, event, threads), its workers' children under prefork. */
const programsOf = (pid: number, grandchildren: boolean): number =>
  grandchildren ? childrenOf(pid).reduce((n, w) => n + childrenOf(w.pid).length, 0) : childrenOf(pid).length;

for (const model of MODELS) {
test(`${model.name}: stderr of 200 programs at once: each line with its own pid and connection id`, { timeout: 300_000 }, async () => {
  // Each program says on stderr which pid it is and what its client sent, then waits for the client to leave.
  const script = 'read line; echo "from $$ got $line" >&2; cat >/dev/null';
  const server = await startServer([...model.args, '--max-conns', '400', '--exec', '--', '/bin/sh', '-c', script]);
  const N = 200;
  const sockets: net.Socket[] = [];
  try {
    await Promise.all(
      Array.from({ length: N }, (_, i) => new Promise<void>((resolve, reject) => {
        const s = net.connect(server.port, '127.0.0.1', () => resolve());
        s.on('error', reject);
        s.write(`client-${i}\n`);
        sockets.push(s);
      })),
    );
    await eventually(() => (server.log().match(/^stderr pid /gm) ?? []).length >= N, { timeoutMs: 120_000, message: `${N} stderr lines\n${server.log().slice(-3000)}` });
    for (const s of sockets) s.end();
    await eventually(() => (server.log().match(/^end pid /gm) ?? []).length >= N, { timeoutMs: 120_000, message: `${N} ends` });
    const log = server.log();
    const idOfPid = new Map<string, string>();
    const clients = new Set<string>();
    if (model.programPid) {
      // fork, event: `accept ... pid P` is the program's own pid.
      const idOfPid = new Map<string, string>();
      for (const m of log.matchAll(/^accept \S+ -> \S+ \S+ pid (\d+) count \S+ id (\d+)$/gm)) idOfPid.set(m[1]!, m[2]!);
      for (const m of log.matchAll(/^stderr pid (\d+) id (\d+) text from\\x20(\d+)\\x20got\\x20(client-\d+)$/gm)) {
        assert.equal(m[1], m[3], `the line's pid is the program's own: ${m[0]}`);
        assert.equal(m[2], idOfPid.get(m[1]!), `the line's id is its connection's: ${m[0]}`);
        clients.add(m[4]!);
      }
      // Order: a program's stderr line comes before its connection's end.
      for (const [pid] of idOfPid) {
        const line = log.indexOf(`stderr pid ${pid} `);
        const end = log.indexOf(`end pid ${pid} `);
        assert.ok(line >= 0 && end > line, `pid ${pid}: stderr before end`);
      }
    } else {
      // prefork, threads: `accept ... pid W` is the worker's; the line names the program's pid and the connection's id.
      const ids = new Set([...log.matchAll(/^accept \S+ -> \S+ \S+ pid \d+ count \S+ id (\d+)$/gm)].map((m) => m[1]!));
      for (const m of log.matchAll(/^stderr pid (\d+) id (\d+) text from\\x20(\d+)\\x20got\\x20(client-\d+)$/gm)) {
        assert.equal(m[1], m[3], `the line's pid is the program's own: ${m[0]}`);
        assert.ok(ids.has(m[2]!), `the line's id is an accepted connection's: ${m[0]}`);
        // Order: the line comes before its connection's end.
        const end = log.search(new RegExp(`^end pid \\d+ .* id ${m[2]} `, 'm'));
        assert.ok(end > log.indexOf(m[0]), `id ${m[2]}: stderr before end`);
        clients.add(m[4]!);
      }
    }
    assert.equal(clients.size, N, 'every client seen once, attributed');
  } finally {
    for (const s of sockets) s.destroy();
    await server.stop();
  }
});

test(`${model.name}: --max-conns 3 is never exceeded while 50 clients wait; all are served`, { timeout: 300_000 }, async () => {
  const server = await startServer([...model.args, '--max-conns', '3', '--exec', '--', '/bin/sh', '-c', 'sleep 0.2; echo served']);
  let most = 0;
  const poll = setInterval(() => {
    most = Math.max(most, programsOf(server.pid, model.grandchildren));
  }, 20);
  try {
    const replies = await Promise.all(Array.from({ length: 50 }, () => roundTrip(server.port)));
    assert.deepEqual(replies, Array(50).fill('served\n'), 'every client served');
    const counts = [...server.log().matchAll(/^accept .* count (\d+)\/3 /gm)].map((m) => Number(m[1]));
    assert.equal(counts.length, 50);
    assert.ok(Math.max(...counts) <= 3, `accept counts ${counts.join(',')}`);
    assert.ok(most <= 3, `at most 3 programs at once, saw ${most}`);
    // The server accepts (fork, event): its acceptor pauses at the limit (a pool's workers keep to their shares).
    if (model.programPid) assert.match(server.log(), /^pause count 3\/3$/m);
  } finally {
    clearInterval(poll);
    await sleep(10);
    await server.stop();
  }
});
}

test('--exec-stderr inherit: the program writes on the server\'s own stderr, untouched, as under tcpserver', { timeout: 60_000 }, async () => {
  const server = await startServer(['--exec-stderr', 'inherit', '--exec', '--', '/bin/sh', '-c', 'printf "raw \\033 text\\n" >&2; echo done']);
  try {
    assert.equal(await roundTrip(server.port), 'done\n');
    await server.waitFor(/^end pid /m);
    assert.match(server.log(), /^raw \x1b text$/m, 'the bytes as written');
    assert.doesNotMatch(server.log(), /^stderr pid /m);
  } finally {
    await server.stop();
  }
});

test('--exec-stderr is refused without --exec, and with a word it does not know', async () => {
  const { run } = await import('../helpers.js');
  const without = await run(['serve', '--port', '0', '--exec-stderr', 'inherit']);
  assert.equal(without.code, 100);
  assert.match(without.stderr, /--exec-stderr applies to --exec/);
  const bad = await run(['serve', '--port', '0', '--exec-stderr', 'loud', '--exec', '--', '/bin/true']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /exec-stderr/);
});

/** `n` round trips, one after another. */
async function roundTrips(port: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await roundTrip(port);
}

/**
 * accept4, getpeername and getsockname calls of `pids` (and their threads) while `during` runs, by strace; a
 * string when strace cannot attach here (no ptrace: a container without CAP_SYS_PTRACE, yama): nothing to observe.
 */
async function traceAccepts(pids: number[], during: () => Promise<void>): Promise<{ accepts: number; getpeername: number; getsockname: number } | string> {
  const { spawn } = await import('node:child_process');
  const trace = `/tmp/tcpkit-fast-path-${process.pid}-${pids[0]}.strace`;
  const tracer = spawn('strace', ['-f', '-e', 'trace=getpeername,getsockname,accept4', '-o', trace, ...pids.flatMap((p) => ['-p', String(p)])], { stdio: ['ignore', 'ignore', 'pipe'] });
  let why = '';
  tracer.stderr.on('data', (c: Buffer) => (why += c.toString()));
  await sleep(1500); // attached
  if (tracer.exitCode !== null) return `strace cannot attach: ${why.trim()}`;
  await during();
  tracer.kill('SIGINT');
  await new Promise((r) => tracer.once('exit', r));
  const text = fs.readFileSync(trace, 'utf8');
  fs.rmSync(trace, { force: true });
  // With -f a call another thread interrupts is split: `accept4(... <unfinished ...>`, then `<... accept4 resumed> ...) = N`.
  const accepts = text.split('\n').filter((l) => /(accept4\(|accept4 resumed>).*= \d+$/.test(l)).length;
  return { accepts, getpeername: (text.match(/getpeername\(/g) ?? []).length, getsockname: (text.match(/getsockname\(/g) ?? []).length };
}

/** Where each model accepts: the server process (fork, event, and threads, every thread of it), or each worker process. */
for (const model of MODELS) {
  test(`${model.name} --exec takes the native path: the peer comes with accept4, no getpeername per connection (strace; fails on the net.Socket path)`, { timeout: 120_000 }, async (t) => {
    const { spawnSync } = await import('node:child_process');
    if (spawnSync('strace', ['-V']).status !== 0) return t.skip('strace is not installed');
    const server = await startServer(['-q', ...model.args, '--exec', '--', '/bin/true']);
    try {
      for (let i = 0; i < 4; i++) await roundTrip(server.port); // the launcher threads started
      const accepting = model.grandchildren ? childrenOf(server.pid).map((w) => w.pid) : [server.pid];
      if (model.grandchildren) assert.equal(accepting.length, 2, 'two worker processes');
      // strace -f -p PID attaches to every thread of PID: the worker threads too.
      const traced = await traceAccepts(accepting, () => roundTrips(server.port, 20));
      if (typeof traced === 'string') return t.skip(traced);
      t.diagnostic(`accept4 returning a descriptor: ${traced.accepts}; getpeername: ${traced.getpeername}`);
      assert.ok(traced.accepts >= 20, `20 connections accepted with accept4 (saw ${traced.accepts})`);
      assert.equal(traced.getpeername, 0, 'the peer came with the accept');
    } finally {
      await server.stop();
    }
  });
}

for (const model of MODELS.filter((m) => m.args.includes('--workers'))) {
  test(`${model.name} --max-conns-per-worker 3 --exec: 60 clients at once, every one served while workers are recycled (none dropped from a native batch)`, { timeout: 300_000 }, async () => {
    const server = await startServer([...model.args, '--max-conns-per-worker', '3', '--exec', '--', '/bin/sh', '-c', 'echo served']);
    try {
      const replies = await Promise.all(Array.from({ length: 60 }, () => roundTrip(server.port)));
      assert.deepEqual(replies, Array(60).fill('served\n'), 'every client served');
      await eventually(() => (server.log().match(/^end pid /gm) ?? []).length >= 60, { timeoutMs: 60_000, message: '60 ends' });
      assert.ok((server.log().match(/^spawn pid \d+ role (worker|thread)\d*$/gm) ?? []).length > 2, 'workers were recycled');
      assert.deepEqual(await server.stop(), { code: 0, signal: null });
    } finally {
      await server.stop();
    }
  });
}

// The event model tracks its programs as fork does (src/models/children.ts): the limits reach the program itself. The
// old in-process exec closed its copy of the socket at once, which cleared both limits: the program ran on.
test('event --exec: --time-limit and --idle-timeout end the program (SIGTERM from the server, as under fork)', { timeout: 120_000 }, async () => {
  for (const [flag, reason] of [['--time-limit', 'time-limit'], ['--idle-timeout', 'idle']] as const) {
    const server = await startServer(['--model', 'event', flag, '1', '--exec', '--', '/bin/sh', '-c', 'echo up; exec sleep 60']);
    const s = net.connect(server.port, '127.0.0.1');
    try {
      s.on('error', () => {});
      await new Promise((resolve) => s.once('data', resolve));
      const pid = Number((await server.waitFor(/^accept .* pid (\d+) count /m))[1]);
      await server.waitFor(new RegExp(`^kill pid ${pid} signal SIGTERM reason ${reason}$`, 'm'), { timeoutMs: 30_000 });
      await server.waitFor(new RegExp(`^end pid ${pid} signal SIGTERM `, 'm'), { timeoutMs: 30_000 });
      await new Promise((resolve) => (s.destroyed ? resolve(undefined) : s.once('close', resolve)));
    } finally {
      s.destroy();
      await server.stop();
    }
  }
});

// A second SIGTERM terminates the worker threads at once, each with its accept watch still open (no JavaScript runs
// then to close it): the watch must close with its thread. Before, the process aborted (SIGABRT: libuv's loop closed
// with the watch's poll handle open).
test('threads x2 --exec: a second SIGTERM ends the threads at once, their accept watches with them; the server exits cleanly', { timeout: 120_000 }, async () => {
  const server = await startServer(['--model', 'threads', '--workers', '2', '--exec', '--', '/bin/sh', '-c', 'echo started; exec sleep 30']);
  const held: net.Socket[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const s = net.connect(server.port, '127.0.0.1');
      s.on('error', () => {});
      held.push(s);
      await new Promise((resolve) => s.once('data', resolve));
    }
    server.proc.kill('SIGTERM');
    await server.waitFor(/^shutdown /m);
    server.proc.kill('SIGTERM');
    const exit = await server.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, server.log().slice(-2000));
  } finally {
    for (const s of held) s.destroy();
    await server.stop();
  }
});

for (const model of [{ name: 'fork', args: [] as string[] }, { name: 'prefork x2', args: ['--model', 'prefork', '--workers', '2'] }]) {
  test(`${model.name} --proxy-protocol --exec stays on the native path: the header read off the bare descriptor, the program gets the named peer and every byte after it (strace; fails on the net.Socket path)`, { timeout: 120_000 }, async (t) => {
    const server = await startServer(['--proxy-protocol', ...model.args, '--exec', '--', '/bin/sh', '-c', 'echo "$TCPREMOTEIP $TCPREMOTEPORT $TCPLOCALIP $TCPLOCALPORT"; exec cat']);
    try {
      const header = 'PROXY TCP4 198.51.100.7 192.0.2.1 5555 443\r\n';
      const body = 'hello\n'.repeat(1000);
      assert.equal(await roundTrip(server.port, header + body), `198.51.100.7 5555 192.0.2.1 443\n${body}`);
      await server.waitFor(/^accept 198\.51\.100\.7:5555 -> 192\.0\.2\.1:443 IPv4 pid \d+ .* id \d+ via 127\.0\.0\.1:\d+$/m);
      // A bad header: refused with its reason, nothing started, and the server goes on.
      // Closed unanswered, the request unread: a reset (or an end, had the request come after the close).
      const refused = await roundTrip(server.port, 'GET / HTTP/1.0\r\n\r\n').catch((err: NodeJS.ErrnoException) => err.code);
      assert.ok(refused === '' || refused === 'ECONNRESET', `closed unanswered (got ${JSON.stringify(refused)})`);
      await server.waitFor(/^refuse 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ .*reason proxy-(missing|malformed)/m);
      assert.equal(await roundTrip(server.port, header), '198.51.100.7 5555 192.0.2.1 443\n');
      const { spawnSync } = await import('node:child_process');
      if (spawnSync('strace', ['-V']).status !== 0) return t.skip('strace is not installed');
      const pids = model.args.length === 0 ? [server.pid] : childrenOf(server.pid).map((w) => w.pid);
      const traced = await traceAccepts(pids, async () => {
        for (let i = 0; i < 20; i++) await roundTrip(server.port, header);
      });
      if (typeof traced === 'string') return t.skip(traced);
      t.diagnostic(`accept4 returning a descriptor: ${traced.accepts}; getpeername: ${traced.getpeername}`);
      assert.ok(traced.accepts >= 20, `20 connections accepted with accept4 (saw ${traced.accepts})`);
      assert.equal(traced.getpeername, 0, 'the real peer came with the accept');
    } finally {
      await server.stop();
    }
  });
}

test('--unix PATH --exec takes the native path: the peer\'s credentials come with the batch, no getsockname per connection (strace; fails on the net.Socket path, whose identify reads the path per connection)', { timeout: 120_000 }, async (t) => {
  const os = await import('node:os');
  const path = await import('node:path');
  const { spawnSync } = await import('node:child_process');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-fast-unix-'));
  const where = path.join(dir, 's.sock');
  const { spawnServer } = await import('../helpers.js');
  const server = await spawnServer(['serve', '--unix', where, '--print-port', '--exec', '--', '/bin/sh', '-c', 'echo "$PROTO $UNIXLOCALPATH $UNIXREMOTEEUID $UNIXREMOTEPID"'], (out) => /^unix:(.+)\n/.exec(out)?.[1], { what: 'unix:PATH' });
  const exchange = () =>
    new Promise<string>((resolve, reject) => {
      const c = net.connect({ path: where });
      let out = '';
      c.on('data', (b: Buffer) => (out += b.toString()));
      c.on('close', () => resolve(out));
      c.on('error', reject);
      c.end();
    });
  try {
    assert.equal(await exchange(), `UNIX ${where} ${process.getuid!()} ${process.pid}\n`, 'the variables from the batch\'s SO_PEERCRED');
    await server.waitFor(new RegExp(`^accept uid=${process.getuid!()},gid=${process.getgid!()},pid=${process.pid} -> unix:${where.replace(/[.]/g, '\\.')} unix pid \\d+ `, 'm'));
    if (spawnSync('strace', ['-V']).status !== 0) return t.skip('strace is not installed');
    const traced = await traceAccepts([server.pid], async () => {
      for (let i = 0; i < 20; i++) await exchange();
    });
    if (typeof traced === 'string') return t.skip(traced);
    t.diagnostic(`accept4 returning a descriptor: ${traced.accepts}; getsockname: ${traced.getsockname}`);
    assert.ok(traced.accepts >= 20, `20 connections accepted with accept4 (saw ${traced.accepts})`);
    assert.equal(traced.getsockname, 0, 'the local path is the listener\'s, read once');
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
