// connection/slots.ts: the open connections of one place, slots reused in place.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Slots } from '../../../src/connection/slots.js';

test('Slots: add gives a slot, remove frees it for the next, values are the live entries', () => {
  const s = new Slots<string>();
  const a = s.add('a');
  const b = s.add('b');
  const c = s.add('c');
  assert.equal(s.size, 3);
  s.remove(b);
  s.remove(b);
  assert.equal(s.size, 2, 'a slot freed twice counts once');
  assert.deepEqual(s.values(), ['a', 'c']);
  assert.equal(s.add('d'), b, 'the freed slot is reused');
  assert.deepEqual(s.values(), ['a', 'd', 'c']);
  s.remove(a);
  s.remove(c);
  s.remove(b);
  assert.equal(s.size, 0);
  assert.deepEqual(s.values(), []);
  // Churn at one or two open: the table stays at its peak of three slots.
  for (let i = 0; i < 1000; i++) s.remove(s.add(`x${i}`));
  assert.ok([a, b, c].includes(s.add('y')));
});
