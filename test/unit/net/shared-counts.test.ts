// The pool's ledger in shared memory (native/shm.c): a slot per worker, what it accepted and the places it holds,
// settled by the server once the worker is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerLedger } from '../../../src/net/shared-counts.js';

test('WorkerLedger: a slot per worker; settle gives what it accepted and the places it still held, and frees the slot', () => {
  const ledger = WorkerLedger.create(2, 4);
  try {
    const a = ledger.claim()!;
    const b = ledger.claim()!;
    assert.equal(ledger.claim(), undefined, 'both slots taken');
    const seen = WorkerLedger.attach(ledger.ref!);
    for (let i = 0; i < 5; i++) seen.accepted(a);
    seen.hold(a, 0, 17);
    seen.hold(a, 3, 0);
    seen.hold(a, 1, 9);
    seen.unhold(a, 1);
    assert.deepEqual(ledger.settle(a), { accepted: 5, places: [17, 0] });
    assert.equal(ledger.claim(), a, 'the slot is free again, and cleared');
    assert.deepEqual(ledger.settle(a), { accepted: 0, places: [] });
    assert.deepEqual(ledger.settle(b), { accepted: 0, places: [] });
  } finally {
    ledger.close();
  }
});
