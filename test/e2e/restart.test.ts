// Zero-downtime restart: SIGUSR2 starts a successor on the same listening socket; the old server
// drains and exits 0. Client loops running across the restart see no refused connection and
// every echo exact.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fs from 'node:fs';
import { createServer } from '../../dist/server.js';
import type { ServerEvent } from '../../dist/events.js';
import { startSuccessor } from '../../dist/net/restart.js';
import { childrenOf, connectTo, echoOnce, eventually, exchange, random, sha256, startServer, errnoOf } from '../helpers.js';

const alive = (pid: number): boolean => fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
const successors: number[] = [];
after(() => {
  for (const pid of successors) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

/** Echo exchanges one after another until `stop()` says so (bounded by count and time). */
/** What one client loop saw. */
interface LoopStats {
  ok: number;
  refused: number;
  failed: string[];
  mismatched: number;
}

function clientLoop(port: number, stop: () => boolean, { maxCount = 2000, maxMs = 30_000 } = {}): { stats: LoopStats; done: Promise<void> } {
  const stats: LoopStats = { ok: 0, refused: 0, failed: [], mismatched: 0 };
  const deadline = Date.now() + maxMs;
  const done = (async () => {
    for (let i = 0; i < maxCount && Date.now() < deadline && !stop(); i++) {
      const data = random(512 + ((i * 977) % 8192));
      try {
        const got = await echoOnce(port, data);
        if (sha256(got) === sha256(data)) stats.ok++;
        else stats.mismatched++;
      } catch (err) {
        const e = errnoOf(err);
        if (e.code === 'ECONNREFUSED') stats.refused++;
        else stats.failed.push(e.code ?? e.message);
      }
    }
  })();
  return { stats, done };
}

describe('zero-downtime restart (SIGUSR2)', () => {
  it('a successor takes over the socket; no connection refused, every echo exact; the old one drains and exits 0', async () => {
    const old = await startServer(['--grace', '5']);
    const port = old.port;
    // A connection in the middle of its session when the restart happens: served to the end by the old server.
    const longLived = await connectTo(port);
    longLived.write('before ');

    let stopping = false;
    const loops = [clientLoop(port, () => stopping), clientLoop(port, () => stopping)];
    const okNow = () => loops.reduce((n, l) => n + l.stats.ok, 0);
    await eventually(() => okNow() >= 4, { timeoutMs: 20_000, message: 'echoes before the restart' });
    const before = okNow();
    old.proc.kill('SIGUSR2');
    const spawnLine = await old.waitFor(/^restart state spawn pid (\d+)$/m);
    const next = Number(spawnLine[1]);
    successors.push(next);
    await old.waitFor(new RegExp(`^restart state ready pid ${next}$`, 'm'));
    await old.waitFor(new RegExp(`^listen 127\\.0\\.0\\.1:${port} IPv4 model fork service echo pid ${next} max 40$`, 'm'));
    await old.waitFor(/^shutdown signal restart active \d+ grace 5$/m);

    // The old process still serves the connection it had.
    const tail = exchange(longLived, 'and after');
    assert.equal((await tail).toString(), 'before and after');
    assert.deepEqual(await old.exited, { code: 0, signal: null }, 'the old server exits 0 once drained');

    // The loops go on against the successor alone for a while.
    const atExit = okNow();
    await eventually(() => okNow() >= atExit + 10, { timeoutMs: 20_000, message: 'echoes after the old server exited' });
    stopping = true;
    await Promise.all(loops.map((l) => l.done));

    const total = loops.reduce<LoopStats>(
      (t, l) => ({ ok: t.ok + l.stats.ok, refused: t.refused + l.stats.refused, mismatched: t.mismatched + l.stats.mismatched, failed: [...t.failed, ...l.stats.failed] }),
      { ok: 0, refused: 0, mismatched: 0, failed: [] },
    );
    assert.equal(total.refused, 0, 'no connection refused');
    assert.deepEqual(total.failed, [], 'no connection failed');
    assert.equal(total.mismatched, 0, 'every echo exact');
    assert.ok(total.ok >= before + 10, `echoes before ${before}, in all ${total.ok}`);
    // Both processes accepted: the old one's `closed` line counts its share.
    const closed = /^closed accepted (\d+) served (\d+)$/m.exec(old.log());
    assert.ok(closed, 'the old server logged closed');
    assert.equal(closed[1], closed[2], 'the old server served every connection it accepted');
    assert.ok(Number(closed[1]) < total.ok + 1, 'the successor served the rest');

    // The successor is a normal server: SIGTERM stops it, its children are gone.
    assert.ok(alive(next));
    process.kill(next, 'SIGTERM');
    await eventually(() => !alive(next), { timeoutMs: 20_000, message: 'successor exit' });
    assert.deepEqual(childrenOf(next), []);
    await assert.rejects(connectTo(port), { code: 'ECONNREFUSED' });
  });

  it('a successor that fails to start is reported; the server goes on serving', async () => {
    const events: ServerEvent[] = [];
    const server = createServer({ host: '127.0.0.1', port: 0, maxConns: 5 });
    server.on('event', (e) => events.push(e));
    const { port } = await server.listen();
    try {
      await assert.rejects(server.handOver({ argv: ['-e', 'process.exit(3)'] }), {
        code: 'TCPKIT_RESTART',
        message: /successor exited \(exit code 3\) before it was ready/,
      });
      const restart = events.filter((e) => e.type === 'restart');
      assert.deepEqual(restart.map((e) => e.state), ['spawn', 'failed']);
      assert.equal(server.state, 'running');
      assert.equal((await echoOnce(port, Buffer.from('still serving'))).toString(), 'still serving');
      // Not ready in time: killed, and again the server goes on.
      await assert.rejects(startSuccessor({ fd: server.listener!.fd, argv: ['-e', 'setTimeout(() => {}, 60000)'], timeoutMs: 300 }), {
        code: 'TCPKIT_RESTART',
        message: 'successor not ready within 300 ms',
      });
      assert.equal((await echoOnce(port, Buffer.from('and still'))).toString(), 'and still');
    } finally {
      await server.close();
    }
  });
});
