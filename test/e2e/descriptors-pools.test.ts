// Descriptor exhaustion under the pool models, as test/e2e/hostile-descriptors.test.ts checks it for `event`:
// with `ulimit -n 128` and many more connections than descriptors, prefork (shared and pass) and threads stay
// alive, do not spin, log EMFILE once per burst, close no accepted connection unserved (connections wait in the
// backlog) and serve every one of them once clients leave.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { childrenOf, echoOnce, eventually, fdsOf, sleep } from '../helpers.js';
import { cpuSeconds, holdingClient, startLimited, type Holding } from '../limited.js';

const LIMIT = 128;
const CLIENTS = 600;

/** The server and its worker processes. */
function tree(pid: number): number[] {
  return [pid, ...(childrenOf(pid) as Array<{ pid: number }>).map((c) => c.pid)];
}

const cases: Array<{ name: string; args: string[] }> = [
  { name: 'prefork, shared accept', args: ['--model', 'prefork', '--workers', '2'] },
  { name: 'prefork, --accept pass', args: ['--model', 'prefork', '--workers', '2', '--accept', 'pass'] },
  { name: 'threads', args: ['--model', 'threads', '--workers', '2'] },
];

for (const { name, args } of cases) {
  test(`${name}: ulimit -n ${LIMIT}, ${CLIENTS} connections: no spin, one EMFILE report per burst, every connection served`, { timeout: 180_000 }, async (t) => {
    const server = await startLimited([...args, '-c', '5000', '--backlog', '2048', '-q'], LIMIT);
    const clients: Holding[] = [];
    try {
      for (let i = 0; i < CLIENTS; i++) clients.push(holdingClient(server.port, `client ${i}\n`));
      await Promise.all(clients.map((c) => c.connected));
      await eventually(() => /code EMFILE/.test(server.log()), { timeoutMs: 30_000, message: `an EMFILE report\n${server.log()}` });

      // At the limit for 3 s: the server and its workers must sleep, not spin (a spinning accept loop costs ~1 s of CPU per second).
      const pids = tree(server.pid);
      const cpu = () => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
      const cpu0 = cpu();
      const t0 = Date.now();
      await sleep(3000);
      const ratio = (cpu() - cpu0) / ((Date.now() - t0) / 1000);
      t.diagnostic(`CPU at the descriptor limit: ${ratio.toFixed(3)} s per s over ${pids.length} processes`);
      assert.ok(ratio < 0.5, `server CPU while at the descriptor limit: ${ratio.toFixed(2)} s per s`);
      for (const pid of pids) assert.ok(fdsOf(pid).length <= LIMIT, `process ${pid} never above the limit`);

      const reports = server.log().match(/^error where accept code EMFILE .*$/gm) ?? [];
      t.diagnostic(`EMFILE report lines: ${reports.length}; ${reports.at(-1)}`);
      assert.ok(reports.length >= 1 && reports.length <= 3, `EMFILE reports during one burst: ${reports.length}\n${reports.join('\n')}`);
      assert.match(reports[0]!, /suppressed \d+ message ".*descriptors/);

      // Clients leave: each half-closes; a worker echoes and ends it, frees its descriptor, accepts the next.
      for (const c of clients) c.socket.end();
      const replies = await Promise.all(clients.map((c) => c.done));
      replies.forEach((r, i) => assert.equal(r.toString(), `client ${i}\n`, `client ${i} echoed exactly`));
      assert.equal(server.proc.exitCode, null, 'server alive');
      assert.deepEqual(await echoOnce(server.port, Buffer.from('after')), Buffer.from('after'));
      assert.doesNotMatch(server.log(), /^(exit|error where (?!accept)).*$/m, 'no worker died, nothing else failed');
    } finally {
      for (const c of clients) c.socket.destroy();
      server.proc.kill('SIGTERM');
      const timer = setTimeout(() => server.proc.kill('SIGKILL'), 30_000);
      const exit = await server.exited;
      clearTimeout(timer);
      assert.equal(exit.code, 0, server.log().slice(-2000));
    }
  });
}
