// Access rules (tcprules-style): addresses and CIDR blocks, IPv4 and IPv6,
// IPv4-mapped IPv6, first match wins, variables added by a rule.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessRules, ipBytes, unmapIPv4, type AccessRuleSpec } from '../../../src/admission/access.js';

type RuleTuple = [action: AccessRuleSpec['action'], from: string, env?: Record<string, string>];
const rules = (...specs: RuleTuple[]): AccessRules => new AccessRules(specs.map(([action, from, env]) => ({ action, from, env })));
const verdict = (r: AccessRules, address: string): string => {
  const d = r.check(address);
  return d.ok ? `allow ${d.rule}` : `deny ${d.rule}`;
};

describe('AccessRules', () => {
  it('parses IPv4, IPv6 and embedded-IPv4 literals to 16 bytes', () => {
    assert.deepEqual([...ipBytes('1.2.3.4')!], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4]);
    assert.deepEqual([...ipBytes('::ffff:1.2.3.4')!], [...ipBytes('1.2.3.4')!]);
    assert.deepEqual([...ipBytes('::1')!], [...new Array(15).fill(0), 1]);
    assert.deepEqual([...ipBytes('fe80::1:2')!], [0xfe, 0x80, ...new Array(10).fill(0), 0, 1, 0, 2]);
    assert.deepEqual([...ipBytes('1::')!], [0, 1, ...new Array(14).fill(0)]);
    assert.equal(ipBytes('example.com'), undefined);
    assert.equal(unmapIPv4('::ffff:127.0.0.2'), '127.0.0.2');
    assert.equal(unmapIPv4('::1'), '::1');
  });

  it('matches addresses and CIDR blocks, IPv4 and IPv6; the first match wins', () => {
    const r = rules(['deny', '127.0.0.2'], ['allow', '127.0.0.0/8'], ['allow', '10.0.0.0/8'], ['deny', 'fe80::/10'], ['allow', '::1']);
    assert.equal(verdict(r, '127.0.0.1'), 'allow allow:127.0.0.0/8');
    assert.equal(verdict(r, '127.0.0.2'), 'deny deny:127.0.0.2/32');
    assert.equal(verdict(r, '10.255.1.2'), 'allow allow:10.0.0.0/8');
    assert.equal(verdict(r, '11.0.0.1'), 'deny default-deny');
    assert.equal(verdict(r, 'febf::1'), 'deny deny:fe80::/10');
    assert.equal(verdict(r, 'fec0::1'), 'deny default-deny');
    assert.equal(verdict(r, '::1'), 'allow allow:::1/128');
    // Order matters: the same rules the other way round allow 127.0.0.2.
    assert.equal(verdict(rules(['allow', '127.0.0.0/8'], ['deny', '127.0.0.2']), '127.0.0.2'), 'allow allow:127.0.0.0/8');
  });

  it('treats IPv4-mapped IPv6 peers as IPv4', () => {
    const r = rules(['deny', '127.0.0.2/32'], ['allow', '::ffff:0:0/96']);
    assert.equal(verdict(r, '::ffff:127.0.0.2'), 'deny deny:127.0.0.2/32');
    assert.equal(verdict(r, '192.0.2.7'), 'allow allow:::ffff:0:0/96');
    assert.equal(verdict(r, '::1'), 'deny default-deny');
  });

  it('defaults: no rules or only deny rules allow; any allow rule makes unmatched peers denied', () => {
    assert.equal(verdict(rules(), '1.2.3.4'), 'allow default-allow');
    assert.equal(verdict(rules(['deny', '10.0.0.0/8']), '1.2.3.4'), 'allow default-allow');
    assert.equal(verdict(rules(['allow', '10.0.0.0/8']), '1.2.3.4'), 'deny default-deny');
    assert.equal(verdict(rules(['allow', '10.0.0.0/8'], ['allow', 'all']), '1.2.3.4'), 'allow allow:all');
  });

  it('carries a rule\'s variables', () => {
    const d = rules(['allow', '127.0.0.1', { RELAYCLIENT: '' }]).check('127.0.0.1');
    assert.deepEqual(d, { ok: true, env: { RELAYCLIENT: '' }, rule: 'allow:127.0.0.1/32' });
  });

  it('rejects bad rules, naming the rule', () => {
    assert.throws(() => rules(['allow', '300.1.1.1']), { code: 'TCPKIT_INVALID_OPTION', message: /^access\[0\]\.allow: expected an IP address/ });
    assert.throws(() => rules(['allow', '::1'], ['deny', '10.0.0.0/33']), { message: /^access\[1\]\.deny: prefix length must be 0 to 32/ });
    assert.throws(() => rules(['allow', '::1', { 'BAD NAME': 'x' }]), { message: /^access\[0\]\.allow\.env: "BAD NAME"/ });
  });
});

