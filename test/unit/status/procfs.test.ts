// The /proc reader on real sockets and processes: what it parses must match what
// the sockets and processes of this test are.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import {
  parseHexEndpoint,
  parseTcpTable,
  procAvailability,
  processTree,
  parentMap,
  readProcess,
  readTcpSockets,
  readThreads,
  socketInodesOf,
  socketOwners,
  type TcpSocket,
} from '../../../src/status/procfs.js';
import { errnoOf, eventually, portOf, sleep } from '../../helpers.js';

const linux = process.platform === 'linux' ? false : 'reads /proc, which only Linux has';
const le = os.endianness() === 'LE';
const open: { destroy(): unknown }[] = [];
after(() => {
  for (const o of open) o.destroy();
});

function listen(host: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer({ pauseOnConnect: true });
    s.once('error', reject);
    s.listen({ host, port: 0 }, () => resolve(s));
    open.push({ destroy: () => s.close() });
  });
}
function connect(port: number, host: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host, port });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
    open.push(c);
  });
}
const find = (port: number, state: string): TcpSocket[] => readTcpSockets(undefined, { ports: new Set([port]), inodes: new Set() }).filter((s) => s.state === state && (s.local.port === port || s.remote.port === port));

test('hex addresses and ports decode as the kernel wrote them', () => {
  // 127.0.0.1:9877 and [::1]:9877 as /proc/net/tcp{,6} print them on this machine's byte order.
  const v4 = le ? '0100007F:2695' : '7F000001:2695';
  assert.deepEqual(parseHexEndpoint(v4), { address: '127.0.0.1', port: 9877, family: 'IPv4' });
  const v6 = le ? '00000000000000000000000001000000:2695' : '00000000000000000000000000000001:2695';
  assert.deepEqual(parseHexEndpoint(v6), { address: '::1', port: 9877, family: 'IPv6' });
  const mapped = le ? '0000000000000000FFFF00000100007F:0050' : '00000000000000000000FFFF7F000001:0050';
  assert.equal(parseHexEndpoint(mapped).address, '::ffff:127.0.0.1');
  assert.equal(parseHexEndpoint('00000000000000000000000000000000:0000').address, '::');
  const line =
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n' +
    `   0: ${v4} ${le ? '0100007F:A706' : '7F000001:A706'} 08 0000000A:00000014 00:00000000 00000000  1000        0 4242 1 0 20 4 30 10 -1\n` +
    '   1: garbage\n';
  assert.deepEqual(parseTcpTable(line, 'tcp'), [
    {
      proto: 'tcp',
      local: { address: '127.0.0.1', port: 9877, family: 'IPv4' },
      remote: { address: '127.0.0.1', port: 42758, family: 'IPv4' },
      state: 'CLOSE_WAIT',
      sendQ: 10,
      recvQ: 20,
      uid: 1000,
      inode: 4242,
    },
  ]);
});

