// Every concurrency model behind one interface: echo exactness, concurrency
// semantics, --max-conns, crash isolation, supervision of pools, and no process,
// thread or descriptor left behind; plus the bench service.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { ROOT, childrenOf, connectTo, echoOnce, eventually, exchange, fdsOf, random, readBytes, run, sha256, sleep, socketInodes, startServer, waitClose, type StartedServer, testChildren } from '../helpers.js';
import { createServer, type ModelName, type ServerOptions } from '../../dist/index.js';

const CRASHY = path.join(ROOT, 'test', 'fixtures', 'crashy-handler.js');

/** Each model configuration under test, and what it promises. */
const CONFIGS = [
  { label: 'iterative', args: ['--model', 'iterative'], serial: true, isolates: false, handsOff: false },
  { label: 'event', args: ['--model', 'event'], serial: false, isolates: false, handsOff: false },
  { label: 'fork', args: ['--model', 'fork'], serial: false, isolates: true, handsOff: true },
  { label: 'fork --spare 2', args: ['--model', 'fork', '--spare', '2'], serial: false, isolates: true, handsOff: true },
  { label: 'prefork shared', args: ['--model', 'prefork', '--workers', '2'], serial: false, isolates: false, handsOff: true },
  { label: 'prefork pass', args: ['--model', 'prefork', '--workers', '2', '--accept', 'pass'], serial: false, isolates: true, handsOff: true },
  { label: 'threads', args: ['--model', 'threads', '--workers', '2'], serial: false, isolates: false, handsOff: false },
];

const started = new Set<StartedServer>();
async function serve(args: string[], opts?: { env?: NodeJS.ProcessEnv }): Promise<StartedServer> {
  const s = await startServer(args, opts);
  started.add(s);
  return s;
}
after(async () => {
  for (const s of started) await s.stop('SIGKILL', 5000);
});

/** Send `data`, expect exactly `data` back (without closing). */
async function roundTrip(socket: net.Socket, data: Buffer): Promise<void> {
  socket.write(data);
  const got = await Promise.race([
    readBytes(socket, data.length),
    sleep(15_000).then(() => {
      throw new Error(`no echo of ${data.length} bytes within 15 s`);
    }),
  ]);
  assert.equal(got.length, data.length);
  assert.ok(got.equals(data), 'echoed bytes differ');
}

/** Resolve true if `n` bytes arrive within ms, false if not (the socket stays usable). */
function arrivesWithin(socket: net.Socket, n: number, ms: number): Promise<boolean> {
  return Promise.race([readBytes(socket, n).then(() => true), sleep(ms).then(() => false)]);
}

/** The inode of the server side of the connection whose client is `socket`, from /proc/net/tcp. */
function serverSideInode(socket: net.Socket, serverPort: number): string | undefined {
  const hex = (p: number): string => p.toString(16).toUpperCase().padStart(4, '0');
  const text = fs.readFileSync('/proc/net/tcp', 'utf8');
  for (const line of text.trim().split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(`:${hex(serverPort)}`) && f[2]?.endsWith(`:${hex(socket.localPort ?? 0)}`)) return f[9];
  }
  return undefined;
}

/** Pids named in `spawn`/`accept` log lines other than the server's own. */
function pidsInLog(log: string, serverPid: number): number[] {
  const pids = new Set<number>();
  for (const m of log.matchAll(/^(?:spawn|accept) .*?pid (\d+)/gm)) pids.add(Number(m[1]));
  pids.delete(serverPid);
  return [...pids];
}

