// Access rules in the server (serve --allow/--deny, the library's `access`): denied peers closed at once and
// logged with the rule, IPv4-mapped peers judged as IPv4, a rule's variables given to the program.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createServer } from '../../dist/index.js';
import type { ServerEvent } from '../../dist/events.js';
import { ROOT, connectTo, eventually, startServer, waitClose, type StartedServer } from '../helpers.js';
import { ask, hasIPv6, stopAll } from '../exec-helpers.js';

const PEER = path.join(ROOT, 'test', 'fixtures', 'ucspi-peer.js');

describe('serve --allow/--deny', () => {
  const servers: StartedServer[] = [];
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
    const events: ServerEvent[] = [];
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
      const deny = events.find((e): e is Extract<ServerEvent, { type: 'deny' }> => e.type === 'deny');
      assert.equal(deny?.remote.address, '127.0.0.2');
      assert.equal(deny?.rule, 'deny:127.0.0.2/32');
    } finally {
      await server.close({ grace: 5 });
    }
  });
});
