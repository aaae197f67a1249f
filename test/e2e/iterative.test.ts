// iterative's lazy pause (src/models/iterative.ts): one client served at a time, WAIT_ACCEPTED more
// accepted and waiting unread, the rest in the kernel's backlog; everyone served in turn.
import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, it } from 'node:test';
import { WAIT_ACCEPTED } from '../../src/models/iterative.js';
import { connectTo, eventually, readBytes, sleep, socketInodes, startServer, type StartedServer } from '../helpers.js';

const servers: StartedServer[] = [];
const sockets: net.Socket[] = [];
after(async () => {
  for (const s of sockets) s.destroy();
  for (const s of servers) await s.stop('SIGTERM');
});

it(`iterative: while one client is served, ${WAIT_ACCEPTED} wait accepted, the rest in the backlog; all served in turn`, async () => {
  const srv = await startServer(['echo', '--model', 'iterative']);
  servers.push(srv);
  const base = socketInodes(srv.pid).length;
  const first = await connectTo(srv.port);
  sockets.push(first);
  first.write('first\n');
  assert.equal((await readBytes(first, 6)).toString(), 'first\n');
  const waiting: net.Socket[] = [];
  for (let i = 0; i < WAIT_ACCEPTED + 4; i++) {
    const s = await connectTo(srv.port);
    sockets.push(s);
    s.write(`client ${i}\n`);
    waiting.push(s);
  }
  // Nobody else is answered while the first is served, and the server holds no more than its queue.
  // (Pausing closes libuv's duplicate of the listening socket: one socket fewer than the accepted ones.)
  await eventually(() => socketInodes(srv.pid).length - base >= WAIT_ACCEPTED, { message: 'queue filled' });
  await sleep(300);
  const held = socketInodes(srv.pid).length - base;
  assert.ok(held >= WAIT_ACCEPTED && held <= 1 + WAIT_ACCEPTED, `the first and ${WAIT_ACCEPTED} waiting, not all ${1 + waiting.length}: ${held} more sockets`);
  let early = 0;
  for (const s of waiting) s.once('data', () => early++);
  await sleep(200);
  assert.equal(early, 0, 'no waiting client is read or answered before its turn');
  const ports = [first.localPort, ...waiting.map((s) => s.localPort)];
  first.destroy();
  // Each in turn: answered (its line back), then closes, which lets the next one in.
  for (const [i, s] of waiting.entries()) {
    s.removeAllListeners('data');
    const line = `client ${i}\n`;
    assert.equal((await readBytes(s, line.length)).toString(), line);
    s.destroy();
  }
  // The `accept` line comes when a client is served, so in the order they connected.
  await eventually(() => [...srv.log().matchAll(/^accept /gm)].length === ports.length, { message: 'every accept line' });
  const served = [...srv.log().matchAll(/^accept 127\.0\.0\.1:(\d+) -> /gm)].map((m) => Number(m[1]));
  assert.deepEqual(served, ports);
});
