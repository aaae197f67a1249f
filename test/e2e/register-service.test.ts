// services.registerService: a service added by name works under every model, because every model loads it by
// path where the connection is served (as --handler), in this process, a worker, a thread or a child.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer, services } from '../../dist/index.js';
import { ROOT } from '../helpers.js';

const UPPER = path.join(ROOT, 'test', 'fixtures', 'upper-handler.js');

/** Send `text`, half-close, resolve what came back at EOF. */
function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => (got += c));
    s.once('end', () => resolve(got));
    s.once('error', reject);
    s.end(text);
  });
}

services.registerService('upper', UPPER);

test('registerService refuses a built-in name and a bad module', () => {
  assert.throws(() => services.registerService('echo', UPPER), { code: 'TCPKIT_INVALID_OPTION', message: /echo is a built-in service/ });
  assert.throws(() => services.registerService('x', ''), { code: 'TCPKIT_INVALID_OPTION' });
  assert.ok(services.serviceNames().includes('upper'));
});

for (const [model, extra] of [
  ['iterative', {}],
  ['event', {}],
  ['fork', {}],
  ['fork', { spare: 1 }],
  ['prefork', { workers: 2 }],
  ['prefork', { workers: 2, accept: 'pass' }],
  ['threads', { workers: 2 }],
] as const) {
  test(`a registered service under ${model} ${JSON.stringify(extra)}`, { timeout: 60_000 }, async () => {
    const server = createServer({ host: '127.0.0.1', port: 0, model, service: 'upper', ...extra });
    const lines: string[] = [];
    server.on('event', (e) => lines.push(e.type));
    const { port } = await server.listen();
    try {
      assert.equal(server.stats().service, 'upper');
      assert.equal(await roundTrip(port, 'hello, registry'), 'HELLO, REGISTRY');
    } finally {
      await server.close({ grace: 5 });
    }
    assert.ok(lines.includes('accept') && lines.includes('end'), lines.join(' '));
  });
}

test('registerService resolves a relative path against the calling module, not the working directory', { timeout: 60_000 }, async () => {
  // From test/e2e/ this is test/fixtures/upper-handler.js; from the working directory (the repository) it is nothing.
  await services.registerService('upper-relative', '../fixtures/upper-handler.js');
  await services.registerService('upper-url', new URL('../fixtures/upper-handler.js', import.meta.url));
  await services.registerService('upper-href', new URL('../fixtures/upper-handler.js', import.meta.url).href);
  for (const service of ['upper-relative', 'upper-url', 'upper-href']) {
    const server = createServer({ host: '127.0.0.1', port: 0, model: 'event', service });
    const { port } = await server.listen();
    try {
      assert.equal(await roundTrip(port, 'relative'), 'RELATIVE');
    } finally {
      await server.close({ grace: 5 });
    }
  }
});

test('registerService checks the module at registration and names the file it could not load', async () => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  assert.throws(() => services.registerService('missing', './no-such-handler.mjs'), {
    code: 'TCPKIT_INVALID_OPTION',
    message: `handler: cannot load ${path.join(here, 'no-such-handler.mjs')}: no such file`,
  });
  await assert.rejects(services.registerService('broken', '../fixtures/handlers/broken.mjs'), {
    code: 'TCPKIT_INVALID_OPTION',
    message: new RegExp(`^handler: cannot load ${path.join(ROOT, 'test', 'fixtures', 'handlers', 'broken.mjs')}: `),
  });
  await assert.rejects(services.registerService('no-function', '../fixtures/handlers/no-function.mjs'), {
    code: 'TCPKIT_INVALID_OPTION',
    message: `handler: ${path.join(ROOT, 'test', 'fixtures', 'handlers', 'no-function.mjs')} exports no function (default export or "handler")`,
  });
});
