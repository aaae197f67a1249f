// ProxyGate's trust boundary (issue 15, item 5): who may send a PROXY header (`from`,
// `untrusted`), the per-source cap on connections waiting for one, and the cost of
// waiting (none while nothing arrives). Real sockets on 127.0.0.x, the gate in this process.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { endpointsOf, type ConnectionEnds } from '../../../src/address.js';
import { ProxyGate, type ProxyGateOptions } from '../../../src/net/proxy-gate.js';
import { encodeProxyHeader } from '../../../src/net/proxy-protocol.js';
import { connectTo as connectToJs, eventually, readBytes, sleep, waitClose } from '../../helpers.js';

/** helpers.js's connectTo, typed with the `source` option its JSDoc-less default hides. */
const connectTo = connectToJs as (port: number, options?: { host?: string; source?: string }) => Promise<net.Socket>;

interface Refusal {
  reason: string;
  message: string;
  remote: string | undefined;
}

/** A paused-accepting server whose connections all go through a ProxyGate. */
async function gated(options: ProxyGateOptions) {
  const passed: net.Socket[] = [];
  /** The identity each passed connection goes on with: the header's ends, or its own. */
  const ends = new Map<net.Socket, ConnectionEnds | undefined>();
  const refused: Refusal[] = [];
  const gate = new ProxyGate(options, {
    pass: (socket, announced) => {
      passed.push(socket);
      ends.set(socket, announced ?? endpointsOf(socket));
    },
    refuse: (err, real) => refused.push({ reason: err.reason, message: err.message, remote: real?.remote.address }),
  });
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => gate.take(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const clients: net.Socket[] = [];
  const connect = async (source?: string) => {
    const s: net.Socket = await connectTo(port, { source });
    s.on('error', () => {});
    clients.push(s);
    return s;
  };
  const close = async () => {
    for (const c of clients) c.destroy();
    gate.destroy();
    await gate.settled();
    for (const s of passed) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { gate, passed, ends: (s: net.Socket) => ends.get(s), refused, connect, close, port };
}

describe('ProxyGate: from (trusted balancers)', () => {
  const open: Array<() => Promise<void>> = [];
  after(async () => {
    for (const close of open) await close();
  });

  it('a peer outside `from` is refused with reason untrusted, before anything is read', async () => {
    const g = await gated({ from: ['127.0.0.8/29', '::1'] });
    open.push(g.close);
    const s = await g.connect('127.0.0.1');
    s.write(encodeProxyHeader({ version: 1, source: { address: '192.0.2.1', port: 1 }, destination: { address: '192.0.2.2', port: 2 } }));
    await waitClose(s);
    assert.equal(g.passed.length, 0);
    assert.deepEqual(g.refused.map((r) => [r.reason, r.remote]), [['untrusted', '127.0.0.1']]);
    assert.match(g.refused[0]!.message, /^127\.0\.0\.1 may not send a PROXY header/);
  });

  it('a peer inside `from` has its header read; the header names the client', async () => {
    const g = await gated({ from: ['127.0.0.2/32'] });
    open.push(g.close);
    const s = await g.connect('127.0.0.2');
    s.write(Buffer.concat([encodeProxyHeader({ version: 2, source: { address: '192.0.2.9', port: 9 }, destination: { address: '192.0.2.1', port: 80 } }), Buffer.from('data')]));
    await eventually(() => g.passed.length === 1, { message: 'trusted connection passed' });
    const ends = g.ends(g.passed[0]!);
    assert.equal(ends?.remote.address, '192.0.2.9');
    g.passed[0]!.resume();
    assert.equal((await readBytes(g.passed[0]!, 4)).toString(), 'data');
  });

  it('untrusted: direct serves an outside peer as itself and takes none of its bytes (a forged header stays data)', async () => {
    const g = await gated({ from: ['127.0.0.8/29'], untrusted: 'direct' });
    open.push(g.close);
    const s = await g.connect('127.0.0.3');
    const forged = encodeProxyHeader({ version: 1, source: { address: '192.0.2.66', port: 66 }, destination: { address: '192.0.2.1', port: 80 } });
    s.write(forged);
    await eventually(() => g.passed.length === 1, { message: 'untrusted connection passed directly' });
    assert.equal(g.ends(g.passed[0]!)?.remote.address, '127.0.0.3');
    g.passed[0]!.resume();
    assert.equal((await readBytes(g.passed[0]!, forged.length)).toString('latin1'), forged.toString('latin1'));
    assert.equal(g.refused.length, 0);
  });

  it('bad `from` entries and limits are refused at construction, naming the option', () => {
    const handlers = { pass: () => {}, refuse: () => {} };
    assert.throws(() => new ProxyGate({ from: ['127.0.0.0/40'] }, handlers), { code: 'TCPKIT_INVALID_OPTION', message: /proxyFrom\[0\]/ });
    assert.throws(() => new ProxyGate({ maxPendingPerSource: 0 }, handlers), { message: /maxPendingPerSource/ });
    assert.throws(() => new ProxyGate({ untrusted: 'maybe' as 'direct' }, handlers), { message: /proxyUntrusted/ });
  });

  it('an empty `from` trusts nobody', async () => {
    const g = await gated({ from: [] });
    open.push(g.close);
    const s = await g.connect('127.0.0.1');
    await waitClose(s);
    assert.deepEqual(g.refused.map((r) => r.reason), ['untrusted']);
  });
});

describe('ProxyGate: pending headers capped per source', () => {
  it('one source holding silent connections cannot lock out another (the balancer)', async () => {
    const g = await gated({ maxPending: 64, maxPendingPerSource: 8, timeoutMs: 30_000 });
    try {
      const silent: net.Socket[] = [];
      for (let i = 0; i < 12; i++) silent.push(await g.connect('127.0.0.5'));
      await eventually(() => g.gate.pending + g.refused.length === 12, { message: 'all 12 taken' });
      assert.equal(g.gate.pending, 8);
      assert.equal(g.refused.length, 4);
      assert.ok(g.refused.every((r) => r.reason === 'busy' && r.remote === '127.0.0.5'), JSON.stringify(g.refused));
      assert.match(g.refused[0]!.message, /^8 connections from 127\.0\.0\.5 are already waiting/);
      // The balancer, from another address, is still served.
      const lb = await g.connect('127.0.0.6');
      lb.write(encodeProxyHeader({ version: 1, source: { address: '192.0.2.5', port: 5 }, destination: { address: '192.0.2.1', port: 80 } }));
      await eventually(() => g.passed.length === 1, { message: 'balancer passed' });
      assert.equal(g.ends(g.passed[0]!)?.remote.address, '192.0.2.5');
      // A place freed by one silent connection goes back to its source.
      silent[0]!.destroy();
      await eventually(() => g.gate.pending === 7, { message: 'pending down to 7' });
      await g.connect('127.0.0.5');
      await eventually(() => g.gate.pending === 8, { message: 'pending back to 8' });
      assert.equal(g.refused.filter((r) => r.reason === 'busy').length, 4);
    } finally {
      await g.close();
    }
  });
});

/** The soft descriptor limit of this process (/proc/self/limits), or Infinity where unknown. */
function openFilesLimit(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : Infinity;
  } catch {
    return Infinity;
  }
}

describe('ProxyGate: waiting costs nothing', () => {
  // 400 connections hold three descriptors each here: the client's, the server's and the watcher's duplicate.
  const skip = openFilesLimit() < 1500 ? `needs 1500 descriptors (ulimit -n is ${openFilesLimit()})` : false;
  it('400 silent connections: almost no CPU over 2 s, then a late header is still read at once', { skip }, async () => {
    const g = await gated({ maxPending: 1000, maxPendingPerSource: 50, timeoutMs: 60_000 });
    try {
      const silent: net.Socket[] = [];
      for (let i = 0; i < 400; i++) silent.push(await g.connect(`127.0.1.${1 + (i % 10)}`));
      await eventually(() => g.gate.pending === 400, { message: '400 pending' });
      const before = process.cpuUsage();
      await sleep(2000);
      const used = process.cpuUsage(before);
      const ms = (used.user + used.system) / 1000;
      // Polling every 16 ms per connection spent about 165 ms here (500: 207 ms); a watcher spends about 1 ms.
      assert.ok(ms < 60, `the gate used ${ms.toFixed(0)} ms of CPU in 2 s with 400 silent connections`);
      // Part of a header, a pause, the rest: each part wakes the reader once.
      const header = encodeProxyHeader({ version: 1, source: { address: '192.0.2.8', port: 8 }, destination: { address: '192.0.2.1', port: 80 } });
      const late = silent[17]!;
      late.setNoDelay(true);
      late.write(header.subarray(0, 10));
      await sleep(300);
      assert.equal(g.passed.length, 0);
      late.write(header.subarray(10));
      await eventually(() => g.passed.length === 1, { message: 'late header read' });
      assert.equal(g.ends(g.passed[0]!)?.remote.address, '192.0.2.8');
      assert.equal(g.gate.pending, 399);
    } finally {
      await g.close();
    }
    assert.equal(g.gate.pending, 0);
  });
});
