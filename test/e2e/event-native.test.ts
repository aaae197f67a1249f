// In-process services (event, iterative) on the `native-socket` path (src/net/fast-path.ts, issue 23): the
// connection is accepted by native/accept.c, whose accept4 returns the peer's address, and becomes a net.Socket
// with that address already known. What must hold: no getpeername per connection (strace), the peer in the
// `accept` line is the client's own end, the service reads and writes as on any socket, and the listener-bound
// and wildcard cases both name the right local end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { spawn, spawnSync } from 'node:child_process';
import { eventually, sleep, startServer } from '../helpers.js';

/** Connect from 127.0.0.1, send `data` and end; resolve with the reply (once the server closed) and our local port. */
function roundTrip(port: number, data: string): Promise<{ reply: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let localPort = 0;
    s.on('connect', () => (localPort = s.localPort!));
    s.on('data', (c) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => resolve({ reply: Buffer.concat(chunks).toString(), localPort }));
    s.end(data);
  });
}

/** getpeername and accept4 calls of `pid` while `during` runs (strace); a string when strace cannot attach. */
async function trace(pid: number, during: () => Promise<void>): Promise<{ accepts: number; getpeername: number } | string> {
  const file = `/tmp/tcpkit-event-native-${process.pid}-${pid}.strace`;
  const tracer = spawn('strace', ['-f', '-e', 'trace=getpeername,accept4', '-o', file, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let why = '';
  tracer.stderr.on('data', (c: Buffer) => (why += c.toString()));
  await sleep(1500); // attached
  if (tracer.exitCode !== null) return `strace cannot attach: ${why.trim()}`;
  await during();
  tracer.kill('SIGINT');
  await new Promise((r) => tracer.once('exit', r));
  const text = fs.readFileSync(file, 'utf8');
  fs.rmSync(file, { force: true });
  const accepts = text.split('\n').filter((l) => /(accept4\(|accept4 resumed>).*= \d+$/.test(l)).length;
  return { accepts, getpeername: (text.match(/getpeername\(/g) ?? []).length };
}

for (const model of ['event', 'iterative']) {
  test(`${model} echo: the peer comes with accept4, no getpeername per connection (strace; fails on the net.Server path)`, { timeout: 120_000 }, async (t) => {
    if (spawnSync('strace', ['-V']).status !== 0) return t.skip('strace is not installed');
    const server = await startServer(['-q', '--model', model, 'echo']);
    try {
      await roundTrip(server.port, 'warm');
      const traced = await trace(server.pid, async () => {
        for (let i = 0; i < 20; i++) assert.equal((await roundTrip(server.port, `hello ${i}`)).reply, `hello ${i}`);
      });
      if (typeof traced === 'string') return t.skip(traced);
      t.diagnostic(`accept4 returning a descriptor: ${traced.accepts}; getpeername: ${traced.getpeername}`);
      assert.ok(traced.accepts >= 20, `20 connections accepted with accept4 (saw ${traced.accepts})`);
      assert.equal(traced.getpeername, 0, 'the peer came with the accept');
    } finally {
      await server.stop();
    }
  });
}

test('event echo on the native-socket path: each accept line names the client\'s own port, every byte comes back, ends are logged', { timeout: 120_000 }, async () => {
  const server = await startServer(['--model', 'event', 'echo']);
  try {
    const runs = await Promise.all(Array.from({ length: 30 }, (_, i) => roundTrip(server.port, `line ${i}\n`.repeat(100))));
    runs.forEach((r, i) => assert.equal(r.reply, `line ${i}\n`.repeat(100)));
    await eventually(() => (server.log().match(/^end /gm) ?? []).length >= 30, { timeoutMs: 20_000, message: '30 end lines' });
    const peers = [...server.log().matchAll(/^accept 127\.0\.0\.1:(\d+) -> (\S+) IPv4 /gm)];
    assert.equal(peers.length, 30, server.log());
    for (const [, , local] of peers) assert.equal(local, `127.0.0.1:${server.port}`, 'the listener\'s own address and port');
    assert.deepEqual(peers.map((m) => Number(m[1])).sort(), runs.map((r) => r.localPort).sort(), 'each peer is a client\'s own end');
  } finally {
    await server.stop();
  }
});

test('event on a wildcard listener: the local end of each connection comes with the batch (127.0.0.1, not 0.0.0.0)', { timeout: 60_000 }, async () => {
  const server = await startServer(['--model', 'event', '--host', '0.0.0.0', 'echo']);
  try {
    const r = await roundTrip(server.port, 'x');
    assert.equal(r.reply, 'x');
    await eventually(() => /^accept /m.test(server.log()), { timeoutMs: 10_000, message: 'an accept line' });
    assert.match(server.log(), new RegExp(`^accept 127\\.0\\.0\\.1:${r.localPort} -> 127\\.0\\.0\\.1:${server.port} IPv4 `, 'm'));
  } finally {
    await server.stop();
  }
});
