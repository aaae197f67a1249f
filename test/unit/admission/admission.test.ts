// The one admission: identify → access → per-source place → rate → id → environment, the same unit the pipeline and
// every pool worker run; what it refuses takes no place and no id.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Admission, identify } from '../../../src/admission/admission.js';
import { AccessRules } from '../../../src/admission/access.js';
import { SourceLimits } from '../../../src/admission/limits.js';
import type { ConnectionInfo } from '../../../src/address.js';
import { acceptedPair } from '../../helpers.js';

const local = { address: '127.0.0.1', port: 9877, family: 'IPv4' as const };
const from = (address: string): ConnectionInfo => ({ id: 0, local, remote: { address, port: 40000, family: 'IPv4' }, acceptedAt: 5 });

function unit(options: { perSource?: number; rate?: number; rules?: ConstructorParameters<typeof AccessRules>[0] } = {}) {
  let next = 100;
  const ids: number[] = [];
  const sources = new SourceLimits({ perSource: options.perSource ?? 0, rate: options.rate ?? 0 });
  const admission = new Admission(new AccessRules(options.rules ?? []), sources, () => {
    ids.push(next);
    return next++;
  });
  return { admission, sources, ids };
}

test('admitted: the next id, TCPCONNNUM counting the source, the rule variables, the ends as identified', () => {
  const { admission } = unit({ rules: [{ action: 'allow', from: '127.0.0.0/8', env: { ZONE: 'lo' } }] });
  const a = admission.admit(from('127.0.0.1'));
  const b = admission.admit(from('::ffff:127.0.0.1'));
  assert.ok(a.ok && b.ok);
  assert.deepEqual([a.info.id, b.info.id], [100, 101]);
  assert.deepEqual(a.env, { TCPCONNNUM: '1', ZONE: 'lo' });
  assert.deepEqual(b.env, { TCPCONNNUM: '2', ZONE: 'lo' });
  assert.deepEqual(a.info, { id: 100, local, remote: { address: '127.0.0.1', port: 40000, family: 'IPv4' }, acceptedAt: 5 });
  admission.release(a.place);
  const c = admission.admit(from('127.0.0.1'));
  assert.ok(c.ok);
  assert.equal(c.env.TCPCONNNUM, '2');
});

test('in order: access, then the per-source place, then the rate; a refusal takes no place, no token and no id', () => {
  const { admission, sources, ids } = unit({ perSource: 1, rate: 2, rules: [{ action: 'deny', from: '127.0.0.9' }] });
  const denied = admission.admit(from('127.0.0.9'));
  assert.deepEqual(denied, { ok: false, event: { type: 'deny', remote: from('127.0.0.9').remote, local, reason: 'access', rule: 'deny:127.0.0.9/32' } });
  assert.equal(sources.count('127.0.0.9'), 0);
  const first = admission.admit(from('127.0.0.1'));
  assert.ok(first.ok);
  const second = admission.admit(from('127.0.0.1'));
  assert.deepEqual(second, { ok: false, event: { type: 'refuse', remote: from('127.0.0.1').remote, local, reason: 'per-source' } });
  admission.release(first.place);
  // The per-source refusal spent no token: the second of the bucket's two is still there.
  assert.ok(admission.admit(from('127.0.0.1')).ok);
  assert.deepEqual(sources.stats().refused, { 'per-source': 1, rate: 0 });
  assert.deepEqual(ids, [100, 101], 'ids only for the admitted');
});

test('the rate refuses once the bucket is spent', () => {
  const { admission } = unit({ rate: 2 });
  const now = Date.now();
  assert.ok(admission.admit(from('127.0.0.1'), now).ok);
  assert.ok(admission.admit(from('127.0.0.1'), now).ok);
  const third = admission.admit(from('127.0.0.1'), now);
  assert.equal(!third.ok && third.event.type === 'refuse' && third.event.reason, 'rate');
  assert.ok(admission.admit(from('127.0.0.2'), now).ok, 'another source has its own bucket');
});

test('identify: the ends a PROXY header named travel in, and win over the socket', async () => {
  const { accepted, client } = await acceptedPair();
  try {
    const real = identify(accepted)!;
    assert.equal(real.remote.port, client.localPort);
    assert.equal(real.id, 0);
    const announced = { local, remote: { address: '192.0.2.7', port: 1234, family: 'IPv4' as const }, via: { local: real.local, remote: real.remote, version: 1 as const } };
    const info = identify(accepted, undefined, announced)!;
    assert.deepEqual([info.remote, info.local, info.via], [announced.remote, local, announced.via]);
  } finally {
    accepted.destroy();
    client.destroy();
  }
});
