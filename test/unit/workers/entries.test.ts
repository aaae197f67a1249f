// Entry points of children and threads resolve from src under tsx (src/workers/entries.ts): the pool,
// fork and worker code start in unit tests without a build.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createServer } from '../../../src/server.js';
for (const model of ['prefork', 'threads', 'fork'] as const) {
  test(`${model}: its entry point starts from src (no build)`, async () => {
    const s = createServer({ port: 0, host: '127.0.0.1', model, ...(model === 'fork' ? {} : { workers: 1 }) });
    const { port } = await s.listen();
    const got = await new Promise<string>((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1', () => c.end('hi'));
      let b = ''; c.on('data', (d) => (b += d)); c.on('end', () => resolve(b)); c.on('error', reject);
    });
    assert.equal(got, 'hi');
    await s.close();
  });
}
