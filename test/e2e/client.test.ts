// `tcpkit client` as people type it: a bracketed IPv6 literal as `serve --host` takes it, and a --proxy-source
// of the other family than the server: one line and exit 100 (it was an uncaught TypeError, exit 1).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { run, startServer, type StartedServer } from '../helpers.js';
import { hasIPv6 } from '../exec-helpers.js';

describe('tcpkit client', () => {
  const servers: StartedServer[] = [];
  after(async () => {
    for (const s of servers) await s.stop('SIGKILL');
  });

  it("'[::1]' PORT connects to ::1", { skip: hasIPv6() ? false : 'no IPv6 loopback' }, async () => {
    const srv = await startServer(['--host', '[::1]']);
    servers.push(srv);
    const r = await run(['client', '[::1]', String(srv.port)], { input: 'six\n' });
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    assert.equal(r.stdout.toString(), 'six\n');
  });

  it('--proxy-source of the other family: one line naming both, exit 100', async () => {
    const srv = await startServer(['--proxy-protocol']);
    servers.push(srv);
    const r = await run(['client', '127.0.0.1', String(srv.port), '--proxy-protocol', 'v1', '--proxy-source', '[2001:db8::1]:5000'], { input: 'x' });
    assert.equal(r.code, 100);
    assert.equal(
      r.stderr,
      `tcpkit: client: --proxy-source: source 2001:db8::1 is IPv6 but the server 127.0.0.1:${srv.port} is IPv4: a PROXY header names two addresses of one family\n`,
    );
  });
});
