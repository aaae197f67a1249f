// fork --spare: once serving, replacements for the spares that took connections start one at a time (paced),
// never as a burst of Node starts competing with the children serving connections.
import assert from 'node:assert/strict';
import type net from 'node:net';
import { test } from 'node:test';
import { createServer } from '../../dist/index.js';
import { connectTo, eventually, exchange, sleep } from '../helpers.js';

test('fork --spare 4: a burst of 4 connections takes 4 spares; their replacements start one at a time', async () => {
  const server = createServer({ host: '127.0.0.1', port: 0, model: 'fork', spare: 4, service: 'echo' });
  const { port } = await server.listen();
  const spares = () => (server.stats().models?.processes ?? []).filter((p) => p.role === 'spare');
  const sockets: net.Socket[] = [];
  try {
    assert.equal(spares().filter((p) => p.state === 'ready').length, 4, 'all four spares ready after listen()');
    let maxStarting = 0;
    const sample = setInterval(() => {
      maxStarting = Math.max(maxStarting, spares().filter((p) => p.state === 'starting').length);
    }, 5);
    try {
      // Four at once, each held open (served by a spare that is now a child).
      for (let i = 0; i < 4; i++) sockets.push(await connectTo(port));
      await Promise.all(sockets.map(async (s, i) => assert.equal((await exchange(s, `spare ${i}\n`)).toString(), `spare ${i}\n`)));
      await eventually(() => spares().filter((p) => p.state === 'ready').length === 4, { timeoutMs: 60_000, message: 'four spares ready again' });
    } finally {
      clearInterval(sample);
    }
    assert.ok(maxStarting >= 1, 'replacements were started');
    assert.equal(maxStarting, 1, `at most one replacement starting at a time (saw ${maxStarting})`);
  } finally {
    for (const s of sockets) s.destroy();
    await sleep(50);
    await server.close({ grace: 5 });
  }
});
