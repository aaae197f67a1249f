// The one connection path: admission, accounting and the events, without sockets (admit() takes what a worker sends).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionPipeline, reserveConnectionIds } from '../../../src/connection/pipeline.js';
import { AccessRules } from '../../../src/admission/access.js';
import { ServiceBudget } from '../../../src/admission/budget.js';
import type { ServerEvent } from '../../../src/events.js';
import type { ConnectionInfo } from '../../../src/address.js';

const local = { address: '127.0.0.1', port: 9877, family: 'IPv4' as const };
const from = (address: string): ConnectionInfo => ({ id: 0, local, remote: { address, port: 40000, family: 'IPv4' }, acceptedAt: Date.now() });

function pipeline(options: { maxConns?: number; perSource?: number; deny?: string } = {}) {
  const events: ServerEvent[] = [];
  const calls: string[] = [];
  const budget = new ServiceBudget({ perSource: options.perSource ?? 0, rate: 0, maxConns: options.maxConns ?? 40 });
  const access = new AccessRules(options.deny ? [{ action: 'deny', from: options.deny }] : []);
  const p = new ConnectionPipeline(
    { access, budget },
    { emit: (e) => events.push(e), pause: () => (calls.push('pause'), true), resume: () => (calls.push('resume'), true) },
  );
  budget.join(p);
  return { p, events, calls, types: () => events.map((e) => e.type) };
}

test('admitted, opened, closed: accept then end, each once, with ids unique in the process', () => {
  const { p, events, types } = pipeline();
  const conn = p.admit(from('127.0.0.1'))!;
  const first = conn.info.id;
  assert.ok(first >= 1);
  assert.equal(conn.env.TCPCONNNUM, '1');
  conn.opened(4242);
  conn.opened(4242);
  assert.deepEqual(p.stats().connections.map((c) => [c.id, c.pid]), [[first, 4242]]);
  conn.closed(0, null);
  conn.closed(0, null);
  assert.deepEqual(types(), ['accept', 'end']);
  assert.deepEqual({ accepted: p.accepted, ended: p.ended, active: p.active }, { accepted: 1, ended: 1, active: 0 });
  const end = events[1] as Extract<ServerEvent, { type: 'end' }>;
  assert.equal(end.pid, 4242);
  assert.equal(p.admit(from('127.0.0.1'))!.info.id, first + 1);
});

test('denied by a rule, refused per source; a connection that never opened logs no end but frees its place', () => {
  const { p, types } = pipeline({ deny: '127.0.0.8/29', perSource: 1 });
  assert.equal(p.admit(from('127.0.0.9')), undefined);
  const first = p.admit(from('127.0.0.1'))!;
  assert.equal(p.admit(from('127.0.0.1')), undefined);
  first.closed();
  assert.ok(p.admit(from('127.0.0.1')), 'the place is free again');
  assert.deepEqual(types(), ['deny', 'refuse']);
  assert.equal(p.stats().denied, 1);
});

test('pauses at maxConns and resumes below it', () => {
  const { p, calls, types } = pipeline({ maxConns: 2 });
  const a = p.admit(from('127.0.0.1'))!;
  const b = p.admit(from('127.0.0.1'))!;
  a.opened(1);
  b.opened(1);
  assert.deepEqual(calls, ['pause']);
  a.closed();
  assert.deepEqual(calls, ['pause', 'resume']);
  assert.deepEqual(types(), ['accept', 'accept', 'pause', 'end', 'resume']);
});

test('a service log: idle and time-limit closes become kill ... signal close, anything else an error line', () => {
  const { p, events } = pipeline();
  const conn = p.admit(from('127.0.0.1'))!;
  conn.opened(7);
  conn.log('no traffic for 10 ms', 'idle');
  conn.log('bad request', 'EPROTO');
  conn.failed('TCPKIT_HANDLER', 'boom');
  assert.deepEqual(events.slice(1), [
    { type: 'kill', pid: 7, signal: 'close', reason: 'idle' },
    { type: 'error', where: 'service', code: 'EPROTO', message: 'bad request', id: conn.info.id, pid: 7 },
    { type: 'error', where: 'service', code: 'TCPKIT_HANDLER', message: 'boom', id: conn.info.id, pid: 7 },
  ]);
  assert.equal(p.stats().limits.closed.idle, 1, 'counted as closed by the idle limit');
});

test('adopt: a connection a worker admitted and numbered itself is counted and logged as any other', () => {
  const { p, events, types } = pipeline();
  const from1 = reserveConnectionIds(10);
  const from2 = reserveConnectionIds(10);
  assert.equal(from2, from1 + 10, 'blocks do not overlap');
  assert.ok(p.admit(from('127.0.0.1'))!.info.id >= from2 + 10, 'nor do they meet the ids admit() gives');
  const info = { ...from('127.0.0.1'), id: from1, acceptedAt: 1000 };
  const conn = p.adopt(info, { TCPCONNNUM: '1' });
  conn.opened(77);
  conn.closed(null, null, 1250);
  p.emit({ type: 'deny', remote: info.remote, local: info.local, reason: 'access', rule: 'deny:127.0.0.8/29' });
  assert.deepEqual(types(), ['accept', 'end', 'deny']);
  const end = events[1] as Extract<ServerEvent, { type: 'end' }>;
  assert.deepEqual([end.id, end.pid, end.ms], [from1, 77, 250], 'the duration is the worker\'s');
  assert.equal(p.stats().denied, 1, 'a deny reported by a worker is counted');
});

test('adopt holds no place (the worker gave its own back); a dead worker\'s unreported connections count as accepted and ended', () => {
  const { p } = pipeline({ perSource: 1 });
  const conn = p.adopt({ ...from('127.0.0.1'), id: reserveConnectionIds(1) });
  conn.opened(77);
  conn.closed();
  assert.equal(p.stats().limits.sources, 0);
  const held = p.admit(from('127.0.0.1'))!;
  assert.ok(held, 'the source still has its one place: adopt took none and its end gave none back');
  p.emit({ type: 'error', where: 'worker', code: 'TCPKIT_WORKER_LOST', pid: 77, unreported: 3, message: 'worker ended (signal SIGKILL) with 3 connections unreported' });
  assert.deepEqual([p.stats().accepted, p.stats().ended, p.stats().active], [4, 4, 0]);
  held.closed();
});
