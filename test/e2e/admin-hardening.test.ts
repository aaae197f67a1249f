// The admin endpoint under pressure (issue 15, item 6): event streams that do not read
// are dropped, streams are capped, snapshots are bounded and shared between requests,
// cross-site browser requests are refused, and --admin-token-file requires a bearer
// token. A real Server and admin endpoint in this process (the library), and the CLI.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createServer, type Server } from '../../src/server.js';
import { startAdmin, SNAPSHOT_MAX_TIME_WAIT, type AdminEndpoint } from '../../src/status/admin.js';
import { parseAdminArg } from '../../src/cli/status.js';
import { tempDir } from '../exec-helpers.js';
import { connectTo, eventually, exchange, sleep, startServer } from '../helpers.js';

/** A raw HTTP/1.1 GET on a plain socket; resolves with the socket once the status line arrived. */
async function rawGet(port: number, target: string, headers: Record<string, string> = {}): Promise<{ socket: net.Socket; head: string }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const lines = [`GET ${target} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''];
  socket.write(lines.join('\r\n'));
  const head = await new Promise<string>((resolve, reject) => {
    let got = '';
    const onData = (c: Buffer) => {
      got += c.toString('latin1');
      if (got.includes('\r\n')) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed before a status line: ${got}`)));
  });
  return { socket, head };
}

describe('admin endpoint: event streams', () => {
  let server: Server;
  let admin: AdminEndpoint;
  let port: number;
  before(async () => {
    server = createServer({ host: '127.0.0.1', port: 0, model: 'event' });
    await server.listen();
    admin = await startAdmin(server, { stateFile: false, maxStreams: 3, maxStreamBuffer: 256 * 1024 });
    port = admin.address.port;
  });
  after(async () => {
    await admin?.close();
    await server?.close();
  });

  it('a stream whose client stops reading is dropped; a reading one is not', async () => {
    const slow = await rawGet(port, '/events');
    assert.match(slow.head, /^HTTP\/1\.1 200 /);
    slow.socket.pause();
    const reader = await rawGet(port, '/events');
    let read = 0;
    reader.socket.on('data', (c: Buffer) => (read += c.length));
    // More than the kernel can hold for a client that does not read (its send buffer at
    // most, the reader's untouched receive buffer twice over), plus a margin.
    const field = (f: string, i: number) => Number(fs.readFileSync(`/proc/sys/net/ipv4/${f}`, 'utf8').trim().split(/\s+/)[i]);
    const budget = field('tcp_wmem', 2) + 2 * field('tcp_rmem', 1) + (4 << 20);
    // 8 KiB log records, as a busy server would send.
    const message = 'x'.repeat(8192);
    for (let sent = 0, i = 0; sent < budget; sent += 8192, i++) {
      server.emit('event', { type: 'error', where: 'accept', code: 'EIO', message });
      if (i % 8 === 0) await sleep(2);
    }
    await eventually(() => read > budget / 2, { timeoutMs: 20_000, message: 'the reading client to keep up' });
    // Now read what the slow one was sent: it ends (dropped), well short of everything.
    let slowRead = 0;
    slow.socket.on('data', (c: Buffer) => (slowRead += c.length));
    const closed = new Promise<void>((resolve) => slow.socket.once('close', () => resolve()));
    slow.socket.resume();
    await Promise.race([closed, sleep(15_000).then(() => assert.fail(`the slow stream was not dropped (${slowRead} bytes read)`))]);
    assert.ok(slowRead < budget, `the slow client got ${slowRead} of ${budget} bytes`);
    assert.equal(reader.socket.destroyed, false, 'the reading stream stays');
    reader.socket.destroy();
  });

  it('at most maxStreams streams; the next gets 503 (and a place frees when one closes)', async () => {
    await eventually(async () => (await rawGet(port, '/events').then((r) => (r.socket.destroy(), r.head))).startsWith('HTTP/1.1 200'), {
      message: 'earlier streams gone',
    });
    const open = [];
    for (let i = 0; i < 3; i++) open.push(await rawGet(port, '/events'));
    for (const o of open) assert.match(o.head, /^HTTP\/1\.1 200 /);
    const fourth = await rawGet(port, '/events');
    assert.match(fourth.head, /^HTTP\/1\.1 503 /);
    fourth.socket.destroy();
    open.pop()!.socket.destroy();
    await eventually(async () => {
      const r = await rawGet(port, '/events');
      r.socket.destroy();
      return r.head.startsWith('HTTP/1.1 200');
    }, { message: 'a place to free up' });
    for (const o of open) o.socket.destroy();
  });
});

