// A pool worker's reports without a message per connection: batches of accepts and ends, blocks of ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IdBlocks, ReportBatch } from '../../../src/workers/reports.js';
import type { BatchEntry } from '../../../src/workers/messages.js';

const end = (id: number): BatchEntry => ({ k: 'end', id, at: 0 });

test('a batch goes out when full, in the order its entries came', () => {
  const sent: BatchEntry[][] = [];
  const batch = new ReportBatch((e) => sent.push(e), { maxEntries: 3, maxDelayMs: 60_000 });
  for (let id = 1; id <= 7; id++) batch.add(end(id));
  assert.deepEqual(sent.map((b) => b.map((e) => (e as { id: number }).id)), [[1, 2, 3], [4, 5, 6]]);
  assert.equal(batch.size, 1);
  batch.close();
  assert.deepEqual(sent[2], [end(7)]);
  batch.add(end(8));
  batch.flush();
  assert.equal(sent.length, 3, 'nothing is taken after close');
});

test('a batch that does not fill goes out after its delay; an empty one sends nothing', async () => {
  const sent: BatchEntry[][] = [];
  const batch = new ReportBatch((e) => sent.push(e), { maxEntries: 64, maxDelayMs: 20 });
  batch.flush();
  assert.equal(sent.length, 0);
  batch.add(end(1));
  batch.add(end(2));
  assert.equal(sent.length, 0);
  // Bounded wait: the timer is 20 ms; give it seconds.
  for (let i = 0; i < 200 && sent.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(sent, [[end(1), end(2)]]);
  batch.close();
});

test('ids are used in order across blocks; the next block is asked for once, at half', () => {
  let asked = 0;
  const ids = new IdBlocks({ from: 100, count: 4 }, () => asked++);
  assert.deepEqual([ids.take(), ids.take()], [100, 101]);
  assert.equal(asked, 0);
  assert.equal(ids.take(), 102);
  assert.equal(asked, 1, 'fewer than half left');
  assert.equal(ids.take(), 103);
  assert.equal(asked, 1, 'asked once until a block arrives');
  assert.equal(ids.available, 0);
  assert.equal(ids.take(), undefined, 'none left: the worker stops accepting until the block comes');
  ids.add(500, 4);
  assert.equal(ids.available, 4);
  assert.deepEqual([ids.take(), ids.take(), ids.take()], [500, 501, 502]);
  assert.equal(asked, 2);
});
