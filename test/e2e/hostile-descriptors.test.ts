// Descriptor exhaustion: a server under `ulimit -n 128` with 1,000 connections at once stays
// alive, does not spin, logs EMFILE once per burst, loses no connection (they wait in the
// backlog) and serves every one of them once clients leave.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { echoOnce, eventually, fdsOf, sleep } from '../helpers.js';
import { cpuSeconds, holdingClient, startLimited } from '../limited.js';

// Beyond the kernel's backlog (--backlog 2048 here) connects would stall: Node ignores `backlog` in listen({ fd }), so tcpkit passes it positionally.
const CLIENTS = 1000;

test('ulimit -n 128, 500 connections: no spin, one EMFILE report per burst, every connection served', { timeout: 120_000 }, async (t) => {
  const server = await startLimited(['--model', 'event', '-c', '5000', '--backlog', '2048', '-q']);
  const clients: ReturnType<typeof holdingClient>[] = [];
  try {
    const baseline = fdsOf(server.pid).length;
    for (let i = 0; i < CLIENTS; i++) clients.push(holdingClient(server.port, `client ${i}\n`));
    await Promise.all(clients.map((c) => c.connected));
    await eventually(() => /code EMFILE/.test(server.log()), { timeoutMs: 20_000, message: 'an EMFILE report' });

    // At the limit for 3 s: the server must sleep, not spin. A spinning accept loop costs ~1 s of CPU per second.
    const cpu0 = cpuSeconds(server.pid);
    const t0 = Date.now();
    await sleep(3000);
    const ratio = (cpuSeconds(server.pid) - cpu0) / ((Date.now() - t0) / 1000);
    t.diagnostic(`CPU at the descriptor limit: ${ratio.toFixed(3)} s per s; descriptors ${fdsOf(server.pid).length} of 128`);
    assert.ok(ratio < 0.3, `server CPU while at the descriptor limit: ${ratio.toFixed(2)} s per s`);
    assert.ok(fdsOf(server.pid).length <= 128, 'never above the limit');

    const reports = server.log().match(/^error where accept code EMFILE .*$/gm) ?? [];
    assert.ok(reports.length >= 1 && reports.length <= 3, `EMFILE reports during one burst: ${reports.length}\n${reports.join('\n')}`);
    t.diagnostic(`EMFILE report lines: ${reports.length}; ${reports.at(-1)}`);
    assert.match(reports[0] ?? '', /suppressed \d+ message ".*of.*128.*descriptors/);

    // Clients leave: each half-closes; the server echoes and ends it, frees its descriptor, accepts the next.
    for (const c of clients) c.socket.end();
    const replies = await Promise.all(clients.map((c) => c.done));
    replies.forEach((r, i) => assert.equal(r.toString(), `client ${i}\n`, `client ${i} echoed exactly`));
    assert.equal(server.proc.exitCode, null, 'server alive');
    assert.deepEqual(await echoOnce(server.port, Buffer.from('after')), Buffer.from('after'));
    await eventually(() => fdsOf(server.pid).length <= baseline + 1, { message: 'descriptors back to the baseline' });
  } finally {
    for (const c of clients) c.socket.destroy();
    server.proc.kill('SIGTERM');
    const timer = setTimeout(() => server.proc.kill('SIGKILL'), 20_000);
    const exit = await server.exited;
    clearTimeout(timer);
    assert.equal(exit.code, 0, server.log().slice(-2000));
  }
});
