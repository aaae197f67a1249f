// UNIX-domain addresses in a config file: `unix:PATH` beside TCP ones, unixMode/unixOwner checked, one path per file.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../../src/super/config.js';
import { errnoOf } from '../../helpers.js';

const bad = (text: string): string => {
  try {
    parseConfig(text, 'u.yaml');
  } catch (err) {
    assert.equal(errnoOf(err).code, 'TCPKIT_CONFIG');
    return errnoOf(err).message;
  }
  assert.fail(`accepted: ${text}`);
};

describe('config: unix: addresses', () => {
  it('a service mixes UNIX and TCP addresses', () => {
    const c = parseConfig('services:\n  e:\n    internal: echo\n    listen: ["unix:/run/e.sock", "unix:@e", "127.0.0.1:7"]\n    unixMode: "0600"\n    unixOwner: "root:root"\n', 'u.yaml');
    const listen = c.services[0]!.listen;
    assert.deepEqual(listen.map((a) => a.path), ['/run/e.sock', '@e', undefined]);
    assert.equal(listen[2]!.port, 7);
    assert.equal(c.services[0]!.options.unixMode, '0600');
  });

  it('refuses a bad mode, an unknown owner, an empty path and one path in two services', () => {
    const svc = (extra: string) => `services:\n  e:\n    internal: echo\n    listen: ["unix:/run/e.sock"]\n${extra}`;
    assert.match(bad(svc('    unixMode: "0999"\n')), /^u\.yaml: services\.e\.unixMode: must be octal permissions from 0000 to 0777, got "0999"/);
    assert.match(bad(svc('    unixOwner: "no-such-user-x"\n')), /^u\.yaml: services\.e\.unixOwner: no such user "no-such-user-x"/);
    assert.match(bad('services:\n  e:\n    internal: echo\n    listen: ["unix:"]\n'), /^u\.yaml: services\.e\.listen\[0\]: must be a socket path or @name, got ""/);
    assert.match(
      bad('services:\n  a:\n    internal: echo\n    listen: ["unix:/run/x.sock"]\n  b:\n    internal: echo\n    listen: ["unix:/run/x.sock"]\n'),
      /services\.b\.listen\[0\]: unix:\/run\/x\.sock is also a listen address of services\.a/,
    );
  });
});
