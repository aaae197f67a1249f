// TlsRefusals (one line a second under a flood, the rest counted) and tlsReason (OpenSSL's words → a reason).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TlsRefusals, tlsReason } from '../../../src/tls/gate.js';
import type { ServerEvent } from '../../../src/events.js';

const ends = { remote: { address: '192.0.2.1', port: 1, family: 'IPv4' as const }, local: { address: '127.0.0.1', port: 2, family: 'IPv4' as const } };

describe('TlsRefusals', () => {
  it('a flood of 1,000 refusals: the first as it is, the rest as one line when its second is over', async () => {
    const lines: ServerEvent[] = [];
    const r = new TlsRefusals((e) => lines.push(e));
    for (let i = 0; i < 1000; i++) r.refuse({ type: 'refuse', ...ends, reason: 'tls-garbage', message: 'wrong version number' });
    assert.equal(lines.length, 1);
    assert.deepEqual(lines[0], { type: 'refuse', ...ends, reason: 'tls-garbage', message: 'wrong version number' });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal(lines.length, 2);
    assert.match((lines[1] as { message: string }).message, /^999 handshakes refused in the last second, folded into this line; the last: wrong version number$/);
    r.close();
    assert.equal(lines.length, 2);
  });
});

describe('tlsReason', () => {
  const cases: Array<[Partial<NodeJS.ErrnoException>, string]> = [
    [{ code: 'ERR_SSL_UNSUPPORTED_PROTOCOL', message: 'unsupported protocol' }, 'tls-version'],
    [{ code: 'ERR_SSL_WRONG_VERSION_NUMBER', message: 'wrong version number' }, 'tls-garbage'],
    [{ code: 'ERR_SSL_HTTP_REQUEST', message: 'http request' }, 'tls-garbage'],
    [{ code: 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', message: 'peer did not return a certificate' }, 'tls-no-cert'],
    [{ code: 'ERR_SSL_NO_SHARED_CIPHER', message: 'no shared cipher' }, 'tls-cipher'],
    [{ code: 'ECONNRESET', message: 'read ECONNRESET' }, 'tls-closed'],
    [{ code: 'ERR_SOMETHING', message: 'else' }, 'tls-handshake'],
  ];
  for (const [err, reason] of cases) it(`${err.code} → ${reason}`, () => assert.equal(tlsReason(err as NodeJS.ErrnoException), reason));
});
