// The super-server's config file: schema errors that name the file, the field and what is wrong;
// handler modules resolved relative to the file.
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { parseConfig } from '../../../src/super/config.js';
import { ROOT, errnoOf } from '../../helpers.js';

const UPPER = path.join(ROOT, 'test', 'fixtures', 'upper-handler.js');

describe('config file', () => {
  it('resolves a handler module relative to the config file', () => {
    const c = parseConfig('services:\n  up:\n    listen: 127.0.0.1:0\n    handler: ../fixtures/upper-handler.js\n', path.join(ROOT, 'test', 'conf', 'x.yaml'));
    const service = c.services[0]?.options.service;
    assert.equal(typeof service === 'object' ? service.handler : service, pathToFileURL(UPPER).href);
  });

  it('execStderr: an exec service\'s program stderr, as --exec-stderr; refused elsewhere or with another word', () => {
    const svc = (extra: string): string => `services:\n  s:\n    listen: [127.0.0.1:0]\n${extra}`;
    const options = (text: string) => {
      const service = parseConfig(text, 'x.yaml').services[0]?.options.service;
      return typeof service === 'object' ? service.options : undefined;
    };
    assert.equal(options(svc('    exec: [/bin/cat]\n    execStderr: inherit\n'))?.stderr, 'inherit');
    assert.equal(options(svc('    exec: [/bin/cat]\n    execStderr: log\n'))?.stderr, undefined, 'log is the default');
    assert.equal(options(svc('    exec: [/bin/cat]\n'))?.stderr, undefined);
    assert.throws(() => parseConfig(svc('    internal: echo\n    execStderr: inherit\n'), 'x.yaml'), /x\.yaml: services\.s\.execStderr: applies to exec services/);
    assert.throws(() => parseConfig(svc('    exec: [/bin/cat]\n    execStderr: pipe\n'), 'x.yaml'), /x\.yaml: services\.s\.execStderr: .*(log|inherit)/);
  });

  it('refuses broken configs with the file, the field path and what is wrong', () => {
    const bad = (text: string): string => {
      try {
        parseConfig(text, 'bad.yaml');
      } catch (err) {
        assert.equal(errnoOf(err).code, 'TCPKIT_CONFIG');
        return errnoOf(err).message;
      }
      assert.fail(`accepted: ${text}`);
    };
    const svc = (extra: string): string => `services:\n  echo:\n    listen: [127.0.0.1:0]\n${extra}`;
    assert.equal(bad(svc('    internal: echo\n    limits: { perSource: lots }\n')), 'bad.yaml: services.echo.limits.perSource: must be an integer from 0 to 1000000, got "lots"');
    assert.equal(bad(svc('    internal: echo\n    limts: {}\n')), 'bad.yaml: services.echo.limts: unknown field');
    assert.equal(bad(svc('    internal: echo\n    exec: [/bin/cat]\n')), 'bad.yaml: services.echo: needs exactly one of internal, exec, handler (got internal, exec)');
    assert.match(bad(svc('    internal: nosuch\n')), /^bad\.yaml: services\.echo\.internal: must be one of echo, discard, daytime, chargen, time/);
    assert.match(bad(svc('    exec: [/no/such/program]\n')), /^bad\.yaml: services\.echo\.exec: program "\/no\/such\/program" not found/);
    assert.match(bad(svc('    internal: echo\n    access:\n      - allow: 127.0.0.1\n      - deny: 1.2.3\n')), /^bad\.yaml: services\.echo\.access\[1\]\.deny: expected an IP address/);
    assert.match(bad(svc('    internal: echo\n    access:\n      - { allow: all, deny: all }\n')), /^bad\.yaml: services\.echo\.access\[0\]: needs exactly one of allow, deny/);
    assert.match(bad('services:\n  echo:\n    listen: [127.0.0.1:99999]\n    internal: echo\n'), /^bad\.yaml: services\.echo\.listen\[0\]: must be an integer from 0 to 65535/);
    assert.match(bad(svc('    internal: echo\n    model: nosuch\n')), /^bad\.yaml: services\.echo\.model: must be one of fork/);
    assert.equal(bad('services:\n  echo:\n    internal: echo\n'), 'bad.yaml: services.echo.listen: is required');
    assert.match(bad('services: [\n'), /^bad\.yaml: not valid YAML: /);
    assert.match(bad('user: no-such-user-here\nservices:\n  e:\n    listen: 127.0.0.1:0\n    internal: echo\n'), /^bad\.yaml: user: no such user "no-such-user-here"/);
    const twice = 'services:\n  a:\n    listen: 127.0.0.1:7007\n    internal: echo\n  b:\n    listen: 127.0.0.1:7007\n    internal: discard\n';
    assert.equal(bad(twice), 'bad.yaml: services.b.listen[0]: 127.0.0.1:7007 is also a listen address of services.a');
  });
});
