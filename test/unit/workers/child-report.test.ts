// The report channel of fork children and spares: records are checked both ways, lines are bounded, and text a
// child writes on its own can never read as a record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import {
  decodeReport,
  encodeReport,
  escapeStderr,
  MAX_REPORT_LINE,
  RECORD_MARK,
  ReportReader,
  type ChildReport,
} from '../../../src/workers/child-report.js';

test('a record survives the trip with newlines and quotes in its text', () => {
  const log: ChildReport = { type: 'log', reason: 'x\nINJECT end pid 1 "q" \\', code: 'PEER' };
  const line = encodeReport(log);
  assert.equal(line.indexOf('\n'), line.length - 1, 'one line');
  assert.deepEqual(decodeReport(line.slice(0, -1)), log);
  const failed: ChildReport = { type: 'failed', code: 'TCPKIT_HANDLER', message: 'boom', stack: 'Error: boom\n    at x' };
  assert.deepEqual(decodeReport(encodeReport(failed).slice(0, -1)), failed);
});

test('what is not a checked record is refused (and then logged as text by the server)', () => {
  for (const line of [
    '{"type":"log","reason":"r","code":"C"}', // no mark
    `${RECORD_MARK}not json`,
    `${RECORD_MARK}null`,
    `${RECORD_MARK}{"type":"end","pid":1}`,
    `${RECORD_MARK}{"type":"log","reason":1,"code":"C"}`,
    `${RECORD_MARK}{"type":"log","reason":"r","code":""}`,
    `${RECORD_MARK}{"type":"failed","code":"C"}`,
    `${RECORD_MARK}{"type":"failed","code":"C","message":"m","stack":5}`,
    `${RECORD_MARK}{"type":"log","reason":"${'r'.repeat(5000)}","code":"C"}`,
  ]) {
    assert.equal(decodeReport(line), undefined, line.slice(0, 60));
  }
});

test('encodeReport cuts long fields to their bounds, so its records always decode', () => {
  const line = encodeReport({ type: 'log', reason: 'r'.repeat(100_000), code: 'c'.repeat(500) });
  const back = decodeReport(line.slice(0, -1));
  assert.equal(back?.type, 'log');
  assert.ok(line.length < MAX_REPORT_LINE);
});

test('the reader splits records from text, across chunks, and bounds a line', async () => {
  const records: ChildReport[] = [];
  const text: string[] = [];
  const reader = new ReportReader((r) => records.push(r), (t) => text.push(t));
  const stream = new PassThrough();
  const done = reader.read(stream);
  const rec = encodeReport({ type: 'log', reason: 'hello', code: 'C' });
  stream.write(`plain one\n${rec.slice(0, 5)}`);
  stream.write(`${rec.slice(5)}crlf\r\n`);
  stream.write('x'.repeat(MAX_REPORT_LINE + 10));
  stream.end('\nlast without newline');
  await done;
  assert.deepEqual(records, [{ type: 'log', reason: 'hello', code: 'C' }]);
  assert.deepEqual(text.map((t) => (t.length > 40 ? `${t[0]}*${t.length}` : t)), ['plain one', 'crlf', `x*${MAX_REPORT_LINE}`, 'x'.repeat(10), 'last without newline']);
});

test('escapeStderr: a child\'s own text never starts a record line', () => {
  const forged = `a\n${RECORD_MARK}{"type":"log","reason":"forged","code":"F"}\n`;
  const out = escapeStderr(forged) as string;
  assert.ok(!out.includes(RECORD_MARK));
  assert.equal(decodeReport(out.split('\n')[1]!), undefined);
  const bytes = escapeStderr(Buffer.from(forged)) as Uint8Array;
  assert.ok(!Buffer.from(bytes).includes(0x1e));
  const plain = Buffer.from('no mark here\n');
  assert.equal(escapeStderr(plain), plain, 'unchanged text is not copied');
});
