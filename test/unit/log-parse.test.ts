// parseLogLine (src/log-parse.ts) is the inverse of formatEvent (src/events.ts): every value comes back as it was.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatEvent, type ServerEvent } from '../../src/events.js';
import { parseLogLine, unescapeLogValue } from '../../src/log-parse.js';

const v4 = (port: number) => ({ address: '127.0.0.1', port, family: 'IPv4' as const });

describe('parseLogLine', () => {
  it('decodes each message once: spaces, quotes, backslashes, control characters, other code points', () => {
    const text = 'a "b" c\\x20d\ttab\nnewline é ✓';
    for (const e of [
      { type: 'error', where: 'spawn', code: 'ENOENT', id: 2, message: text },
      { type: 'reload', ok: false, kept: 0, started: 0, stopped: 0, message: text },
      { type: 'restart', state: 'failed', pid: 7, message: text },
      { type: 'refuse', remote: v4(1), local: v4(2), reason: 'proxy-malformed', message: text },
    ] satisfies ServerEvent[]) {
      const line = formatEvent(e);
      assert.equal(parseLogLine(line).fields.message, text, line);
    }
  });

  it('reads connection events, positional words and pairs', () => {
    const accept = parseLogLine(formatEvent({ type: 'accept', id: 3, local: v4(9877), remote: v4(51234), pid: 42, count: 1, max: 40 }));
    assert.deepEqual(accept, {
      event: 'accept',
      conn: { remote: '127.0.0.1:51234', local: '127.0.0.1:9877', family: 'IPv4' },
      positional: [],
      fields: { pid: '42', count: '1/40', id: '3' },
    });
    const listen = parseLogLine(formatEvent({ type: 'listen', local: v4(9877), model: 'fork', service: 'echo', pid: 1, max: 40 }));
    assert.deepEqual(listen.positional, ['127.0.0.1:9877', 'IPv4']);
    assert.equal(listen.fields.model, 'fork');
    const ok = parseLogLine(formatEvent({ type: 'reload', ok: true, kept: 1, started: 2, stopped: 3 }));
    assert.deepEqual(ok, { event: 'reload', positional: ['ok'], fields: { kept: '1', started: '2', stopped: '3' } });
    assert.equal(parseLogLine(formatEvent({ type: 'stderr', pid: 5, id: 1, text: 'cat: write error' })).fields.text, 'cat: write error');
  });

  it('refuses what is not a log line', () => {
    assert.throws(() => parseLogLine('Error: boom'), SyntaxError);
    assert.throws(() => parseLogLine('accept 1.2.3.4:5 pid 1'), SyntaxError);
    assert.throws(() => parseLogLine('error where'), SyntaxError);
    assert.equal(unescapeLogValue('\\\\x20'), '\\x20');
  });
});
