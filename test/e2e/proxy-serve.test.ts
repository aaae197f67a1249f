// `tcpkit serve --proxy-protocol`: headers taken off real connections (exactly the header, never
// the client's bytes), the header's client as the peer in the log, and every bad header closing
// only its own connection with a `refuse ... reason proxy-...` line.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startConfigServer } from '../exec-helpers.js';
import { encodeProxyHeader, V2_SIGNATURE } from '../../dist/net/proxy-protocol.js';
import { sanitize } from '../../dist/address.js';
import { connectTo, exchange, random, readBytes, run, sha256, sleep, startServer, waitClose, type StartedServer } from '../helpers.js';

/** A regex source matching `text` as a log line's message value renders it (sanitized, then JSON). */
const logged = (text: string): string => `"${sanitize(text)}`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('tcpkit serve --proxy-protocol (fork model, echo)', () => {
  let server: StartedServer;
  before(async () => {
    server = await startServer(['--proxy-protocol', '--proxy-timeout', '1.5']);
  });
  after(async () => {
    await server?.stop();
  });

  it('v1 from tcpkit client: the claimed client is the peer in the accept line, the balancer is "via"', async () => {
    const from = server.log().length;
    const r = await run(['client', '127.0.0.1', String(server.port), '--proxy-protocol', 'v1', '--proxy-source', '192.0.2.7:4000'], {
      input: 'hello through a balancer\n',
      timeoutMs: 20_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'hello through a balancer\n');
    await server.waitFor(
      new RegExp(`^accept 192\\.0\\.2\\.7:4000 -> 127\\.0\\.0\\.1:${server.port} IPv4 pid \\d+ count \\d+/40 id \\d+ via 127\\.0\\.0\\.1:\\d+$`, 'm'),
      { from },
    );
  });

  it('v2 with 1 MiB of data in the same write as the header: the child gets exactly the data', async () => {
    const s = await connectTo(server.port, { source: '127.0.0.7' });
    const data = random(1024 * 1024);
    const header = encodeProxyHeader({
      version: 2,
      source: { address: '198.51.100.9', port: 5555 },
      destination: { address: '203.0.113.1', port: 80 },
      checksum: true,
    });
    const from = server.log().length;
    const got = await exchange(s, Buffer.concat([header, data]));
    assert.equal(got.length, data.length);
    assert.equal(sha256(got), sha256(data));
    await server.waitFor(/^accept 198\.51\.100\.9:5555 -> 203\.0\.113\.1:80 IPv4 pid \d+ count \d+\/40 id \d+ via 127\.0\.0\.7:\d+$/m, { from });
  });

  it('a header that arrives a few bytes at a time is assembled (tolerant receiver), data intact', async () => {
    const from = server.log().length;
    const s = await connectTo(server.port);
    s.setNoDelay(true);
    const header = Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 40000 9877\r\n');
    for (let i = 0; i < header.length; i += 7) {
      s.write(header.subarray(i, i + 7));
      await sleep(15);
    }
    const got = await exchange(s, Buffer.from('after a slow header\n'));
    assert.equal(got.toString(), 'after a slow header\n');
    await server.waitFor(/^accept \[2001:db8::7\]:40000 -> \[2001:db8::1\]:9877 IPv6 pid \d+ .* via 127\.0\.0\.1:\d+$/m, { from });
  });

  it('v2 LOCAL (a health check) keeps the real peer', async () => {
    const s = await connectTo(server.port);
    const local = s.localPort ?? 0;
    const from = server.log().length;
    const got = await exchange(s, Buffer.concat([encodeProxyHeader({ version: 2 }), Buffer.from('ping')]));
    assert.equal(got.toString(), 'ping');
    const m = await server.waitFor(new RegExp(`^accept 127\\.0\\.0\\.1:${local} -> 127\\.0\\.0\\.1:${server.port} IPv4 pid \\d+ count \\d+/40 id \\d+(.*)$`, 'm'), { from });
    assert.equal(m[1], '', 'no "via" for a LOCAL header');
  });

  it('a health check that resets right after its header: served, and its child exits 0', async () => {
    // HAProxy's checks of a send-proxy server send the header, then close with RST.
    const s = await connectTo(server.port);
    const local = s.localPort ?? 0;
    const from = server.log().length;
    s.write(encodeProxyHeader({ version: 1, source: { address: '127.0.0.1', port: local }, destination: { address: '127.0.0.1', port: server.port } }));
    await sleep(30);
    s.resetAndDestroy();
    const m = await server.waitFor(new RegExp(`^accept 127\\.0\\.0\\.1:${local} -> .* id (\\d+) via 127\\.0\\.0\\.1:${local}$`, 'm'), { from });
    await server.waitFor(new RegExp(`^end pid \\d+ exitcode 0 count \\d+/40 id ${m[1]} `, 'm'), { from });
  });

  const cases: [name: string, bytes: Buffer | string, reason: string, message: string][] = [
    ['missing (plain data)', Buffer.from('GET / HTTP/1.0\r\n\r\n'), 'missing', 'no PROXY header: the connection starts with'],
    ['malformed v1', Buffer.from('PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\nhello'), 'malformed', 'PROXY v1: bad IPv4 source address "1.2.3.256"'],
    ['oversized v1', Buffer.from(`PROXY UNKNOWN ${'x'.repeat(100)}`), 'oversized', 'PROXY v1: no CRLF within the first 107 bytes'],
    ['wrong v2 version', Buffer.concat([V2_SIGNATURE, Buffer.from([0x11, 0x11, 0, 0])]), 'version', 'PROXY v2 signature with version 1 (only 2 exists)'],
  ];
  for (const [name, bytes, reason, message] of cases) {
    it(`${name}: this connection is closed with "refuse ... reason proxy-${reason}"`, async () => {
      const s = await connectTo(server.port);
      const local = s.localPort;
      const from = server.log().length;
      s.write(bytes);
      const how = await waitClose(s);
      assert.ok(how === 'end' || how === 'ECONNRESET', how);
      await server.waitFor(
        new RegExp(`^refuse 127\\.0\\.0\\.1:${local} -> 127\\.0\\.0\\.1:${server.port} IPv4 reason proxy-${reason} message ${logged(message)}`, 'm'),
        { from },
      );
      s.destroy();
    });
  }

  it('truncated: the peer sends half a header and FIN; refused at once, not after the timeout', async () => {
    const s = await connectTo(server.port);
    const local = s.localPort ?? 0;
    const from = server.log().length;
    const started = Date.now();
    s.end(Buffer.from('PROXY TCP4 1.2.3.4 5.6'));
    await waitClose(s);
    await server.waitFor(new RegExp(`^refuse 127\\.0\\.0\\.1:${local} -> .* reason proxy-truncated message ${logged('peer closed after 22 bytes, before the PROXY header was complete')}`, 'm'), { from });
    // The timeout is 1.5 s; seeing the FIN takes one look.
    assert.ok(Date.now() - started < 1400, `took ${Date.now() - started} ms`);
  });

  it('a silent connection times out alone: others are served meanwhile', async () => {
    const silent = await connectTo(server.port);
    const local = silent.localPort;
    const from = server.log().length;
    const started = Date.now();
    // While the silent one waits for its header, three good connections come and go.
    for (let i = 0; i < 3; i++) {
      const s = await connectTo(server.port);
      const got = await exchange(s, Buffer.concat([encodeProxyHeader({ version: 1, source: { address: '192.0.2.1', port: 1 + i }, destination: { address: '192.0.2.2', port: 2 } }), Buffer.from(`good ${i}`)]));
      assert.equal(got.toString(), `good ${i}`);
    }
    assert.ok(!new RegExp(`refuse 127\\.0\\.0\\.1:${local} `).test(server.log().slice(from)), 'the silent one is still waiting');
    const how = await waitClose(silent, 10_000);
    assert.ok(how === 'end' || how === 'ECONNRESET', how);
    await server.waitFor(new RegExp(`^refuse 127\\.0\\.0\\.1:${local} -> .* reason proxy-timeout message ${logged('no complete PROXY header within 1500 ms (0 bytes arrived)')}`, 'm'), { from });
    assert.ok(Date.now() - started >= 1400, 'not before the timeout');
  });

  it('the server still serves after all of the above', async () => {
    const s = await connectTo(server.port);
    const got = await exchange(s, Buffer.concat([encodeProxyHeader({ version: 2, source: { address: '10.0.0.1', port: 1 }, destination: { address: '10.0.0.2', port: 2 } }), Buffer.from('still here')]));
    assert.equal(got.toString(), 'still here');
  });
});

describe('tcpkit client --proxy-protocol: bad arguments', () => {
  it('usage errors name the option', async () => {
    let r = await run(['client', '127.0.0.1', '1', '--proxy-protocol', 'v3']);
    assert.equal(r.code, 100);
    assert.match(r.stderr, /--proxy-protocol: must be one of v1, v2, got "v3"/);
    r = await run(['client', '127.0.0.1', '1', '--proxy-source', '1.2.3.4:5']);
    assert.equal(r.code, 100);
    assert.match(r.stderr, /--proxy-source needs --proxy-protocol/);
    r = await run(['client', '127.0.0.1', '1', '--proxy-protocol', 'v1', '--proxy-source', 'host:5']);
    assert.equal(r.code, 100);
    assert.match(r.stderr, /proxy-source/);
    r = await run(['serve', '--proxy-timeout', '0']);
    assert.equal(r.code, 100);
    assert.match(r.stderr, /--proxy-timeout: must be a number of seconds > 0/);
  });
});


describe('--proxy-protocol with the super-server: the header\'s client everywhere', () => {
  let server: StartedServer;
  const report = 'printf "%s %s %s %s\\n" "$TCPREMOTEIP" "$TCPREMOTEPORT" "$TCPLOCALIP" "$TCPLOCALPORT"; exec cat';
  before(async () => {
    server = await startServer(['--proxy-protocol', '--deny', '192.0.2.66', '--per-source', '1', '--exec', '--', '/bin/sh', '-c', report]);
  });
  after(async () => {
    await server?.stop();
  });

  const header = (address: string, port = 1111) =>
    encodeProxyHeader({ version: 2, source: { address, port }, destination: { address: '198.51.100.2', port: 80 } });

  it('UCSPI variables name the client and the address it connected to', async () => {
    const s = await connectTo(server.port);
    const got = await exchange(s, Buffer.concat([header('198.51.100.1'), Buffer.from('payload')]));
    assert.equal(got.toString(), '198.51.100.1 1111 198.51.100.2 80\npayload');
  });

  it('access rules judge the client, not the balancer', async () => {
    const from = server.log().length;
    const s = await connectTo(server.port);
    s.write(Buffer.concat([header('192.0.2.66', 4242), Buffer.from('denied')]));
    await waitClose(s);
    await server.waitFor(/^deny 192\.0\.2\.66:4242 -> 198\.51\.100\.2:80 IPv4 reason access rule deny:192\.0\.2\.66\/32$/m, { from });
  });

  it('per-source limits count the client, not the balancer', async () => {
    const from = server.log().length;
    const first = await connectTo(server.port);
    first.write(header('203.0.113.5', 1));
    await server.waitFor(/^accept 203\.0\.113\.5:1 -> /m, { from });
    try {
      // Same claimed client, second connection: refused. Another client through the same balancer: served.
      const second = await connectTo(server.port);
      second.write(header('203.0.113.5', 2));
      await waitClose(second);
      await server.waitFor(/^refuse 203\.0\.113\.5:2 -> 198\.51\.100\.2:80 IPv4 reason per-source$/m, { from });
      const other = await connectTo(server.port);
      const got = await exchange(other, Buffer.concat([header('203.0.113.6', 3), Buffer.from('other')]));
      assert.equal(got.toString(), '203.0.113.6 3 198.51.100.2 80\nother');
    } finally {
      first.destroy();
    }
  });
});

describe('proxyProtocol in a --config file', () => {
  it('a service with proxyProtocol: true reads headers; one without does not', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-proxy-config-'));
    const file = path.join(dir, 'tcpkit.yaml');
    fs.writeFileSync(file, 'services:\n  behind:\n    listen: 127.0.0.1:0\n    internal: echo\n    proxyProtocol: true\n    proxyTimeout: 2\n  direct:\n    listen: 127.0.0.1:0\n    internal: echo\n');
    const srv = await startConfigServer(file, 2);
    try {
      const from = srv.log().length;
      const a = await connectTo(srv.ports['behind 127.0.0.1:0']);
      const got = await exchange(a, Buffer.concat([encodeProxyHeader({ version: 1, source: { address: '192.0.2.9', port: 9 }, destination: { address: '192.0.2.10', port: 10 } }), Buffer.from('hi')]));
      assert.equal(got.toString(), 'hi');
      await srv.waitFor(/^accept 192\.0\.2\.9:9 -> 192\.0\.2\.10:10 IPv4 /m, { from });
      const plain = 'PROXY UNKNOWN\r\nis data here';
      assert.equal((await exchange(await connectTo(srv.ports['direct 127.0.0.1:0']), Buffer.from(plain))).toString(), plain);
    } finally {
      await srv.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('status of a server behind a balancer', () => {
  it('collectStatus shows the client as the peer, the balancer as via, matched to the kernel socket', async () => {
    const { createServer } = await import('../../dist/server.js');
    const { collectStatus } = await import('../../dist/status/snapshot.js');
    const server = createServer({ host: '127.0.0.1', port: 0, proxyProtocol: true });
    const { port } = await server.listen();
    const s = await connectTo(port);
    try {
      s.write(encodeProxyHeader({ version: 2, source: { address: '192.0.2.44', port: 4444 }, destination: { address: '192.0.2.1', port: 80 } }));
      s.write('x');
      await readBytes(s, 1);
      const snap = collectStatus({ server: server.stats() });
      const child = snap.processes.find((p) => p.connections?.some((c) => c.remote === '192.0.2.44:4444'));
      assert.ok(child, JSON.stringify(snap.processes));
      const conn = child.connections.find((c) => c.remote === '192.0.2.44:4444');
      assert.equal(conn?.via, `127.0.0.1:${s.localPort}`);
      assert.equal(conn?.state, 'ESTABLISHED', 'matched to its socket by the real ends');
    } finally {
      s.destroy();
      await server.close();
    }
  });
});

describe('--proxy-protocol under every model', () => {
  for (const args of [
    ['--model', 'iterative'],
    ['--model', 'event'],
    ['--model', 'fork', '--spare', '1'],
    ['--model', 'prefork', '--workers', '2'],
    ['--model', 'prefork', '--workers', '2', '--accept', 'pass'],
    ['--model', 'threads', '--workers', '2'],
  ]) {
    it(`${args.join(' ')}: the header's client is the peer, the data exact; a bad header is refused with a log line`, async () => {
      const server = await startServer(['--proxy-protocol', '--proxy-timeout', '2', ...args]);
      try {
        const data = random(256 * 1024);
        const s = await connectTo(server.port);
        const got = await exchange(s, Buffer.concat([encodeProxyHeader({ version: 2, source: { address: '192.0.2.77', port: 7777 }, destination: { address: '192.0.2.1', port: 7 } }), data]));
        assert.equal(sha256(got), sha256(data));
        await server.waitFor(/^accept 192\.0\.2\.77:7777 -> 192\.0\.2\.1:7 IPv4 pid \d+ count \d+\/40 id \d+ via 127\.0\.0\.1:\d+$/m);
        const bad = await connectTo(server.port);
        const local = bad.localPort;
        bad.write('HELLO\r\n');
        await waitClose(bad);
        await server.waitFor(new RegExp(`^refuse 127\\.0\\.0\\.1:${local} -> 127\\.0\\.0\\.1:${server.port} IPv4 reason proxy-missing message `, 'm'));
        const again = await connectTo(server.port);
        assert.equal((await exchange(again, Buffer.concat([encodeProxyHeader({ version: 1 }), Buffer.from('after')]))).toString(), 'after');
      } finally {
        assert.deepEqual(await server.stop(), { code: 0, signal: null });
      }
    });
  }
});
