// The one supervision helper of the pool and fork's spares: restart backoff and the ready timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HEALTHY_MS, readyWithin, RestartBackoff } from '../../../src/models/supervision.js';

test('a slot that keeps dying is restarted later each time; one restart per slot at a time; close cancels', async () => {
  const b = new RestartBackoff();
  const started: number[] = [];
  b.retry(0, () => started.push(0));
  b.retry(0, () => started.push(99)); // already scheduled: counted, not scheduled twice
  assert.equal(b.failures(0), 2);
  assert.ok(b.waiting(0));
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(started, [0]);
  assert.equal(b.waiting(0), false);
  // A member that lived HEALTHY_MS starts the backoff over; ready() does too.
  b.retry(1, () => started.push(1), HEALTHY_MS);
  assert.equal(b.failures(1), 1);
  b.ready(0);
  assert.equal(b.failures(0), 0);
  b.close();
  b.close();
  b.retry(2, () => started.push(2));
  assert.equal(b.waiting(2), false, 'nothing scheduled after close');
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(started, [0], 'the pending restart of slot 1 was cancelled');
});

test('readyWithin: resolves when ready, rejects with the check\'s error, or with a StateError after the timeout', async () => {
  let ready = false;
  let recheck = () => {};
  let unwatched = 0;
  const waiting = readyWithin('pool: workers', () => ready, (r) => ((recheck = r), () => unwatched++), 10_000);
  ready = true;
  recheck();
  await waiting;
  assert.equal(unwatched, 1);
  await assert.rejects(readyWithin('pool: workers', () => new Error('bad handler'), () => () => {}), /bad handler/);
  await assert.rejects(readyWithin('fork: spares', () => false, () => () => {}, 50), {
    code: 'TCPKIT_STATE',
    message: 'fork: spares not ready within 0.05 s',
  });
});
