// Access rules for UNIX-domain peers: uid:, gid:, user:, group: match a peer's credentials (SO_PEERCRED),
// never a TCP peer; address rules never match a UNIX peer; `all` matches both.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessRules } from '../../../src/admission/access.js';
import { sourceOf } from '../../../src/admission/admission.js';
import { sourceKey } from '../../../src/admission/source-table.js';

describe('access rules on credentials', () => {
  it('deny uid:65534 refuses that uid only', () => {
    const rules = new AccessRules([{ action: 'deny', from: 'uid:65534' }]);
    assert.deepEqual(rules.checkPeer({ uid: 65534, gid: 65534 }), { ok: false, rule: 'deny:uid:65534' });
    assert.equal(rules.checkPeer({ uid: 1000, gid: 1000 }).ok, true);
  });

  it('user: and group: names are looked up once; gid: matches the effective gid', () => {
    const rules = new AccessRules([
      { action: 'allow', from: 'user:root', env: { WHO: 'root' } },
      { action: 'allow', from: 'group:nogroup' },
      { action: 'allow', from: 'gid:4242' },
    ]);
    assert.deepEqual(rules.checkPeer({ uid: 0, gid: 0 }), { ok: true, env: { WHO: 'root' }, rule: 'allow:uid:0' });
    assert.deepEqual(rules.checkPeer({ uid: 7, gid: 65534 }), { ok: true, env: {}, rule: 'allow:gid:65534' });
    assert.equal(rules.checkPeer({ uid: 7, gid: 4242 }).rule, 'allow:gid:4242');
    assert.deepEqual(rules.checkPeer({ uid: 7, gid: 7 }), { ok: false, rule: 'default-deny' });
  });

  it('address rules skip UNIX peers, credential rules skip TCP peers, all matches both', () => {
    const rules = new AccessRules([{ action: 'allow', from: '0.0.0.0/0' }, { action: 'allow', from: 'uid:0' }, { action: 'deny', from: 'all' }]);
    assert.equal(rules.checkPeer({ uid: 1, gid: 1 }).rule, 'deny:all');
    assert.equal(rules.checkPeer({ uid: 0, gid: 1 }).rule, 'allow:uid:0');
    assert.equal(rules.check('127.0.0.1').rule, 'allow:0.0.0.0/0');
    assert.equal(new AccessRules([{ action: 'allow', from: 'uid:0' }]).check('127.0.0.1').rule, 'default-deny');
  });

  it('a bad credential rule names itself', () => {
    assert.throws(() => new AccessRules([{ action: 'deny', from: 'uid:nobody' }]), { message: 'access[0].deny: uid: takes a number, got "uid:nobody"' });
    assert.throws(() => new AccessRules([{ action: 'deny', from: 'user:no-such-user-x' }]), { message: /access\[0\]\.deny: no such user "no-such-user-x"/ });
  });
});

describe('per-source counting of UNIX peers', () => {
  it('by uid, apart from every IPv4 source', () => {
    assert.equal(sourceOf({ address: '', port: 0, family: 'unix', uid: 1000, gid: 1000, pid: 1 }), 'uid:1000');
    assert.equal(sourceOf({ address: '10.0.0.1', port: 5, family: 'IPv4' }), '10.0.0.1');
    assert.notDeepEqual(sourceKey('uid:1000'), sourceKey('uid:1001'));
    assert.notDeepEqual(sourceKey('uid:0'), sourceKey('0.0.0.0'));
  });
});
