// The one protocol between the server and its workers, children and spares: specs are decoded and checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { decodeFromWorker, decodeSpec, decodeToWorker, SpecError, type WorkerSpec } from '../../../src/workers/messages.js';
import { ROOT } from '../../helpers.js';

const endpoint = { address: '127.0.0.1', port: 9877, family: 'IPv4' };
const info = { id: 1, local: endpoint, remote: { ...endpoint, port: 40000 }, acceptedAt: 1 };
const worker: WorkerSpec = { service: { name: 'echo' }, mode: 'pass', backlog: 511, limit: 10, maxConns: 0, limits: { idleMs: 0, maxMs: 0 } };
const counts = { table: { fd: 5, size: 16384 }, ledger: { fd: 6, size: 4, cells: 84 }, slot: 1, perSource: 2, rate: 0 };

test('decodes what the server sends, as JSON text or as a value (workerData)', () => {
  assert.deepEqual(decodeSpec('worker', JSON.stringify(worker)), worker);
  assert.deepEqual(decodeSpec('worker', worker), worker);
  const local: WorkerSpec = { ...worker, mode: 'shared', fd: 4, access: [{ action: 'deny', from: '127.0.0.8/29' }, { action: 'allow', from: 'all', env: { A: 'b' } }], ids: { from: 1025, count: 1024 }, counts };
  assert.deepEqual(decodeSpec('worker', JSON.stringify(local)), local);
  assert.deepEqual(decodeSpec('child', JSON.stringify({ service: { name: 'echo' }, info })), { service: { name: 'echo' }, info });
  assert.deepEqual(decodeSpec('spare', '{"service":{"name":"discard","options":{}}}'), { service: { name: 'discard', options: {} } });
});

test('a missing, unparsable or wrong spec fails with a message naming the variable and the field', () => {
  const fails = (kind: 'worker' | 'child' | 'spare', value: unknown, message: RegExp) =>
    assert.throws(() => decodeSpec(kind, value), (err: unknown) => err instanceof SpecError && (err as SpecError).code === 'TCPKIT_SPEC' && message.test((err as Error).message));
  fails('worker', undefined, /^TCPKIT_WORKER is not set$/);
  fails('child', '{not json', /^TCPKIT_CHILD is not JSON$/);
  fails('spare', 'null', /^TCPKIT_SPARE: expected an object, got null$/);
  fails('worker', { ...worker, mode: 'both' }, /^TCPKIT_WORKER\.mode: expected shared or pass, got "both"$/);
  fails('worker', { ...worker, limit: '10' }, /^TCPKIT_WORKER\.limit: expected an integer >= 0, got "10"$/);
  fails('worker', { ...worker, limits: { idleMs: 0 } }, /^TCPKIT_WORKER\.limits\.maxMs: /);
  fails('worker', { ...worker, proxy: { versions: [3] } }, /^TCPKIT_WORKER\.proxy\.versions: /);
  fails('worker', { ...worker, service: { handler: 'x.js' } }, /^TCPKIT_WORKER\.service\.name: expected a string/);
  fails('worker', { ...worker, mode: 'shared', ids: { from: 1, count: 10 } }, /^TCPKIT_WORKER: shared mode needs ids and counts, got ids and no counts$/);
  fails('worker', { ...worker, mode: 'shared', counts, ids: { from: 0, count: 10 } }, /^TCPKIT_WORKER\.ids\.from: expected an integer >= 1, got 0$/);
  fails('worker', { ...worker, mode: 'shared', ids: { from: 1, count: 10 }, counts: { ...counts, table: { fd: -1, size: 1 } } }, /^TCPKIT_WORKER\.counts\.table\.fd: expected an integer >= 0, got -1$/);
  fails('worker', { ...worker, access: [{ action: 'permit', from: 'all' }] }, /^TCPKIT_WORKER\.access\[0\]\.action: expected allow or deny/);
  fails('worker', { ...worker, access: [{ action: 'allow', from: 'all', env: { A: 1 } }] }, /^TCPKIT_WORKER\.access\[0\]\.env\.A: expected a string/);
  fails('child', { service: { name: 'echo' }, info: { ...info, remote: { ...endpoint, port: 70000 } } }, /^TCPKIT_CHILD\.info\.remote\.port: expected a port, got 70000$/);
  fails('child', { service: { name: 'echo' }, info: { ...info, local: { ...endpoint, family: 'ipx' } } }, /^TCPKIT_CHILD\.info\.local\.family: expected IPv4, IPv6 or unix/);
  fails('child', { service: { name: 'echo' }, info: { ...info, remote: { ...endpoint, family: 'unix', uid: -1 } } }, /^TCPKIT_CHILD\.info\.remote\.uid: expected an integer >= 0/);
});

