// The threads model's descriptors: each thread maps the shared counts from duplicates of its own, as it listens on
// one, so that the server closing its table's descriptor (Server.close, ServiceBudget.leave) while a thread is
// still starting cannot leave that thread with EBADF or with whatever segment took the number since; and every
// one of them is closed once its thread has exited.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from '../../../src/index.js';
import { echoOnce, eventually, fdsOf } from '../../helpers.js';

/** This process's descriptors on a shared-counts segment (native/shm.c names its memfd `tcpkit-counts`). */
function segments(): number[] {
  return fdsOf(process.pid).filter((d) => d.target.includes('tcpkit-counts')).map((d) => d.fd);
}

test('threads: every thread maps the table and the ledger from its own duplicates; all are closed with the server', async () => {
  const before = segments();
  const server = createServer({ host: '127.0.0.1', port: 0, model: 'threads', workers: 3, perSource: 5, service: 'echo' });
  await server.listen();
  try {
    assert.equal((await echoOnce(server.address()!.port, 'ping')).toString(), 'ping');
    // The pool's own two (the service's table and the pool's ledger) and two for each of the three threads.
    await eventually(() => segments().length - before.length === 2 + 2 * 3, { message: 'the pool\'s 2 segment descriptors and 2 per thread' }).catch(() => {
      assert.equal(segments().length - before.length, 2 + 2 * 3);
    });
  } finally {
    await server.close();
  }
  await eventually(() => segments().length === before.length).catch(() => assert.deepEqual(segments(), before));
});
