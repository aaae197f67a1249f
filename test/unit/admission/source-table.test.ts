// The service's table of sources, in shared memory (native/shm.c through src/net/shared-counts.ts): the same places
// seen from another process and another thread, no update lost when all count at once, limits, reuse, a dead lock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { SourceTable, sourceKey, PROBE_LIMIT } from '../../../src/admission/source-table.js';
import { sharedMemory } from '../../../src/net/shared-counts.js';
import { fdutil } from '../../../src/net/fdutil.js';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../../helpers.js';

test('sourceKey: IPv4 and its IPv4-mapped form are one source; IPv6 groups expand', () => {
  assert.deepEqual(sourceKey('127.0.0.1'), sourceKey('::ffff:127.0.0.1'));
  assert.deepEqual(sourceKey('::1'), [0, 0, 0, 1]);
  assert.deepEqual(sourceKey('fe80::1%eth0'), sourceKey('fe80::1'));
  assert.notDeepEqual(sourceKey('2001:db8::1'), sourceKey('2001:db8::2'));
});

test('sourceKey reads a dotted quad in place: the same words as before, every octet, nothing that is not an IPv4 address', () => {
  assert.deepEqual(sourceKey('10.1.2.3'), [0, 0, 0xffff, 0x0a010203]);
  assert.deepEqual(sourceKey('255.255.255.255'), [0, 0, 0xffff, -1]);
  assert.deepEqual(sourceKey('0.0.0.0'), [0, 0, 0xffff, 0]);
  assert.deepEqual(sourceKey('::FFFF:192.168.0.1'), sourceKey('192.168.0.1'));
  // Not IPv4 (net.isIPv4 refuses them too): read as IPv6, which these are not either, so no IPv4 peer's key.
  for (const bad of ['256.1.1.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1..2.3', '1.2.3.', 'a.b.c.d', '1.2.3.4 ']) {
    assert.notDeepEqual(sourceKey(bad).slice(0, 3), [0, 0, 0xffff], bad);
  }
});

/** A program that attaches to the table and takes `n` places from 127.0.0.1, keeping them; prints the last count. */
const TAKER = `
const { SourceTable } = await import(process.argv[1] + '/admission/source-table.js');
const { sharedMemory } = await import(process.argv[1] + '/net/shared-counts.js');
const t = SourceTable.attach({ fd: 3, size: Number(process.argv[2]) }, sharedMemory);
let last = 0;
for (let i = 0; i < Number(process.argv[3]); i++) { const r = t.take('127.0.0.1', 0, 0, Date.now()); if (r.ok) last = r.count; }
process.stdout.write(String(last));
`;

test('a table shared with a child process and a thread: every take counted once, while both take at once', async () => {
  const table = SourceTable.create(1024);
  const ref = table.share(sharedMemory);
  const N = 20_000;
  try {
    // The built module (npm run build:ts), as a worker process or thread loads it.
    const dist = pathToFileURL(path.join(ROOT, 'dist')).href;
    const child = spawn(process.execPath, ['--input-type=module', '-e', TAKER, dist, String(ref.size), String(N)], { stdio: ['ignore', 'pipe', 'inherit', ref.fd] });
    const thread = new Worker(
      `Promise.all([import('${dist}/admission/source-table.js'), import('${dist}/net/shared-counts.js')]).then(([{ SourceTable }, { sharedMemory }]) => {
        const t = SourceTable.attach({ fd: ${ref.fd}, size: ${ref.size} }, sharedMemory);
        for (let i = 0; i < ${N}; i++) t.take('127.0.0.1', 0, 0, Date.now());
      });`,
      { eval: true },
    );
    const places: number[] = [];
    for (let i = 0; i < N; i++) {
      const r = table.take('::ffff:127.0.0.1', 0, 0, Date.now());
      assert.ok(r.ok);
      places.push(r.place);
    }
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c));
    const [code] = await Promise.all([new Promise((r) => child.once('exit', r)), new Promise((r) => thread.once('exit', r))]);
    assert.equal(code, 0);
    assert.ok(Number(out) >= N, `the child's last count ${out}`);
    assert.equal(table.count('127.0.0.1'), 3 * N, 'no update lost');
    for (const p of places) table.release(p);
    assert.equal(table.count('127.0.0.1'), 2 * N);
    assert.equal(table.stats().sources, 1);
  } finally {
    table.close();
  }
});

test('limits: per-source and rate refuse and are counted; a table full for an address refuses it as per-source', () => {
  const table = SourceTable.create(64);
  const t0 = 1_000_000;
  assert.ok(table.take('127.0.0.1', 2, 0, t0).ok);
  assert.ok(table.take('127.0.0.1', 2, 0, t0).ok);
  assert.deepEqual(table.take('127.0.0.1', 2, 0, t0), { ok: false, reason: 'per-source' });
  assert.ok(table.take('127.0.0.2', 0, 1, t0).ok);
  assert.deepEqual(table.take('127.0.0.2', 0, 1, t0 + 500), { ok: false, reason: 'rate' });
  assert.ok(table.take('127.0.0.2', 0, 1, t0 + 1500).ok, 'refilled');
  // 64 entries, PROBE_LIMIT of them probed: fill every entry with a source that keeps a place.
  let refused = 0;
  for (let i = 0; i < 200; i++) if (!table.take(`10.0.${i >> 8}.${i & 255}`, 0, 0, t0).ok) refused++;
  assert.ok(refused >= 200 - 64, `${refused} refused once the table is full`);
  assert.ok(PROBE_LIMIT <= 64);
  assert.deepEqual(table.stats().refused, { 'per-source': 1 + refused, rate: 1 });
});

test('an entry with nothing open and a full bucket is reused for another address', () => {
  const table = SourceTable.create(64);
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < 64; i++) {
      const r = table.take(`10.${round}.0.${i}`, 0, 0, 0);
      assert.ok(r.ok, `round ${round}, address ${i}`);
      table.release(r.place);
    }
  }
  assert.equal(table.stats().sources, 0);
});

test('share() moves what was counted into the segment; attach checks the size', () => {
  const table = SourceTable.create(64);
  table.take('127.0.0.1', 0, 0, 0);
  const ref = table.share(sharedMemory);
  try {
    assert.equal(SourceTable.attach(ref, sharedMemory).count('127.0.0.1'), 1);
    assert.throws(() => SourceTable.attach({ ...ref, size: 32 }, sharedMemory), /holds 64 entries, expected 32/);
  } finally {
    table.close();
  }
  assert.throws(() => fdutil.shmMap(ref.fd, 4096), { code: 'EBADF' });
});

test('a lock left held by a holder that died inside it is taken over (after a second), and the table goes on', () => {
  const table = SourceTable.create(64);
  const ref = table.share(sharedMemory);
  try {
    // The header's first word is the lock: held by a token no live mapping has, as a SIGKILLed worker would leave it.
    const words = new Int32Array(fdutil.shmMap(ref.fd, 4));
    Atomics.store(words, 0, 999_999);
    const r = table.take('127.0.0.1', 0, 0, Date.now());
    assert.deepEqual(r.ok && r.count, 1);
    assert.equal(Atomics.load(words, 0), 0, 'released after use');
  } finally {
    table.close();
  }
});
