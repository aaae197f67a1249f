// Per-source limits: concurrent connections per source address and new connections per second (xinetd's cps).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SourceLimits } from '../../../src/admission/limits.js';
import { sharedMemory } from '../../../src/net/shared-counts.js';

const counted = (r: ReturnType<SourceLimits['take']>) => (r.ok ? { ok: true, count: r.count } : r);

describe('SourceLimits', () => {
  it('counts per source (IPv4-mapped is the same source) and refills the rate bucket over time', () => {
    const l = new SourceLimits({ perSource: 2, rate: 2 });
    const first = l.take('127.0.0.1', 0);
    assert.deepEqual(counted(first), { ok: true, count: 1 });
    assert.deepEqual(counted(l.take('::ffff:127.0.0.1', 0)), { ok: true, count: 2 });
    assert.deepEqual(l.take('127.0.0.1', 0), { ok: false, reason: 'per-source' });
    assert.ok(first.ok);
    l.release(first.place);
    assert.equal(l.count('127.0.0.1'), 1);
    assert.deepEqual(l.take('127.0.0.1', 0), { ok: false, reason: 'rate' }); // 2 per second spent
    assert.deepEqual(counted(l.take('127.0.0.1', 600)), { ok: true, count: 2 }); // 1.2 tokens back
    assert.deepEqual(counted(l.take('127.0.0.2', 600)), { ok: true, count: 1 });
    assert.deepEqual(l.stats().refused, { 'per-source': 1, rate: 1 });
    assert.equal(l.stats().sources, 2);
  });

  it('a worker attached to the shared table counts the same places (TCPCONNNUM across processes)', () => {
    const server = new SourceLimits({ perSource: 3 });
    const worker = SourceLimits.attached({ perSource: 3 }, server.share(sharedMemory), sharedMemory);
    try {
      assert.deepEqual(counted(server.take('127.0.0.1')), { ok: true, count: 1 });
      const w = worker.take('127.0.0.1');
      assert.deepEqual(counted(w), { ok: true, count: 2 });
      assert.deepEqual(counted(server.take('127.0.0.1')), { ok: true, count: 3 });
      assert.deepEqual(worker.take('::ffff:127.0.0.1'), { ok: false, reason: 'per-source' });
      // Given back where it was taken or elsewhere: the same place.
      assert.ok(w.ok);
      server.release(w.place);
      assert.equal(worker.count('127.0.0.1'), 2);
      assert.deepEqual(server.stats().refused['per-source'], 1);
    } finally {
      server.unshare();
    }
  });
});
