// The one decision on how a listener's connections reach their service (src/net/fast-path.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { acceptPath, recordInfo } from '../../../src/net/fast-path.js';

test('native only for a model that serves bare descriptors, on plain TCP, without TLS', () => {
  const base = { listener: 'tcp' as const, descriptors: true };
  assert.equal(acceptPath(base), 'native');
  assert.equal(acceptPath({ ...base, descriptors: false }), 'socket', 'a service read in JavaScript');
  assert.equal(acceptPath({ ...base, tls: true }), 'socket', 'TLS needs the socket');
  assert.equal(acceptPath({ ...base, listener: 'unix' }), 'native', 'UNIX listeners: credentials come with the batch');
});

test('native-socket: a service read here, on plain TCP, without PROXY or TLS, where Node lets a descriptor become a socket', () => {
  const base = { listener: 'tcp' as const, proxy: false, descriptors: false, sockets: true, wrapsSockets: true };
  assert.equal(acceptPath(base), 'native-socket');
  assert.equal(acceptPath({ ...base, sockets: false }), 'socket', 'not read here (a child, a worker)');
  assert.equal(acceptPath({ ...base, wrapsSockets: false }), 'socket', 'no TCP handle class in this Node');
  assert.equal(acceptPath({ ...base, proxy: true }), 'socket', 'the PROXY gate');
  assert.equal(acceptPath({ ...base, tls: true }), 'socket', 'TLS');
  assert.equal(acceptPath({ ...base, listener: 'unix' }), 'socket', 'UNIX: peer credentials from the socket');
  assert.equal(acceptPath({ ...base, descriptors: true }), 'native', 'a model that serves bare descriptors keeps the native path');
});

test('recordInfo: the peer from the record, the local end from the listener or the record', () => {
  const r = { fd: 9, address: '127.0.0.2', port: 4000, family: 'IPv4' as const, localAddress: '127.0.0.1', localPort: 7, localFamily: 'IPv4' as const };
  const fixed = { address: '127.0.0.9', port: 9, family: 'IPv4' as const };
  assert.deepEqual(recordInfo(r, fixed).local, fixed);
  const info = recordInfo(r, undefined);
  assert.deepEqual(info.local, { address: '127.0.0.1', port: 7, family: 'IPv4' });
  assert.deepEqual(info.remote, { address: '127.0.0.2', port: 4000, family: 'IPv4' });
  assert.equal(info.id, 0);
});

test('recordInfo: behind a PROXY header, the ends it named, the real ones under via', () => {
  const real = { local: { address: '127.0.0.1', port: 7, family: 'IPv4' as const }, remote: { address: '127.0.0.2', port: 4000, family: 'IPv4' as const } };
  const announced = { local: { address: '192.0.2.1', port: 443, family: 'IPv4' as const }, remote: { address: '198.51.100.7', port: 5555, family: 'IPv4' as const }, via: { ...real, version: 1 as const } };
  const info = recordInfo({ fd: 9, address: '127.0.0.2', port: 4000, family: 'IPv4', announced }, real.local);
  assert.deepEqual(info.remote, announced.remote);
  assert.deepEqual(info.local, announced.local);
  assert.deepEqual(info.via, announced.via);
});

test('recordInfo: a UNIX peer is its credentials, the local end the listening path', () => {
  const path = { address: '/run/x.sock', port: 0, family: 'unix' as const };
  const info = recordInfo({ fd: 9, address: '', port: 0, family: 'unix', pid: 42, uid: 1000, gid: 100 }, path);
  assert.deepEqual(info.remote, { address: '', port: 0, family: 'unix', pid: 42, uid: 1000, gid: 100 });
  assert.deepEqual(info.local, path);
});
