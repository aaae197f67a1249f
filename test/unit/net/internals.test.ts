// net/internals.ts: Node's onread mode switched on for an accepted socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { acceptedPair } from '../../helpers.js';
import { readIntoUserBuffer } from '../../../src/net/internals.js';

test('readIntoUserBuffer: reads land in the given buffers, then the next one; end and close as usual', async () => {
  const { accepted, client } = await acceptedPair();
  const first = Buffer.alloc(8);
  const second = Buffer.alloc(8);
  const reads: Array<[string, Buffer]> = [];
  let next = first;
  const ok = readIntoUserBuffer(
    accepted,
    first,
    (n, buffer) => {
      reads.push([buffer.toString('latin1', 0, n), buffer]);
      next = buffer === first ? second : first;
    },
    () => next,
  );
  assert.equal(ok, true, 'this Node has the onread slots');
  let dataEvents = 0;
  accepted.on('data', () => dataEvents++);
  const ended = new Promise((resolve) => accepted.once('end', resolve));
  accepted.resume();
  client.write('abc');
  await new Promise((r) => setTimeout(r, 100));
  client.end('defgh');
  await ended;
  assert.equal(reads.map(([text]) => text).join(''), 'abcdefgh');
  assert.equal(reads[0]![1], first);
  if (reads.length > 1) assert.equal(reads[1]![1], second);
  assert.equal(dataEvents, 0, "no 'data' events in onread mode");
  accepted.destroy();
});

test('readIntoUserBuffer: pause() stops reads, resume() restarts them', async () => {
  const { accepted, client } = await acceptedPair();
  let got = '';
  const buf = Buffer.alloc(64);
  assert.equal(readIntoUserBuffer(accepted, buf, (n, b) => void (got += b.toString('latin1', 0, n)), () => buf), true);
  accepted.resume();
  client.write('one');
  await new Promise((r) => setTimeout(r, 100));
  accepted.pause();
  client.write('two');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(got, 'one');
  accepted.resume();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(got, 'onetwo');
  accepted.destroy();
  client.destroy();
});

test('readIntoUserBuffer: false, nothing changed, for a destroyed socket', async () => {
  const { accepted, client } = await acceptedPair();
  accepted.destroy();
  client.destroy();
  assert.equal(readIntoUserBuffer(accepted, Buffer.alloc(8), () => {}, () => Buffer.alloc(8)), false);
});