test('LISTEN, the ESTABLISHED pair, queues, owners and TIME_WAIT of real sockets', { skip: linux }, async () => {
  const server = await listen('127.0.0.1');
  const port = portOf(server);
  const [l] = find(port, 'LISTEN');
  assert.ok(l, 'the listening socket is in /proc/net/tcp');
  assert.equal(l.proto, 'tcp');
  assert.deepEqual(l.local, { address: '127.0.0.1', port, family: 'IPv4' });
  assert.equal(l.remote.port, 0);
  assert.ok(socketInodesOf(process.pid).has(l.inode), 'this process holds the LISTEN inode');

  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const c = await connect(port, '127.0.0.1');
  const conn = await accepted; // paused: the server does not read
  open.push(conn);
  c.write(Buffer.alloc(1000, 1));
  const pair = await eventually(() => {
    const est = find(port, 'ESTABLISHED');
    const srv = est.find((s) => s.local.port === port);
    return est.length === 2 && srv?.recvQ === 1000 ? est : undefined;
  }, { message: 'Recv-Q 1000 on the server side' });
  const srv = pair.find((s) => s.local.port === port)!;
  const cli = pair.find((s) => s.remote.port === port)!;
  assert.equal(cli.local.port, c.localPort);
  assert.equal(srv.remote.port, c.localPort);
  assert.equal(cli.sendQ, 0, 'acknowledged at once on loopback');
  // Decoding only selected lines gives exactly what decoding all and filtering gives.
  const text = fs.readFileSync('/proc/net/tcp', 'utf8');
  const select = { ports: new Set([port]), inodes: new Set([cli.inode]) };
  const wanted = (s: TcpSocket): boolean => s.local.port === port || s.remote.port === port || s.inode === cli.inode;
  const key = (s: TcpSocket): string => `${s.local.port} ${s.remote.port} ${s.inode} ${s.state}`;
  assert.deepEqual(
    parseTcpTable(text, 'tcp', select).map(key).sort(),
    parseTcpTable(text, 'tcp').filter(wanted).map(key).sort(),
  );
  const owners = socketOwners([process.pid]);
  assert.deepEqual(owners.get(srv.inode), [process.pid]);
  assert.deepEqual(owners.get(cli.inode), [process.pid]);

  // The client closes first; the server answers with its own close: the client side waits in TIME_WAIT, owned by nobody.
  const clientPort = c.localPort;
  c.end();
  conn.resume();
  await new Promise((r) => conn.once('end', r));
  conn.end();
  await new Promise((r) => c.once('close', r));
  const tw = await eventually(() => find(port, 'TIME_WAIT').find((s) => s.local.port === clientPort), { message: 'TIME_WAIT' });
  assert.equal(tw.inode, 0);
  assert.equal(socketOwners([process.pid]).has(0), false);
});

test('IPv6 sockets come from /proc/net/tcp6', { skip: linux }, async (t) => {
  let server: net.Server;
  try {
    server = await listen('::1');
  } catch (err) {
    t.skip(`no IPv6 loopback here: ${errnoOf(err).code}`);
    return;
  }
  const port = portOf(server);
  const c = await connect(port, '::1');
  const est = await eventually(() => {
    const e = find(port, 'ESTABLISHED');
    return e.length === 2 ? e : undefined;
  });
  assert.ok(est.every((s) => s.proto === 'tcp6' && s.local.address === '::1' && s.local.family === 'IPv6'));
  assert.equal(find(port, 'LISTEN')[0]?.local.address, '::1');
  c.destroy();
});

test('processes: state, ppid, start time, wait channel, threads, tree', { skip: linux }, async () => {
  assert.deepEqual(procAvailability(), { available: true });
  const me = readProcess(process.pid)!;
  assert.equal(me.ppid, process.ppid);
  assert.equal(me.comm, 'node');
  assert.ok(me.threads > 1, 'node runs several threads');
  assert.ok(Math.abs(me.startedAt - (Date.now() - process.uptime() * 1000)) < 2000, 'start time from stat and uptime');
  const threads = readThreads(process.pid);
  assert.equal(threads.length, me.threads);
  assert.equal(threads[0]?.tid, process.pid, 'the main thread has the pid as its tid');

  // A sleeping child: S in the kernel's hrtimer sleep, under us in the tree.
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const p = await eventually(() => {
      const info = readProcess(child.pid!);
      return info?.state === 'S' && info.comm === 'sleep' && info.wchan !== '-' ? info : undefined;
    }, { message: 'sleep asleep' });
    assert.equal(p.ppid, process.pid);
    assert.match(p.wchan, /^[a-z_0-9.]+$/);
    assert.equal(p.cmdline, 'sleep 30');
    const tree = processTree(process.pid, parentMap());
    assert.equal(tree[0], process.pid);
    assert.ok(tree.includes(child.pid!));
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
  await sleep(10);
  assert.equal(readProcess(child.pid!), undefined, 'reaped: gone from /proc');
  assert.equal(readProcess(2 ** 22 + 1), undefined);
});
