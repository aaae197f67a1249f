// The log writer (src/log.ts): a failing target drops and counts lines, never throws,
// and the first line that gets through again is preceded by one saying how many were lost.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { formatEvent } from '../../src/events.js';
import { LogWriter, logDropped, MAX_PENDING_BYTES } from '../../src/log.js';

/** The report line, as the log grammar renders it (the message's spaces become \x20). */
const report = (code: string, n: number) =>
  formatEvent({ type: 'error', where: 'log', code, suppressed: n, message: `${n} log lines dropped: write ${code}` });

/** A write(2) that fails with `code` while `failing()` says so, and records what got through. */
function target(code: string, failing: () => boolean) {
  const out: string[] = [];
  const writeSync = (_fd: number, buffer: Buffer, offset: number) => {
    if (failing()) throw Object.assign(new Error(`write ${code}`), { code });
    out.push(buffer.subarray(offset).toString());
    return buffer.length - offset;
  };
  return { out, writeSync };
}

/** A write(2) that takes 3 bytes of the first line, then fails once with `code`, then takes everything. */
function cutOnce(code: string) {
  const out: string[] = [];
  let calls = 0;
  const writeSync = (_fd: number, buffer: Buffer, offset: number) => {
    calls++;
    if (calls === 2) throw Object.assign(new Error(`write ${code}`), { code });
    const n = calls === 1 ? 3 : buffer.length - offset;
    out.push(buffer.subarray(offset, offset + n).toString());
    return n;
  };
  return { out, writeSync };
}

describe('LogWriter', () => {
  for (const code of ['EPIPE', 'ENOSPC']) {
    it(`${code}: lines are dropped and counted, then one line reports how many`, () => {
      let failing = true;
      const t = target(code, () => failing);
      const log = new LogWriter({ writeSync: t.writeSync });
      const before = logDropped();
      log.event({ type: 'pause', count: 1, max: 1 });
      log.event({ type: 'resume', count: 0, max: 1 });
      log.line('third');
      assert.equal(logDropped() - before, 3);
      assert.deepEqual(t.out, []);
      failing = false;
      log.event({ type: 'closed', accepted: 3, served: 3 });
      assert.deepEqual(t.out, [`${report(code, 3)}\n`, 'closed accepted 3 served 3\n']);
      log.line('next');
      assert.equal(t.out.at(-1), 'next\n');
      assert.equal(logDropped() - before, 3);
    });
  }

  it('EAGAIN (a full pipe): lines are held back and written in order once it drains; nothing is dropped', () => {
    let failing = true;
    const t = target('EAGAIN', () => failing);
    const log = new LogWriter({ writeSync: t.writeSync });
    const before = logDropped();
    log.event({ type: 'pause', count: 1, max: 1 });
    log.line('second');
    assert.deepEqual(t.out, []);
    assert.ok(log.pending > 0);
    failing = false;
    log.line('third');
    assert.deepEqual(t.out, ['pause count 1/1\n', 'second\n', 'third\n']);
    assert.equal(log.pending, 0);
    assert.equal(logDropped() - before, 0);
  });

  it('a line cut short by a full pipe is finished when it drains, not torn', () => {
    const { out, writeSync } = cutOnce('EAGAIN');
    const log = new LogWriter({ writeSync });
    log.line('abcdef');
    log.line('next');
    assert.equal(out.join(''), 'abcdef\nnext\n');
  });

  it('a line cut short by a failing write (EPIPE) is ended, so the next starts on its own line', () => {
    const { out, writeSync } = cutOnce('EPIPE');
    const log = new LogWriter({ writeSync });
    log.line('abcdef');
    log.line('next');
    assert.equal(out.join(''), `abc\n${report('EPIPE', 1)}\nnext\n`);
  });

  it('what a full pipe holds back is bounded: past MAX_PENDING_BYTES lines are dropped, counted and reported', () => {
    let failing = true;
    const t = target('EAGAIN', () => failing);
    const log = new LogWriter({ writeSync: t.writeSync });
    const before = logDropped();
    const line = 'x'.repeat(1023); // 1 KiB with its newline
    const fits = MAX_PENDING_BYTES / 1024;
    for (let i = 0; i < fits + 10; i++) log.line(line);
    assert.equal(log.pending, MAX_PENDING_BYTES);
    assert.equal(logDropped() - before, 10);
    failing = false;
    log.line('after');
    assert.equal(t.out.length, fits + 2);
    assert.equal(t.out[fits], `${report('EAGAIN', 10)}\n`);
    assert.equal(t.out[fits + 1], 'after\n');
  });

  it('json format reports in json; -q leaves out per-connection lines', () => {
    let failing = true;
    const t = target('EPIPE', () => failing);
    const log = new LogWriter({ writeSync: t.writeSync, format: 'json', quiet: true });
    log.line('x');
    failing = false;
    log.event({ type: 'spawn', pid: 1, role: 'worker' });
    assert.deepEqual(t.out, []);
    log.event({ type: 'closed', accepted: 0, served: 0 });
    assert.equal(JSON.parse(t.out[0]!).where, 'log');
    assert.equal(JSON.parse(t.out[0]!).suppressed, 1);
    assert.equal(JSON.parse(t.out[1]!).type, 'closed');
  });

  it('writes to a real descriptor: /dev/full drops, a file receives', () => {
    const full = fs.openSync('/dev/full', 'w');
    try {
      const before = logDropped();
      new LogWriter({ fd: full }).line('lost');
      assert.equal(logDropped() - before, 1);
    } finally {
      fs.closeSync(full);
    }
  });
});
