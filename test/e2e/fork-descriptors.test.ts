// Descriptor exhaustion under the fork model and for `--exec`, as test/e2e/hostile-descriptors.test.ts and
// descriptors-pools.test.ts check it for the others: each live child keeps descriptors in the process that started it
// after its socket is closed there (a launched child's pidfd and stderr pipe, a spare's IPC channel and pipe), so the
// acceptor must count them. With
// far more held clients than descriptors allow, no connection is reset (the old code reset most of them with
// `error where spawn code EMFILE`): the excess waits in the backlog, EMFILE is logged once per burst, and every
// client is served once the others leave.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { echoOnce, eventually, fdsOf, sleep } from '../helpers.js';
import { holdingClient, startLimited, type Holding } from '../limited.js';

const cases: Array<{ name: string; args: string[]; limit: number; clients: number }> = [
  { name: 'fork', args: ['--model', 'fork'], limit: 64, clients: 100 },
  { name: 'fork --spare 2', args: ['--model', 'fork', '--spare', '2'], limit: 64, clients: 100 },
  { name: 'fork --exec cat', args: ['--model', 'fork', '--exec', 'cat'], limit: 64, clients: 100 },
  { name: 'fork -c 1000 --exec cat', args: ['--model', 'fork', '-c', '1000', '--exec', 'cat'], limit: 1024, clients: 700 },
  // A program started from a process that serves in-process holds the same two descriptors there (the launcher counts them).
  { name: 'event --exec cat', args: ['--model', 'event', '--exec', 'cat'], limit: 64, clients: 100 },
  { name: 'threads --exec cat', args: ['--model', 'threads', '--workers', '2', '--exec', 'cat'], limit: 64, clients: 100 },
  // A prefork worker process takes the native path (accept4 records, the launcher's two descriptors per program).
  { name: 'prefork --exec cat', args: ['--model', 'prefork', '--workers', '2', '--exec', 'cat'], limit: 64, clients: 100 },
];

for (const { name, args, limit, clients: n } of cases) {
  test(`${name}: ulimit -n ${limit}, ${n} held clients: none reset, EMFILE once per burst, all served`, { timeout: 600_000 }, async (t) => {
    // `cat` (the last argument) must stay last: --backlog goes before the service's own flags.
    const server = await startLimited(['--backlog', '2048', '-q', ...args], limit);
    const clients: Holding[] = [];
    try {
      for (let i = 0; i < n; i++) clients.push(holdingClient(server.port, `client ${i}\n`));
      await Promise.all(clients.map((c) => c.connected));
      await eventually(() => /code EMFILE/.test(server.log()), { timeoutMs: 120_000, message: `an EMFILE report\n${server.log()}` });
      // Held at the limit a while: nothing is reset meanwhile, the report is not repeated per connection.
      await sleep(2000);
      const held = server.log();
      assert.ok(fdsOf(server.pid).length <= limit, 'never above the limit');
      const reports = held.match(/^error where accept code EMFILE .*$/gm) ?? [];
      t.diagnostic(`EMFILE report lines while held: ${reports.length}; ${reports.at(-1)}`);
      assert.ok(reports.length >= 1 && reports.length <= 4, `EMFILE reports while held: ${reports.length}\n${reports.join('\n')}`);
      assert.match(reports[0]!, /message ".*of.*descriptors/);

      for (const c of clients) c.socket.end();
      const replies = await Promise.all(clients.map((c) => c.done));
      replies.forEach((r, i) => assert.equal(r.toString(), `client ${i}\n`, `client ${i} echoed exactly`));
      assert.equal(server.proc.exitCode, null, 'server alive');
      assert.deepEqual(await echoOnce(server.port, Buffer.from('after')), Buffer.from('after'));
      assert.doesNotMatch(server.log(), /^error where (?!accept).*$/m, 'no spawn failed, nothing else failed');
    } finally {
      for (const c of clients) c.socket.destroy();
      server.proc.kill('SIGTERM');
      const timer = setTimeout(() => server.proc.kill('SIGKILL'), 60_000);
      const exit = await server.exited;
      clearTimeout(timer);
      assert.equal(exit.code, 0, server.log().slice(-2000));
    }
  });
}
