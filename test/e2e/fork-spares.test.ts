// fork --spare: once serving, replacements for the spares that took connections start at most one per CPU at a
// time (paced), never as a burst of Node starts competing with the children serving connections.
import assert from 'node:assert/strict';
import type net from 'node:net';
import os from 'node:os';
import { test } from 'node:test';
import { createServer } from '../../dist/index.js';
import { connectTo, eventually, exchange, sleep } from '../helpers.js';

// More spares than CPUs, so that pacing shows: at most one start per CPU, where a burst would start them all.
const CPUS = os.availableParallelism();
const SPARES = CPUS + 2;

test(`fork --spare ${SPARES}: a burst of ${SPARES} connections takes every spare; their replacements start at most ${CPUS} at a time`, { timeout: 120_000 }, async () => {
  const server = createServer({ host: '127.0.0.1', port: 0, model: 'fork', spare: SPARES, service: 'echo' });
  const { port } = await server.listen();
  const spares = () => (server.stats().models?.processes ?? []).filter((p) => p.role === 'spare');
  const sockets: net.Socket[] = [];
  try {
    assert.equal(spares().filter((p) => p.state === 'ready').length, SPARES, 'every spare ready after listen()');
    let maxStarting = 0;
    const sample = setInterval(() => {
      maxStarting = Math.max(maxStarting, spares().filter((p) => p.state === 'starting').length);
    }, 5);
    try {
      // Four at once, each held open (served by a spare that is now a child).
      for (let i = 0; i < SPARES; i++) sockets.push(await connectTo(port));
      await Promise.all(sockets.map(async (s, i) => assert.equal((await exchange(s, `spare ${i}\n`)).toString(), `spare ${i}\n`)));
      await eventually(() => spares().filter((p) => p.state === 'ready').length === SPARES, { timeoutMs: 90_000, message: 'every spare ready again' });
    } finally {
      clearInterval(sample);
    }
    assert.ok(maxStarting >= 1, 'replacements were started');
    assert.ok(maxStarting <= CPUS, `at most ${CPUS} replacements starting at a time (saw ${maxStarting})`);
  } finally {
    for (const s of sockets) s.destroy();
    await sleep(50);
    await server.close({ grace: 5 });
  }
});
