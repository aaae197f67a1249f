// The load generator's options: sizes with units, defaults by mode, every field checked.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSize, resolveBenchOptions } from '../../../src/bench/index.js';

describe('bench options', () => {
  it('parseSize reads binary and decimal units', () => {
    assert.equal(parseSize('4000'), 4000);
    assert.equal(parseSize('64KiB'), 65536);
    assert.equal(parseSize('1GiB'), 2 ** 30);
    assert.equal(parseSize('1G'), 2 ** 30);
    assert.equal(parseSize('1.5MB'), 1_500_000);
    assert.throws(() => parseSize('lots', 'size'), { code: 'TCPKIT_INVALID_OPTION', option: 'size' });
  });

  it('defaults depend on the mode, and every field is checked', () => {
    assert.equal(resolveBenchOptions({ port: 1 }).bytes, 4000);
    assert.equal(resolveBenchOptions({ port: 1, mode: 'echo' }).bytes, 64);
    assert.equal(resolveBenchOptions({ port: 1, mode: 'idle', idle: 5 }).clients, 100);
    assert.throws(() => resolveBenchOptions({ port: 1, mode: 'idle' }), { option: 'idle' });
    assert.throws(() => resolveBenchOptions({ port: 1, clients: 1.5 }), { option: 'clients' });
    assert.throws(() => resolveBenchOptions({ port: 1, sources: ['x'] }), { option: 'sources' });
    assert.throws(() => resolveBenchOptions({ port: 0 }), { option: 'port' });
    assert.throws(() => resolveBenchOptions({ port: 1, duration: 0 }), { option: 'duration' });
  });
});
