// `tcpkit serve --proxy-protocol --proxy-from CIDR` (issue 15, item 5), through the CLI:
// only the named balancers may send a PROXY header; other peers are refused with a log
// line, or with --proxy-untrusted direct served as themselves; the same from a config
// file (`proxyFrom:`), under a model whose workers accept themselves too.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { encodeProxyHeader } from '../../src/net/proxy-protocol.js';
import { startConfigServer, tempDir } from '../exec-helpers.js';
import { connectTo as connectToJs, exchange, run, startServer, waitClose } from '../helpers.js';

const connectTo = connectToJs as (port: number, options?: { host?: string; source?: string }) => Promise<net.Socket>;

const header = (client: string) =>
  encodeProxyHeader({ version: 1, source: { address: client, port: 4000 }, destination: { address: '192.0.2.1', port: 80 } });

describe('serve --proxy-from', () => {
  for (const model of [['--model', 'event'], ['--model', 'prefork', '--workers', '2']]) {
    it(`${model.join(' ')}: a listed balancer's header names the client; any other peer is refused (proxy-untrusted)`, async () => {
      const server = await startServer(['--proxy-protocol', '--proxy-from', '127.0.0.2', '--proxy-from', '127.0.0.8/29', ...model]);
      try {
        const lb = await connectTo(server.port, { source: '127.0.0.2' });
        assert.equal((await exchange(lb, Buffer.concat([header('192.0.2.50'), Buffer.from('via balancer')]))).toString(), 'via balancer');
        await server.waitFor(/^accept 192\.0\.2\.50:4000 -> 192\.0\.2\.1:80 IPv4 .* via 127\.0\.0\.2:\d+$/m);

        const forger = await connectTo(server.port, { source: '127.0.0.3' });
        const port = forger.localPort;
        forger.on('error', () => {});
        forger.write(Buffer.concat([header('192.0.2.66'), Buffer.from('forged')]));
        await waitClose(forger);
        await server.waitFor(new RegExp(`^refuse 127\\.0\\.0\\.3:${port} -> 127\\.0\\.0\\.1:${server.port} IPv4 reason proxy-untrusted message "127\\.0\\.0\\.3\\S*may\\S*not\\S*send`, 'm'));
        assert.doesNotMatch(server.log(), /192\.0\.2\.66/);
      } finally {
        assert.deepEqual(await server.stop(), { code: 0, signal: null });
      }
    });
  }

  it('--proxy-untrusted direct: other peers are served as themselves; their "header" is data', async () => {
    const server = await startServer(['--model', 'event', '--proxy-protocol', '--proxy-from', '127.0.0.8/29', '--proxy-untrusted', 'direct']);
    try {
      const s = await connectTo(server.port, { source: '127.0.0.4' });
      const forged = Buffer.concat([header('192.0.2.66'), Buffer.from('data')]);
      assert.equal((await exchange(s, forged)).toString('latin1'), forged.toString('latin1'));
      await server.waitFor(/^accept 127\.0\.0\.4:\d+ -> 127\.0\.0\.1:\d+ IPv4 /m);
      assert.doesNotMatch(server.log(), /192\.0\.2\.66/);
    } finally {
      assert.deepEqual(await server.stop(), { code: 0, signal: null });
    }
  });

  it('usage errors: a bad block, or --proxy-from without --proxy-protocol, exit 100 naming the option', async () => {
    const bad = await run(['serve', '--port', '0', '--proxy-protocol', '--proxy-from', '127.0.0.0/33']);
    assert.equal(bad.code, 100);
    assert.match(bad.stderr, /--proxy-from: .*prefix length/);
    const alone = await run(['serve', '--port', '0', '--proxy-from', '127.0.0.9']);
    assert.equal(alone.code, 100);
    assert.match(alone.stderr, /--proxy-from needs --proxy-protocol/);
    const mode = await run(['serve', '--port', '0', '--proxy-protocol', '--proxy-untrusted', 'maybe']);
    assert.equal(mode.code, 100);
    assert.match(mode.stderr, /--proxy-untrusted: must be one of refuse, direct/);
  });
});

describe('proxyFrom in a --config file', () => {
  it('applies per service; a bad entry names its place in the file', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = path.join(dir, 'tcpkit.yaml');
      fs.writeFileSync(
        file,
        'services:\n  behind:\n    listen: 127.0.0.1:0\n    internal: echo\n    model: event\n    proxyProtocol: true\n    proxyFrom: [127.0.0.2]\n',
      );
      const srv = await startConfigServer(file, 1);
      try {
        const port = srv.ports['behind 127.0.0.1:0'];
        const lb = await connectTo(port, { source: '127.0.0.2' });
        assert.equal((await exchange(lb, Buffer.concat([header('192.0.2.51'), Buffer.from('ok')]))).toString(), 'ok');
        const other = await connectTo(port, { source: '127.0.0.5' });
        other.on('error', () => {});
        other.write(header('192.0.2.67'));
        await waitClose(other);
        await srv.waitFor(/^refuse 127\.0\.0\.5:\d+ -> .* reason proxy-untrusted /m);
      } finally {
        assert.deepEqual(await srv.stop(), { code: 0, signal: null });
      }
      fs.writeFileSync(file, 'services:\n  behind:\n    listen: 127.0.0.1:0\n    internal: echo\n    proxyProtocol: true\n    proxyFrom: [nonsense]\n');
      const r = await run(['serve', '--config', file]);
      assert.equal(r.code, 100, r.stderr);
      assert.match(r.stderr, /services\.behind\.proxyFrom/);
    } finally {
      cleanup();
    }
  });
});
