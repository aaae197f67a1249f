// ProxyRefusals (src/net/proxy-gate.ts): a refusal with a peer is one `refuse` line; peerless
// ones (reset before getpeername) are folded into at most one `error where proxy` line a second.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ServerEvent } from '../../../src/events.js';
import { ProxyRefusals } from '../../../src/net/proxy-gate.js';

const truncated = { reason: 'truncated', code: 'TCPKIT_PROXY_TRUNCATED', message: 'connection reset after 0 bytes, before the PROXY header was complete' };
const real = {
  local: { address: '127.0.0.1', port: 7, family: 'IPv4' as const },
  remote: { address: '127.0.0.1', port: 40000, family: 'IPv4' as const },
};

describe('ProxyRefusals', () => {
  it('a known peer: one refuse line each, within the grammar', () => {
    const events: ServerEvent[] = [];
    const r = new ProxyRefusals((e) => events.push(e));
    r.refuse(truncated, real);
    r.refuse(truncated, real);
    assert.equal(events.length, 2);
    assert.deepEqual(events[0], { type: 'refuse', remote: real.remote, local: real.local, reason: 'proxy-truncated', message: truncated.message });
    r.close();
  });

  it('1,000 peerless refusals: one line at once, one with the count when the second is over', async () => {
    const events: ServerEvent[] = [];
    const r = new ProxyRefusals((e) => events.push(e));
    for (let i = 0; i < 1000; i++) r.refuse(truncated, undefined);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.type, 'error');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(events.length, 2);
    assert.deepEqual({ ...events[1], message: undefined }, { type: 'error', where: 'proxy', code: 'TCPKIT_PROXY_TRUNCATED', suppressed: 999, message: undefined });
    r.close();
  });

  it('a peer that sent nothing (a TCP health check, a port scan) is not logged, known or peerless', () => {
    const events: ServerEvent[] = [];
    const r = new ProxyRefusals((e) => events.push(e));
    const probe = { ...truncated, bytes: 0 };
    for (let i = 0; i < 5; i++) r.refuse(probe, i % 2 ? real : undefined);
    r.close();
    assert.deepEqual(events, []);
    // One byte of a header is a peer that started and broke off: still logged.
    r.refuse({ ...truncated, bytes: 1, message: 'peer closed after 1 byte, before the PROXY header was complete' }, real);
    assert.equal(events.length, 1);
  });

  it('close() reports what is still counted and leaves no timer', () => {
    const events: ServerEvent[] = [];
    const r = new ProxyRefusals((e) => events.push(e));
    for (let i = 0; i < 5; i++) r.refuse(truncated, undefined);
    r.close();
    r.close();
    assert.equal(events.length, 2);
    assert.equal((events[1] as { suppressed?: number }).suppressed, 4);
  });
});
