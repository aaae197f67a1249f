// address.ts: the ends of an accepted connection, with and without a known local end.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { acceptedLocal, realEndpointsOf, type Endpoint } from '../../src/address.js';

const v4 = (address: string, port = 9877): Endpoint => ({ address, port, family: 'IPv4' });

test('acceptedLocal: a socket bound to one address fixes the local end of its connections', () => {
  assert.deepEqual(acceptedLocal(v4('127.0.0.1')), v4('127.0.0.1'));
  assert.deepEqual(acceptedLocal({ address: '::1', port: 80, family: 'IPv6' }), { address: '::1', port: 80, family: 'IPv6' });
});

test('acceptedLocal: a wildcard or IPv4-mapped bind does not (each connection is asked)', () => {
  assert.equal(acceptedLocal(v4('0.0.0.0')), undefined);
  assert.equal(acceptedLocal({ address: '::', port: 80, family: 'IPv6' }), undefined);
  assert.equal(acceptedLocal({ address: '::ffff:127.0.0.1', port: 80, family: 'IPv6' }), undefined);
  assert.equal(acceptedLocal({ address: 'localhost', port: 80, family: 'IPv4' }), undefined);
});

const servers: net.Server[] = [];
after(() => servers.forEach((s) => s.close()));

/** An accepted socket (paused) and its client. */
async function pair(): Promise<{ accepted: net.Socket; client: net.Socket; port: number }> {
  const server = net.createServer({ pauseOnConnect: true });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect(port, '127.0.0.1');
  await new Promise((resolve) => client.once('connect', resolve));
  return { accepted: await accepted, client, port };
}

test('realEndpointsOf: getsockname + getpeername, or the given local end without getsockname', async () => {
  const { accepted, client, port } = await pair();
  const ends = realEndpointsOf(accepted)!;
  assert.deepEqual(ends.local, v4('127.0.0.1', port));
  assert.deepEqual(ends.remote, v4('127.0.0.1', client.localPort!));
  const known = v4('127.0.0.1', port);
  const given = realEndpointsOf(accepted, known)!;
  assert.equal(given.local, known);
  assert.deepEqual(given.remote, ends.remote);
  accepted.destroy();
  client.destroy();
});

test('realEndpointsOf: undefined once the socket is gone', async () => {
  const { accepted, client } = await pair();
  accepted.destroy();
  client.destroy();
  assert.equal(realEndpointsOf(accepted), undefined);
});
