// The one accept loop: pause/resume on a duplicate of a listening descriptor, and the descriptor-headroom backoff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Acceptor, BurstReporter, DESCRIPTOR_HEADROOM, openDescriptors, type AcceptError } from '../../../src/net/acceptor.js';
import { fdutil } from '../../../src/net/fdutil.js';
import { serverFd } from '../../../src/net/internals.js';

/** A listening socket on 127.0.0.1 port 0; returns our own duplicate of it and its port (the server is closed). */
async function listening(): Promise<{ fd: number; port: number }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const port = (server.address() as net.AddressInfo).port;
  const fd = fdutil.dup(serverFd(server));
  await new Promise((resolve) => server.close(resolve));
  return { fd, port };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => resolve(s));
    s.once('error', reject);
  });
}

async function until(fn: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !fn(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(fn(), what);
}

test('starts paused; connections wait in the backlog until resume, then each is handed on once', async () => {
  const { fd, port } = await listening();
  const acceptor = new Acceptor(fd, { ownsFd: true });
  const accepted: net.Socket[] = [];
  const clients: net.Socket[] = [];
  try {
    acceptor.onConnection((s) => accepted.push(s));
    assert.equal(acceptor.state, 'paused');
    clients.push(await connect(port), await connect(port));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(accepted.length, 0, 'nothing accepted while paused');
    acceptor.resume();
    assert.equal(acceptor.state, 'accepting');
    await until(() => accepted.length === 2, 'both accepted after resume');
    acceptor.pause();
    acceptor.pause();
    assert.equal(acceptor.state, 'paused');
    clients.push(await connect(port));
    acceptor.resume();
    acceptor.resume();
    await until(() => accepted.length === 3, 'the third accepted after a second resume');
  } finally {
    for (const s of [...accepted, ...clients]) s.destroy();
    acceptor.close();
    acceptor.close();
  }
  assert.equal(acceptor.state, 'closed');
  assert.equal(acceptor.fd, -1);
});

test('close() leaves a descriptor it does not own open', async () => {
  const { fd, port } = await listening();
  const acceptor = new Acceptor(fd);
  acceptor.resume();
  acceptor.close();
  // The socket still listens through `fd`: the kernel completes the handshake.
  const s = await connect(port);
  s.destroy();
  fdutil.close(fd);
});

test('near the descriptor limit: backs off, reports EMFILE once, accepts again once descriptors are free', async () => {
  const { fd, port } = await listening();
  const clients: net.Socket[] = [];
  // The clients wait in the backlog (nobody accepts yet).
  for (let i = 0; i < 8; i++) clients.push(await connect(port));
  // A limit just above what this process holds now: the first accepted sockets come within the headroom.
  const limit = openDescriptors() + DESCRIPTOR_HEADROOM + 2;
  const acceptor = new Acceptor(fd, { ownsFd: true, limit });
  const accepted: net.Socket[] = [];
  const errors: AcceptError[] = [];
  try {
    acceptor.onConnection((s) => accepted.push(s));
    acceptor.onError((e) => errors.push(e));
    acceptor.resume();
    await until(() => errors.length === 1 && acceptor.state === 'backoff', 'one EMFILE report, backing off');
    assert.equal(errors[0]!.code, 'EMFILE');
    assert.match(errors[0]!.message, new RegExp(`of ${limit} descriptors open; accepting paused 100 ms`));
    const held = accepted.length;
    assert.ok(held < 8, `some connections wait in the backlog (accepted ${held})`);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(acceptor.state, 'backoff', 'still backing off while descriptors are short');
    assert.equal(errors.length, 1, 'the rest of the burst is counted, not reported');
    // Resume while backing off does not cut the backoff short.
    acceptor.resume();
    assert.equal(acceptor.state, 'backoff');
    for (const s of accepted.splice(0)) s.destroy();
    for (const s of clients.splice(0, held)) s.destroy();
    await until(() => accepted.length > 0, 'accepting again once descriptors are free');
  } finally {
    for (const s of [...accepted, ...clients]) s.destroy();
    acceptor.close();
  }
});

test('descriptors an owner declares (a fork child\'s pidfd and pipe) count: backs off before they run out', async () => {
  const { fd, port } = await listening();
  const clients: net.Socket[] = [];
  for (let i = 0; i < 8; i++) clients.push(await connect(port));
  // Room for many sockets by number alone, but the owner holds (and will open) nearly all of it elsewhere.
  const limit = openDescriptors() + 2 * DESCRIPTOR_HEADROOM + 8;
  const acceptor = new Acceptor(fd, { ownsFd: true, limit });
  const accepted: net.Socket[] = [];
  const errors: AcceptError[] = [];
  // What the owner is about to open per connection (declared, not opened here): 10, so the fourth connection
  // brings the count within the headroom although the socket numbers alone stay far below it.
  const kept: number[] = [];
  acceptor.countDescriptors(() => ({ held: 0, reserved: kept.length * 10 }));
  try {
    acceptor.onConnection((s) => {
      accepted.push(s);
      kept.push(1);
    });
    acceptor.onError((e) => errors.push(e));
    acceptor.resume();
    await until(() => errors.length === 1 && acceptor.state === 'backoff', 'one EMFILE report, backing off');
    assert.match(errors[0]!.message, new RegExp(`of ${limit} descriptors open`));
    assert.ok(accepted.length < 8, `the rest wait in the backlog (accepted ${accepted.length})`);
    // The owner lets go: accepting resumes and takes the rest.
    kept.length = 0;
    acceptor.countDescriptors(undefined);
    await until(() => accepted.length === 8, 'every connection accepted once the owner holds nothing');
  } finally {
    for (const s of [...accepted, ...clients]) s.destroy();
    acceptor.close();
  }
});

test('BurstReporter: one report per second, the rest folded into the next report', () => {
  const r = new BurstReporter();
  const e = () => Object.assign(new Error('x'), { code: 'EMFILE' }) as AcceptError;
  const first = r.take(e());
  assert.equal(first?.suppressed, 0);
  assert.equal(r.take(e()), undefined);
  assert.equal(r.take(Object.assign(e(), { suppressed: 3 })), undefined);
  r.count();
  // 1 + (1 + 3) + 1 folded so far.
  assert.equal(r.take(e()), undefined);
});

test('onNativeSockets: natively accepted connections arrive as paused net.Sockets with their peer known, and carry data both ways', async () => {
  const { fd, port } = await listening();
  const acceptor = new Acceptor(fd, { ownsFd: true });
  const accepted: net.Socket[] = [];
  const clients: net.Socket[] = [];
  class Marked extends net.Socket {}
  try {
    acceptor.onConnection((s) => accepted.push(s));
    acceptor.onNativeSockets({ address: '127.0.0.1', port, family: 'IPv4' }, Marked);
    acceptor.resume();
    for (let i = 0; i < 3; i++) clients.push(await connect(port));
    await until(() => accepted.length === 3, 'three connections handed on');
    for (let i = 0; i < 3; i++) {
      const s = accepted[i]!;
      assert.ok(s instanceof Marked, 'built from the class given');
      assert.equal(s.isPaused(), true, 'paused, as pauseOnConnect hands sockets on');
      // The peer is the client's own end: the address came with the accept.
      assert.equal(s.remoteAddress, '127.0.0.1');
      assert.equal(s.remotePort, clients[i]!.localPort);
      assert.equal(s.remoteFamily, 'IPv4');
      assert.deepEqual(s.address(), { address: '127.0.0.1', port, family: 'IPv4' });
    }
    // A working socket: what the client sends comes back.
    const s = accepted[0]!;
    s.pipe(s);
    const echoed = new Promise<string>((resolve) => clients[0]!.once('data', (c) => resolve(c.toString())));
    clients[0]!.write('ping');
    assert.equal(await echoed, 'ping');
  } finally {
    for (const s of [...accepted, ...clients]) s.destroy();
    acceptor.close();
  }
});

test('onNativeSockets on a wildcard listener: each socket\'s local end comes with the accept', async () => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen({ host: '0.0.0.0', port: 0 }, resolve));
  const port = (server.address() as net.AddressInfo).port;
  const fd = fdutil.dup(serverFd(server));
  await new Promise((resolve) => server.close(resolve));
  const acceptor = new Acceptor(fd, { ownsFd: true });
  const accepted: net.Socket[] = [];
  let client: net.Socket | undefined;
  try {
    acceptor.onConnection((s) => accepted.push(s));
    acceptor.onNativeSockets(undefined);
    acceptor.resume();
    client = await connect(port);
    await until(() => accepted.length === 1, 'accepted');
    assert.deepEqual(accepted[0]!.address(), { address: '127.0.0.1', port, family: 'IPv4' });
    assert.equal(accepted[0]!.remotePort, client.localPort);
  } finally {
    for (const s of accepted) s.destroy();
    client?.destroy();
    acceptor.close();
  }
});

test('native mode: a record handler that throws is an uncaught exception of the process, not dropped in the addon', async () => {
  const { spawnSync } = await import('node:child_process');
  // In a child: node:test treats an uncaught exception as its own test's failure.
  const code = `
    import net from 'node:net';
    import { Acceptor } from ${JSON.stringify(new URL('../../../src/net/acceptor.ts', import.meta.url).href)};
    import { serverFd } from ${JSON.stringify(new URL('../../../src/net/internals.ts', import.meta.url).href)};
    import { fdutil } from ${JSON.stringify(new URL('../../../src/net/fdutil.ts', import.meta.url).href)};
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const port = server.address().port;
      const acceptor = new Acceptor(fdutil.dup(serverFd(server)), { ownsFd: true });
      server.close();
      acceptor.onRecords(() => { throw new Error('handler bug'); }, false, 0);
      process.on('uncaughtException', (err) => { console.log('uncaught: ' + err.message); process.exit(0); });
      acceptor.resume();
      net.connect(port, '127.0.0.1').on('error', () => {});
      setTimeout(() => { console.log('dropped'); process.exit(1); }, 5000);
    });
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.stdout.trim(), 'uncaught: handler bug', r.stderr);
});