/** Largest `count N/` in accept lines. */
function maxCount(log: string): number {
  let max = 0;
  for (const m of log.matchAll(/^accept .* count (\d+)\//gm)) max = Math.max(max, Number(m[1]));
  return max;
}

for (const c of CONFIGS) {
  describe(`model ${c.label}`, () => {
    let server: StartedServer;
    before(async () => {
      server = await serve(['echo', ...c.args, '--max-conns', '2', '--grace', '2']);
    });

    it('echoes binary data exactly, under backpressure', async () => {
      const data = random(512 * 1024);
      const got = await echoOnce(server.port, data);
      assert.equal(got.length, data.length);
      assert.equal(sha256(got), sha256(data));
    });

    it(c.serial ? 'serializes two clients' : 'serves two clients at once', async () => {
      const a = await connectTo(server.port);
      await roundTrip(a, Buffer.from('first\n'));
      const b = await connectTo(server.port);
      b.write('second\n');
      const overlapped = await arrivesWithin(b, 7, c.serial ? 1500 : 10_000);
      assert.equal(overlapped, !c.serial);
      a.end();
      await waitClose(a);
      if (c.serial) {
        // a is done: b, waiting in the backlog, is served now.
        assert.ok(await arrivesWithin(b, 7, 10_000), 'second client never served');
      }
      await roundTrip(b, Buffer.from([0, 255, 10, 13]));
      b.end();
      await waitClose(b);
    });

    it('--max-conns 2 holds: a third client waits until one leaves', { skip: c.serial && 'iterative serves one at a time' }, async () => {
      const a = await connectTo(server.port);
      const b = await connectTo(server.port);
      await roundTrip(a, Buffer.from('a'));
      await roundTrip(b, Buffer.from('b'));
      const third = await connectTo(server.port);
      third.write('c');
      assert.equal(await arrivesWithin(third, 1, 1500), false, 'third connection served beyond --max-conns');
      a.end();
      await waitClose(a);
      assert.ok(await arrivesWithin(third, 1, 10_000), 'third client never served after one left');
      for (const s of [b, third]) {
        s.end();
        await waitClose(s);
      }
      assert.ok(maxCount(server.log()) <= 2, `count above 2 in log:\n${server.log()}`);
    });

    it(c.handsOff ? 'the server process keeps no copy of a connection it handed on' : 'the server process holds the connections it serves', async () => {
      const a = await connectTo(server.port);
      await roundTrip(a, Buffer.from('x'));
      const inode = serverSideInode(a, server.port);
      assert.ok(inode, 'connection not found in /proc/net/tcp');
      const held = socketInodes(server.pid).includes(inode);
      assert.equal(held, !c.handsOff);
      a.end();
      await waitClose(a);
    });

    it('drains on SIGTERM within --grace and leaves no process behind', async () => {
      const a = await connectTo(server.port);
      await roundTrip(a, Buffer.from('still here'));
      const b = c.serial ? undefined : await connectTo(server.port);
      if (b) await roundTrip(b, Buffer.from('idle'));
      const others = pidsInLog(server.log(), server.pid);
      const t0 = Date.now();
      const stopping = server.stop('SIGTERM');
      // The connection drains: it still echoes during the grace period, then ends normally.
      await sleep(200);
      await roundTrip(a, Buffer.from('during drain'));
      a.end();
      assert.equal(await waitClose(a), 'end');
      // b never ends by itself: the server closes it once --grace 2 is over.
      if (b) assert.notEqual(await waitClose(b, 15_000), undefined);
      assert.deepEqual(await stopping, { code: 0, signal: null });
      assert.ok(Date.now() - t0 < 12_000, 'server took far longer than --grace to stop');
      assert.match(server.log(), /^closed accepted \d+ served \d+$/m);
      for (const pid of others) {
        await eventually(() => !fs.existsSync(`/proc/${pid}`), { message: `pid ${pid} gone`, timeoutMs: 5000 });
      }
    });
  });
}

describe('crash isolation (--handler)', () => {
  for (const c of CONFIGS) {
    it(`${c.label}: a handler that throws ends only its own connection`, async () => {
      const server = await serve(['--handler', CRASHY, ...c.args]);
      const a = c.serial ? undefined : await connectTo(server.port);
      if (a) await roundTrip(a, Buffer.from('before'));
      const b = await connectTo(server.port);
      b.write('THROW');
      await waitClose(b);
      // In the server's log (event, threads, prefork) or the child's stderr (fork).
      await server.waitFor(/threw/);
      // Wait until the server has counted it gone, so that pass mode's least-busy choice is known.
      // Its id from its accept line: pool workers number from blocks of ids, so ids are unique, not consecutive.
      const id = (await server.waitFor(new RegExp(`^accept 127\\.0\\.0\\.1:${b.localPort} -> .* id (\\d+)$`, 'm')))[1];
      await server.waitFor(new RegExp(`^end pid \\d+ exitcode [01] count \\d+/\\d+ id ${id} `, 'm'));
      if (a) await roundTrip(a, Buffer.from('after'));
      else assert.ok((await echoOnce(server.port, Buffer.from('after'))).equals(Buffer.from('after')));

      if (c.isolates) {
        // process.exit in one connection's process: the other connection lives on.
        const e = await connectTo(server.port);
        e.write('EXIT');
        await waitClose(e);
        await server.waitFor(/ exitcode 3 /m);
        assert.ok(a, 'an isolating model keeps the first connection');
        await roundTrip(a, Buffer.from('after exit'));
      }
      if (a) {
        a.end();
        await waitClose(a);
      }
      assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
    });
  }

  it('event: process.exit in a handler ends the whole server (no isolation, as documented)', async () => {
    const server = await serve(['--handler', CRASHY, '--model', 'event']);
    const a = await connectTo(server.port);
    const b = await connectTo(server.port);
    b.write('EXIT');
    assert.deepEqual(await server.exited, { code: 3, signal: null });
    // The other connection ended with the process (it may have seen its EOF already).
    if (!a.readableEnded) assert.notEqual(await waitClose(a), undefined);
  });
});

describe('--handler that cannot be used', () => {
  for (const model of ['event', 'fork', 'prefork', 'threads']) {
    it(`${model}: fails at start with exit 100 naming the handler`, async () => {
      const r = await run(['serve', '--host', '127.0.0.1', '--port', '0', '--model', model, '--workers', '1', '--handler', path.join(ROOT, 'test', 'fixtures', 'no-such-handler.js')], { timeoutMs: 30_000 });
      assert.equal(r.code, 100);
      assert.match(r.stderr, /^tcpkit: .*handler: cannot load .*no-such-handler\.js/m);
    });
  }
});

describe('prefork supervision', () => {
  for (const accept of ['shared', 'pass']) {
    it(`${accept}: restarts a killed worker and recycles after K connections`, async () => {
      const server = await serve(['--model', 'prefork', '--workers', '2', '--accept', accept, '--max-conns-per-worker', '2']);
      const workers = [...server.log().matchAll(/^spawn pid (\d+) role worker/gm)].map((m) => Number(m[1]));
      assert.equal(workers.length, 2);
      process.kill(workers[0], 'SIGKILL');
      await server.waitFor(new RegExp(`^exit pid ${workers[0]} role worker signal SIGKILL`, 'm'));
      await eventually(() => [...server.log().matchAll(/^spawn pid/gm)].length === 3, { message: 'a replacement worker' });
      // 2 workers x K=2: five connections in a row must recycle at least one worker.
      for (let i = 0; i < 5; i++) {
        const data = random(1000);
        assert.ok((await echoOnce(server.port, data)).equals(data));
      }
      await server.waitFor(/^exit pid \d+ role worker exitcode 0$/m);
      const spawns = [...server.log().matchAll(/^spawn pid/gm)].length;
      assert.ok(spawns >= 4, `expected a recycled worker, log:\n${server.log()}`);
      assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
    });
  }
});

describe('library: every model leaves nothing behind and reports one stats shape', () => {
  const taskCount = () => fs.readdirSync('/proc/self/task').length;
  const fdCount = () => fdsOf(process.pid).length;

  const cases: [ModelName, Partial<ServerOptions>][] = [
    ['iterative', {}],
    ['event', {}],
    ['fork', { spare: 1 }],
    ['prefork', { workers: 2, accept: 'pass', maxConnsPerWorker: 1 }],
    ['threads', { workers: 2, maxConnsPerWorker: 1 }],
  ];
  for (const [model, extra] of cases) {
    it(model, async () => {
      const fds = fdCount();
      const tasks = taskCount();
      const server = createServer({ host: '127.0.0.1', port: 0, model, grace: 5, ...extra });
      const { port } = await server.listen();
      for (let i = 0; i < 3; i++) {
        const data = random(10_000);
        assert.ok((await echoOnce(port, data)).equals(data));
      }
      const stats = server.stats();
      assert.ok(stats.models, 'stats() reports the model');
      // The pools also count their messages with workers (optional in the shape).
      const pool = model === 'prefork' || model === 'threads';
      assert.deepEqual(Object.keys(stats.models).sort(), ['crashed', ...(pool ? ['messages'] : []), 'model', 'processes', 'spawned']);
      if (pool) assert.deepEqual(Object.keys(stats.models.messages!).sort(), ['fromWorkers', 'toWorkers']);
      assert.equal(stats.models.model, model);
      for (const p of stats.models.processes) {
        assert.deepEqual(Object.keys(p).sort(), ['connections', 'pid', 'role', 'served', 'startedAt', 'state', 'threadId']);
      }
      if (model === 'threads') {
        // K=1: three connections recycled threads; each served count is per thread.
        assert.ok(stats.models.spawned >= 3, JSON.stringify(stats.models));
      }
      await server.close();
      assert.equal(server.state, 'closed');
      await eventually(() => testChildren().length === 0, { message: 'no child process left' });
      await eventually(() => taskCount() <= tasks, { message: `threads back to ${tasks}` });
      await eventually(() => fdCount() <= fds, { message: `descriptors back to ${fds}` });
    });
  }
});

describe('bench service', () => {
  for (const model of ['event', 'prefork']) {
    it(`${model}: answers exact byte counts and refuses bad ones`, async () => {
      const server = await serve(['bench', '--model', model, '--workers', '1', '--max-reply', '1000000']);
      const s = await connectTo(server.port);
      for (const n of [1, 10, 65536, 1000000]) {
        s.write(`${n}\n`);
        const got = await readBytes(s, n);
        assert.equal(got.length, n);
      }
      // Pipelined requests, then FIN: both answered, then EOF.
      // readBytes left the socket paused; exchange's 'data' listener needs it flowing.
      const pending = exchange(s, '3\r\n5\n');
      s.resume();
      const all = await pending;
      assert.equal(all.length, 8);

      for (const bad of ['0\n', 'abc\n', '-5\n', '1000001\n', '\n', '9'.repeat(100)]) {
        const t = await connectTo(server.port);
        t.write(bad);
        const r = await waitClose(t);
        assert.ok(r === 'end' || r === 'ECONNRESET', `${JSON.stringify(bad)}: ${r}`);
      }
      await server.waitFor(/^error where service code TCPKIT_PROTOCOL .*1000001/m);
      await server.waitFor(/^error where service code TCPKIT_PROTOCOL .*longer/m);
      // Still serving.
      const u = await connectTo(server.port);
      assert.equal((await exchange(u, '7\n')).length, 7);
      assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
    });
  }
});

describe('access rules and limits apply under every model', () => {
  for (const c of CONFIGS.filter((x) => x.label !== 'iterative' && x.label !== 'fork')) {
    it(`${c.label}: --per-source 1 refuses a second connection; --idle-timeout closes an idle one`, async () => {
      const server = await serve(['echo', ...c.args, '--per-source', '1', '--idle-timeout', '1']);
      const a = await connectTo(server.port);
      await roundTrip(a, Buffer.from('first'));
      const b = await connectTo(server.port);
      b.write('second');
      assert.notEqual(await waitClose(b), undefined);
      await server.waitFor(/^refuse 127\.0\.0\.1:\d+ -> .* reason per-source/m);
      // a says nothing more: closed for idleness within a few seconds.
      assert.notEqual(await waitClose(a, 10_000), undefined);
      await server.waitFor(/^kill pid \d+ signal \S+ reason idle/m);
      // Once the server has counted it gone, the source has its place back.
      // (the first connection's id: 1 in the server; a pool worker numbers from its own block of ids)
      await server.waitFor(/^end pid \d+ /m);
      const data = random(1000);
      assert.ok((await echoOnce(server.port, data)).equals(data), 'serves again once the source has no connection');
      assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
    });
  }
});
