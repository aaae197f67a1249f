// The log grammar's renderings of what this branch added: `service NAME` under --config, `error where spawn` from a
// service's ctx.log, the stack of a failure in the JSON record only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatEvent, formatEventJson, serviceLogEvent, spawnFailedCode, type ServerEvent } from '../../src/events.js';

const local = { address: '127.0.0.1', port: 7000, family: 'IPv4' as const };

test('under --config every line names its service at its end; listen in its own field', () => {
  assert.equal(formatEvent({ type: 'end', id: 3, pid: 42, exitcode: 0, signal: null, count: 0, max: 5, ms: 12, service: 'web' }), 'end pid 42 exitcode 0 count 0/5 id 3 ms 12 service web');
  assert.equal(formatEvent({ type: 'closed', accepted: 1, served: 1, service: 'a b' }), 'closed accepted 1 served 1 service a\\x20b');
  assert.equal(formatEvent({ type: 'listen', local, model: 'fork', service: 'web', pid: 1, max: 5 }), 'listen 127.0.0.1:7000 IPv4 model fork service web pid 1 max 5');
  assert.equal(formatEvent({ type: 'shutdown', signal: 'SIGTERM', active: 0, grace: 10 }), 'shutdown signal SIGTERM active 0 grace 10');
});

test('a service that could not start its program logs `error where spawn`; other codes stay `where service`', () => {
  assert.deepEqual(serviceLogEvent(7, 99, 'spawn ENOENT /x', spawnFailedCode('ENOENT')), { type: 'error', where: 'spawn', code: 'ENOENT', message: 'spawn ENOENT /x', id: 7, pid: 99 });
  assert.deepEqual(serviceLogEvent(7, 99, 'r', 'spawn:'), { type: 'error', where: 'service', code: 'spawn:', message: 'r', id: 7, pid: 99 });
  assert.equal(serviceLogEvent(7, 99, 'r', 'PEER').type, 'error');
});

test('a failure\'s stack is in the JSON record, never in the text line', () => {
  const e: ServerEvent = { type: 'error', where: 'service', code: 'TCPKIT_HANDLER', message: 'boom', id: 1, pid: 2, stack: 'Error: boom\n    at x' };
  assert.equal(formatEvent(e), 'error where service code TCPKIT_HANDLER id 1 pid 2 message "boom"');
  assert.equal(JSON.parse(formatEventJson(e)).stack, 'Error: boom\n    at x');
});
