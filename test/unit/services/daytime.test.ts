// daytime (RFC 867): the line it sends.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { daytimeLine } from '../../../src/services/daytime.js';

describe('daytime (RFC 867)', () => {
  it('formats "Weekday, Month Day, Year HH:MM:SS-UTC" CRLF', () => {
    assert.equal(daytimeLine(new Date('2026-11-25T12:00:00Z')), 'Wednesday, November 25, 2026 12:00:00-UTC\r\n');
    assert.equal(daytimeLine(new Date('2027-01-03T04:05:06Z')), 'Sunday, January 3, 2027 04:05:06-UTC\r\n');
  });
});
