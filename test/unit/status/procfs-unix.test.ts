// /proc/net/unix as `tcpkit status` reads it: named stream sockets, listening or connected, by inode.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseUnixTable } from '../../../src/status/procfs.js';

const TABLE = [
  'Num       RefCount Protocol Flags    Type St Inode Path',
  '0000000000000000: 00000002 00000000 00010000 0001 01 5472159 /run/echo.sock',
  '0000000000000000: 00000003 00000000 00000000 0001 03 5472180 /run/echo.sock',
  '0000000000000000: 00000003 00000000 00000000 0001 03 5472181',
  '0000000000000000: 00000002 00000000 00000000 0002 01 5472182 /run/dgram.sock',
  '0000000000000000: 00000002 00000000 00010000 0001 01 5472183 @abstract name',
  '',
].join('\n');

describe('parseUnixTable', () => {
  it('keeps named stream sockets: listening (flag __SO_ACCEPTCON) or connected; a path keeps its spaces', () => {
    assert.deepEqual(parseUnixTable(TABLE), [
      { path: '/run/echo.sock', state: 'LISTEN', inode: 5472159 },
      { path: '/run/echo.sock', state: 'CONNECTED', inode: 5472180 },
      { path: '@abstract name', state: 'LISTEN', inode: 5472183 },
    ]);
  });

  it('only the inodes asked for', () => {
    assert.deepEqual(parseUnixTable(TABLE, new Set([5472180])).map((s) => s.inode), [5472180]);
  });
});
