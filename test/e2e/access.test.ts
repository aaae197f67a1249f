// Access rules (tcprules-style): addresses and CIDR blocks, IPv4 and IPv6,
// IPv4-mapped IPv6, first match wins, variables added by a rule.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { AccessRules, ipBytes, unmapIPv4 } from '../../dist/admission/access.js';
import { createServer } from '../../dist/index.js';
import { ROOT, connectTo, eventually, startServer, waitClose } from '../helpers.js';
import { ask, hasIPv6, stopAll } from '../exec-helpers.js';

const PEER = path.join(ROOT, 'test', 'fixtures', 'ucspi-peer.js');
const rules = (...specs) => new AccessRules(specs.map(([action, from, env]) => ({ action, from, env })));
const verdict = (r, address) => {
  const d = r.check(address);
  return d.ok ? `allow ${d.rule}` : `deny ${d.rule}`;
};

describe('AccessRules', () => {
  it('parses IPv4, IPv6 and embedded-IPv4 literals to 16 bytes', () => {
    assert.deepEqual([...ipBytes('1.2.3.4')], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4]);
    assert.deepEqual([...ipBytes('::ffff:1.2.3.4')], [...ipBytes('1.2.3.4')]);
    assert.deepEqual([...ipBytes('::1')], [...new Array(15).fill(0), 1]);
    assert.deepEqual([...ipBytes('fe80::1:2')], [0xfe, 0x80, ...new Array(10).fill(0), 0, 1, 0, 2]);
    assert.deepEqual([...ipBytes('1::')], [0, 1, ...new Array(14).fill(0)]);
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

describe('serve --allow/--deny', () => {
  const servers = [];
  after(async () => {
    await stopAll(servers);
  });

  it('allows 127.0.0.1, denies 127.0.0.2 at once without spawning anything, and logs the rule', async () => {
    const srv = await startServer(['--allow', '127.0.0.1', '--deny', '127.0.0.2', '--exec', '--', process.execPath, PEER]);
    servers.push(srv);
    const ok = await ask(srv.port);
    assert.equal(ok.env.TCPREMOTEIP, '127.0.0.1');
    for (const source of ['127.0.0.2', '127.0.0.3']) {
      const s = await connectTo(srv.port, { source });
      const t0 = Date.now();
      const how = await waitClose(s, 10_000);
      s.destroy();
      assert.ok(how === 'end' || how === 'ECONNRESET', how);
      assert.ok(Date.now() - t0 < 5000, 'denied connection not closed at once');
    }
    await srv.waitFor(/deny 127\.0\.0\.2:\d+ -> 127\.0\.0\.1:\d+ IPv4 reason access rule deny:127\.0\.0\.2\/32/);
    await srv.waitFor(/deny 127\.0\.0\.3:\d+ -> 127\.0\.0\.1:\d+ IPv4 reason access rule default-deny/);
    assert.equal((srv.log().match(/^accept /gm) ?? []).length, 1, 'a denied connection was handed to a program');
  });

  it('on a dual-stack listener, matches IPv4 peers seen as ::ffff:a.b.c.d and gives the program IPv4', { skip: hasIPv6() ? false : 'no IPv6 here' }, async () => {
    const srv = await startServer(['--host', '::', '--deny', '127.0.0.2', '--exec', '--', process.execPath, PEER]);
    servers.push(srv);
    const ok = await ask(srv.port);
    assert.equal(ok.env.TCPREMOTEIP, '127.0.0.1');
    assert.equal(ok.peer.address, '::ffff:127.0.0.1'); // what getpeername says on a v6 socket
    const s = await connectTo(srv.port, { source: '127.0.0.2' });
    await waitClose(s);
    s.destroy();
    await srv.waitFor(/deny \[::ffff:127\.0\.0\.2\]:\d+ -> \S+ IPv6 reason access rule deny:127\.0\.0\.2\/32/);
  });

  it('adds a rule\'s variables to the program\'s environment and counts denials (library)', async () => {
    const server = createServer({
      host: '127.0.0.1',
      port: 0,
      service: { name: 'exec', options: { argv: [process.execPath, PEER] } },
      access: [
        { action: 'deny', from: '127.0.0.2' },
        { action: 'allow', from: '127.0.0.0/8', env: { FIXTURE_RULE: 'loopback', TCPCONNNUM: 'overridden' } },
      ],
    });
    const events = [];
    server.on('event', (e) => events.push(e));
    const { port } = await server.listen();
    try {
      const r = await ask(port, { source: '127.0.0.3' });
      assert.equal(r.env.FIXTURE_RULE, 'loopback');
      assert.equal(r.env.TCPCONNNUM, 'overridden'); // rules come last, as tcprules' do
      const s = await connectTo(port, { source: '127.0.0.2' });
      await waitClose(s);
      s.destroy();
      await eventually(() => server.stats().denied === 1, { message: 'denied counted' });
      const deny = events.find((e) => e.type === 'deny');
      assert.equal(deny.remote.address, '127.0.0.2');
      assert.equal(deny.rule, 'deny:127.0.0.2/32');
    } finally {
      await server.close({ grace: 5 });
    }
  });
});
