// Per-source limits: concurrent connections per source address and new connections per second (xinetd's cps).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SourceLimits } from '../../../src/admission/limits.js';

describe('SourceLimits', () => {
  it('counts per source (IPv4-mapped is the same source) and refills the rate bucket over time', () => {
    const l = new SourceLimits({ perSource: 2, rate: 2 });
    assert.deepEqual(l.take('127.0.0.1', 0), { ok: true, count: 1 });
    assert.deepEqual(l.take('::ffff:127.0.0.1', 0), { ok: true, count: 2 });
    assert.deepEqual(l.take('127.0.0.1', 0), { ok: false, reason: 'per-source' });
    l.release('127.0.0.1');
    assert.deepEqual(l.take('127.0.0.1', 0), { ok: false, reason: 'rate' }); // 2 per second spent
    assert.deepEqual(l.take('127.0.0.1', 600), { ok: true, count: 2 }); // 1.2 tokens back
    assert.deepEqual(l.take('127.0.0.2', 600), { ok: true, count: 1 });
    assert.deepEqual(l.stats().refused, { 'per-source': 1, rate: 1 });
  });
});