describe('admin endpoint: snapshots', () => {
  let server: Server;
  let admin: AdminEndpoint;
  before(async () => {
    server = createServer({ host: '127.0.0.1', port: 0, model: 'event' });
    await server.listen();
    admin = await startAdmin(server, { stateFile: false });
  });
  after(async () => {
    await admin?.close();
    await server?.close();
  });

  it('100 requests at once share one or two snapshots (one /proc scan and ss run, not 100)', async () => {
    const times = await Promise.all(Array.from({ length: 100 }, async () => ((await (await fetch(`${admin.url}/status`)).json()) as { time: number }).time));
    assert.ok(new Set(times).size <= 2, `distinct snapshots: ${new Set(times).size}`);
  });

  it('TIME_WAIT sockets are counted, and only a few listed ("and N more")', async () => {
    const port = server.address()!.port;
    const want = SNAPSHOT_MAX_TIME_WAIT + 40;
    // The client closes first, so each connection leaves its client side in TIME_WAIT.
    for (let i = 0; i < want; i++) {
      const s = await connectTo(port);
      await exchange(s, Buffer.from('x'));
      s.destroy();
    }
    await sleep(300);
    const snap = (await (await fetch(`${admin.url}/status`)).json()) as { sockets: Array<{ state: string }>; timeWait: number; omitted: number; notes: string[] };
    assert.ok(snap.timeWait >= want, `timeWait ${snap.timeWait}`);
    const listed = snap.sockets.filter((s) => s.state === 'TIME_WAIT').length;
    assert.ok(listed <= SNAPSHOT_MAX_TIME_WAIT, `listed ${listed}`);
    assert.ok(snap.omitted >= want - SNAPSHOT_MAX_TIME_WAIT);
    assert.ok(snap.notes.some((n) => /^and \d+ more sockets not listed/.test(n)), snap.notes.join('\n'));
  });

  it('a cross-site browser request is refused for anything but the static page', async () => {
    const base = admin.url;
    for (const target of ['/status', '/metrics', '/events']) {
      const cross = await fetch(`${base}${target}`, { headers: { 'sec-fetch-site': 'cross-site' } });
      assert.equal(cross.status, 403, target);
      await cross.body?.cancel();
      const foreign = await fetch(`${base}${target}`, { headers: { origin: 'http://attacker.example' } });
      assert.equal(foreign.status, 403, target);
      await foreign.body?.cancel();
    }
    assert.equal((await fetch(`${base}/`, { headers: { 'sec-fetch-site': 'cross-site' } })).status, 200);
    // The dashboard's own requests (same-origin), and tools that send no such header, pass.
    const same = await fetch(`${base}/status`, { headers: { 'sec-fetch-site': 'same-origin', origin: base } });
    assert.equal(same.status, 200);
    await same.body?.cancel();
    const tool = await fetch(`${base}/metrics`);
    assert.equal(tool.status, 200);
    await tool.body?.cancel();
  });
});

describe('--admin-token-file', () => {
  let tmp: { dir: string; cleanup: () => void };
  before(() => {
    tmp = tempDir();
  });
  after(() => tmp?.cleanup());

  it('every request needs the bearer token; the dashboard may carry it as ?token=', async () => {
    const file = path.join(tmp.dir, 'token');
    fs.writeFileSync(file, 's3cret-token\n', { mode: 0o600 });
    const server = await startServer(['--model', 'event', '--admin', '127.0.0.1:0', '--admin-token-file', file]);
    try {
      const [, url] = (await server.waitFor(/admin (http:\/\/\S+)\//)) as RegExpMatchArray;
      const none = await fetch(`${url}/status`);
      assert.equal(none.status, 401);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer');
      assert.equal((await fetch(`${url}/`)).status, 401);
      assert.equal((await fetch(`${url}/status`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
      const ok = await fetch(`${url}/status`, { headers: { authorization: 'Bearer s3cret-token' } });
      assert.equal(ok.status, 200);
      await ok.body?.cancel();
      const page = await fetch(`${url}/?token=s3cret-token`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /new EventSource\('events' \+ location\.search\)/);
    } finally {
      assert.deepEqual(await server.stop(), { code: 0, signal: null });
    }
  });

  it('allows a non-loopback --admin address; an empty or missing file is a usage error', () => {
    const file = path.join(tmp.dir, 'token2');
    fs.writeFileSync(file, 'abc\n');
    assert.deepEqual(parseAdminArg('192.0.2.1:9900', false, file), { host: '192.0.2.1', port: 9900, allowPublic: false, token: 'abc' });
    assert.throws(() => parseAdminArg('192.0.2.1:9900', false), /not a loopback address/);
    fs.writeFileSync(file, '\n');
    assert.throws(() => parseAdminArg('127.0.0.1:0', false, file), { code: 'TCPKIT_USAGE', message: /must hold one token/ });
    assert.throws(() => parseAdminArg('127.0.0.1:0', false, path.join(tmp.dir, 'absent')), { message: /cannot read .*ENOENT/ });
    assert.throws(() => parseAdminArg(undefined, false, file), /--admin-token-file needs --admin/);
  });
});