test('an entry point started by hand says what is wrong and exits 100', () => {
  for (const [entry, variable, value] of [
    ['conn.js', 'TCPKIT_CHILD', undefined],
    ['conn.js', 'TCPKIT_CHILD', '{"service":{"name":"echo"},"info":{"id":"x"}}'],
    ['prefork-worker.js', 'TCPKIT_WORKER', '[]'],
    ['spare.js', 'TCPKIT_SPARE', '{'],
  ] as const) {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.TCPKIT_CHILD;
    if (value !== undefined) env[variable] = value;
    const r = spawnSync(process.execPath, [path.join(ROOT, 'dist', 'workers', entry)], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    assert.equal(r.status, 100, `${entry}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^tcpkit \\w+: ${variable}.*; this program is started by tcpkit serve\\n$`), entry);
  }
});

test('messages both ways are decoded and checked: what is not one of them names the field', () => {
  const batch = { type: 'batch', entries: [{ k: 'open', info }, { k: 'end', id: 1, at: 2 }, { k: 'refused', event: { type: 'refuse', remote: endpoint, local: endpoint, reason: 'per-source' } }] };
  assert.deepEqual(decodeFromWorker(batch), batch);
  assert.deepEqual(decodeFromWorker({ type: 'ready' }), { type: 'ready' });
  assert.deepEqual(decodeToWorker({ type: 'connection', info, env: { TCPCONNNUM: '1' } }), { type: 'connection', info, env: { TCPCONNNUM: '1' } });
  const fails = (decode: (v: unknown) => unknown, value: unknown, message: RegExp) =>
    assert.throws(() => decode(value), (err: unknown) => err instanceof SpecError && message.test((err as Error).message));
  fails(decodeFromWorker, { type: 'accepted', ref: 1 }, /^message from worker\.type: expected ready, batch, .*, got "accepted"$/);
  fails(decodeFromWorker, { type: 'batch', entries: [{ k: 'end', id: '1', at: 2 }] }, /^message from worker\.entries\[0\]\.id: expected an integer >= 0, got "1"$/);
  fails(decodeFromWorker, { type: 'batch', entries: [{ k: 'refused', event: { type: 'error', where: 'x', code: 'y', message: 'z' } }] }, /entries\[0\]\.event\.type: expected refuse or deny/);
  fails(decodeFromWorker, { type: 'log', id: 1, reason: 2, code: 'x' }, /^message from worker\.reason: expected a string, got 2$/);
  fails(decodeFromWorker, { type: 'event', event: { type: 'listen' } }, /^message from worker\.event\.type: expected error, refuse, deny, got "listen"$/);
  fails(decodeToWorker, { type: 'connection', info, env: { TCPCONNNUM: 1 } }, /^message to worker\.env\.TCPCONNNUM: expected a string, got 1$/);
  fails(decodeToWorker, { type: 'ids', from: 0, count: 1 }, /^message to worker\.from: expected an integer >= 1, got 0$/);
  fails(decodeToWorker, null, /^message to worker: expected an object, got null$/);
});
