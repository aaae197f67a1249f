// checkTls: expiry as errors and warnings (certificates made by openssl at test time, 30 days valid).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { checkTls, EXPIRY_WARNING_DAYS } from '../../../src/tls/check.js';
import { resolveTls } from '../../../src/tls/settings.js';
import { have, makePki, type TestPki } from '../../tls-helpers.js';

const skip = have('openssl') ? false : 'openssl is not installed';
let pki: TestPki;
before(() => {
  if (!skip) pki = makePki();
});
after(() => pki?.cleanup());

describe('checkTls', { skip }, () => {
  const day = 86_400_000;
  it(`valid for 30 days: clean now; a warning within ${EXPIRY_WARNING_DAYS} days of the end; an error once expired`, () => {
    const s = resolveTls({ tlsCert: pki.chain, tlsKey: pki.key })!;
    assert.deepEqual(checkTls(s), { errors: [], warnings: [] });
    const soon = checkTls(s, Date.now() + 20 * day);
    assert.equal(soon.errors.length, 0);
    assert.match(soon.warnings.join('\n'), /tlsCert: \S+chain\.pem certificate 1 \(CN=localhost\) expires on \S+, in less than 14 days/);
    const late = checkTls(s, Date.now() + 40 * day);
    assert.match(late.errors.join('\n'), /tlsCert: \S+chain\.pem certificate 1 \(CN=localhost\) expired on /);
  });
});
