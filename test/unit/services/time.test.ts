// time (RFC 868): the four bytes it sends.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { timeBytes } from '../../../src/services/time.js';

describe('time (RFC 868)', () => {
  it('encodes seconds since 1900 as 32-bit big-endian', () => {
    assert.deepEqual([...timeBytes(new Date(0))], [0x83, 0xaa, 0x7e, 0x80]); // 2,208,988,800
    assert.equal(timeBytes(new Date('2026-11-25T12:00:00Z')).readUInt32BE(), Date.UTC(2026, 10, 25, 12) / 1000 + 2_208_988_800);
  });
});
