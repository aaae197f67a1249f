// Chaos under load and the soak: thousands of connections while children and workers are
// SIGKILLed at random; then many short connections, after which descriptors, children and
// memory are back where they started. Counts are bounded (see each test's name).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { childrenOf, echoOnce, eventually, random, startServer } from '../helpers.js';
import { describe, soak, soakProblems } from '../../bench/soak.js';

/** One echo attempt: what was sent, what came back, and how it ended. */
interface Attempt {
  data: Buffer;
  reply: Buffer;
  how: string;
}

/** Echo `data` once; resolves { data, reply, how } where how is 'end', an error code, or 'hang' after 30 s. */
function attempt(port: number, data: Buffer): Promise<Attempt> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    const done = (how: string): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ data, reply: Buffer.concat(chunks), how });
    };
    const timer = setTimeout(() => done('hang'), 30_000);
    s.on('data', (c) => chunks.push(c));
    s.on('end', () => done('end'));
    s.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'));
    s.end(data);
  });
}

/**
 * `count` echoes, `lanes` at once, while a child of the server is SIGKILLed every `everyMs`.
 * Every reply must be a prefix of what was sent (nothing corrupted or crossed), none may hang,
 * the server must restore its children, and most connections (those not killed) come back exact.
 */
async function chaos(args: string[], { count, lanes, everyMs, children }: { count: number; lanes: number; everyMs: number; children: number }): Promise<{ exact: number; kills: number }> {
  const srv = await startServer(['-q', ...args]);
  const kills: number[] = [];
  try {
    await eventually(() => childrenOf(srv.pid).length >= children, { timeoutMs: 30_000, message: `${children} children` });
    let next = 0;
    const results: Attempt[] = [];
    let running = true;
    const killOne = (): void => {
      const kids = childrenOf(srv.pid).filter((k) => k.state !== 'Z');
      if (kids.length === 0) return;
      const victim = kids[Math.floor(Math.random() * kids.length)]!.pid;
      try {
        process.kill(victim, 'SIGKILL');
        kills.push(victim);
      } catch {
        // exited by itself meanwhile
      }
    };
    const killer = (async () => {
      while (running) {
        await new Promise<void>((r) => setTimeout(r, everyMs));
        if (running) killOne();
      }
    })();
    // Also by progress, not only by the clock: a machine that serves all `count` within a second or two still sees a
    // child killed mid-stream at each sixth of the run.
    const killPoint = Math.floor(count / 6);
    await Promise.all(Array.from({ length: lanes }, async () => {
      while (next < count) {
        next++;
        if (next % killPoint === 0 && next < count) killOne();
        results.push(await attempt(srv.port, random(1000 + Math.floor(Math.random() * 8000))));
      }
    }));
    running = false;
    await killer;
    const hung = results.filter((r) => r.how === 'hang').length;
    assert.equal(hung, 0, 'no connection left hanging');
    for (const r of results) assert.ok(r.data.subarray(0, r.reply.length).equals(r.reply), 'every reply is a prefix of its own request');
    const exact = results.filter((r) => r.how === 'end' && r.reply.equals(r.data)).length;
    assert.ok(kills.length >= 3, `children killed: ${kills.length}`);
    // A killed child or worker takes down at most the connections it held: at most `lanes` per kill.
    assert.ok(exact >= count - kills.length * lanes, `exact ${exact} of ${count} with ${kills.length} kills`);
    assert.ok(exact >= count / 2, `exact ${exact} of ${count}`);
    // Recovered: children restored, and it serves.
    await eventually(() => childrenOf(srv.pid).filter((k) => k.state !== 'Z').length >= children, { timeoutMs: 30_000, message: 'children restored' });
    const data = random(50_000);
    assert.ok((await echoOnce(srv.port, data)).equals(data));
    assert.equal(srv.proc.exitCode, null, 'server alive');
    return { exact, kills: kills.length };
  } finally {
    const kids = childrenOf(srv.pid).map((k) => k.pid);
    assert.equal((await srv.stop()).code, 0, srv.log().slice(-2000));
    await eventually(() => kids.every((pid) => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }), { message: 'no child left after stop' });
  }
}

test('chaos: 2,000 connections through prefork (shared accept) while workers are SIGKILLed', { timeout: 180_000 }, async () => {
  await chaos(['--model', 'prefork', '--workers', '4', '-c', '100'], { count: 2000, lanes: 20, everyMs: 400, children: 4 });
});

test('chaos: 2,000 connections through prefork --accept pass while workers are SIGKILLed', { timeout: 180_000 }, async () => {
  await chaos(['--model', 'prefork', '--accept', 'pass', '--workers', '4', '-c', '100'], { count: 2000, lanes: 20, everyMs: 400, children: 4 });
});

// fork runs a Node process per connection (about 10-40 a second here), so 150, not thousands.
test('chaos: 150 connections through fork --spare 2 while children are SIGKILLed', { timeout: 180_000 }, async () => {
  await chaos(['--model', 'fork', '--spare', '2', '-c', '20'], { count: 150, lanes: 6, everyMs: 700, children: 2 });
});

test('soak (scaled down; npm run soak runs 100,000): descriptors, children and memory return to their start', { timeout: 240_000 }, async (t) => {
  for (const [model, count] of [['event', 5000], ['prefork', 5000], ['fork-spare', 150]]) {
    const r = await soak(model, count);
    t.diagnostic(describe(r));
    assert.deepEqual(soakProblems(r), [], describe(r));
  }
});
