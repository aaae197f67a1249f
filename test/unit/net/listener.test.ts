// Listener.acceptProxyProtocol: the PROXY gate in front of a real listening socket on 127.0.0.1 port 0.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Listener } from '../../../src/net/listener.js';
import type { ProxyGateHandlers } from '../../../src/net/proxy-gate.js';
import { connectTo, sleep, waitClose } from '../../helpers.js';

type Refusal = { reason: string; real: Parameters<ProxyGateHandlers['refuse']>[1] };

describe('Listener.acceptProxyProtocol (library)', () => {
  it('bounds the connections waiting for a header: beyond maxPending, refused as busy', async () => {
    const listener = await Listener.open({ host: '127.0.0.1', port: 0 });
    const refusals: Refusal[] = [];
    const passed: unknown[] = [];
    listener.onConnection((socket) => {
      passed.push(socket);
      socket.destroy();
    });
    listener.acceptProxyProtocol({ timeoutMs: 5000, maxPending: 1 }, (err, real) => refusals.push({ reason: err.reason, real }));
    const a = await connectTo(listener.endpoint.port);
    await sleep(100);
    const b = await connectTo(listener.endpoint.port);
    try {
      assert.ok(['end', 'ECONNRESET'].includes((await waitClose(b)) ?? ''));
      assert.equal(refusals.length, 1);
      assert.equal(refusals[0]?.reason, 'busy');
      assert.equal(refusals[0]?.real?.remote.port, b.localPort);
      // The waiting one still gets through once its header comes.
      a.write('PROXY UNKNOWN\r\n');
      await listener.settled();
      assert.equal(passed.length, 1);
    } finally {
      a.destroy();
      b.destroy();
      listener.close();
    }
  });

  it('close while a header is pending: settled() waits for it; abortPending() ends it', async () => {
    const listener = await Listener.open({ host: '127.0.0.1', port: 0 });
    const refusals: string[] = [];
    listener.onConnection((socket) => socket.destroy());
    listener.acceptProxyProtocol({ timeoutMs: 5000 }, (err) => refusals.push(err.reason));
    const s = await connectTo(listener.endpoint.port);
    await sleep(100);
    listener.close();
    let settled = false;
    const done = listener.settled().then(() => (settled = true));
    await sleep(100);
    assert.equal(settled, false, 'still waiting for the header');
    listener.abortPending();
    await done;
    assert.deepEqual(refusals, ['truncated']);
    s.destroy();
  });
});

