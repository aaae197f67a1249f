// Peers that misbehave: idle hordes from one source, peers that never read, peers that
// reset, half-close or vanish, and a SIGTERM with transfers in flight. Each against a real
// server on loopback, bounded in count and time; every well-behaved byte comes back exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { childrenOf, connectTo, echoOnce, eventually, fdsOf, random, rssOf, sha256, sleep, startServer, tcpMem, type ConnectOptions } from '../helpers.js';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Resolves 'hang' after ms, without keeping the test process alive. */
const deadline = (ms: number): Promise<'hang'> => new Promise((resolve) => setTimeout(() => resolve('hang'), ms).unref());

/** One end of a loopback connection as `ss -tmn` reports it: queues and buffer sizes (SO_RCVBUF, SO_SNDBUF). */
interface KernelSocket {
  recvQ: number;
  sendQ: number;
  rcvbuf: number;
  sndbuf: number;
}

/**
 * Both ends of every established connection to or from `port`, keyed `LOCALPORT>PEERPORT`, from `ss -tmn`
 * (iproute2). Empty where ss is not installed: the caller falls back to /proc/sys/net/ipv4/tcp_{r,w}mem.
 */
function kernelView(port: number): Map<string, KernelSocket> {
  const out = new Map<string, KernelSocket>();
  const r = spawnSync('ss', ['-tmnH', 'state', 'established', `( sport = :${port} or dport = :${port} )`], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) return out;
  const re = /^\s*(\d+)\s+(\d+)\s+\S+:(\d+)\s+\S+:(\d+)\s*\n\s*skmem:\(([^)]*)\)/gm;
  for (const m of r.stdout.matchAll(re)) {
    const field = (name: string): number | undefined => {
      const v = new RegExp(`(?:^|,)${name}(\\d+)`).exec(m[5] ?? '')?.[1];
      return v === undefined ? undefined : Number(v);
    };
    const rcvbuf = field('rb');
    const sndbuf = field('tb');
    if (rcvbuf !== undefined && sndbuf !== undefined) out.set(`${m[3]}>${m[4]}`, { recvQ: Number(m[1]), sendQ: Number(m[2]), rcvbuf, sndbuf });
  }
  return out;
}

/** Echo `n` random bytes through the server and check the reply's checksum. */
async function checkedEcho(port: number, n: number, opts?: ConnectOptions): Promise<void> {
  const data = random(n);
  const reply = await echoOnce(port, data, opts);
  assert.equal(reply.length, data.length);
  assert.equal(sha256(reply), sha256(data));
}

test('2,000 idle connections from one source: another source is served; the idle timeout frees them', { timeout: 120_000 }, async () => {
  const srv = await startServer(['--model', 'event', '-c', '5000', '--backlog', '4096', '--per-source', '100', '--idle-timeout', '3', '-q']);
  const sockets: net.Socket[] = [];
  try {
    const baseline = fdsOf(srv.pid).length;
    const ends: Promise<string>[] = [];
    for (let i = 0; i < 2000; i++) {
      const s = net.connect({ port: srv.port, host: '127.0.0.1' });
      sockets.push(s);
      ends.push(new Promise<string>((resolve) => {
        s.on('error', () => resolve('error'));
        s.on('close', () => resolve('close'));
        s.resume();
      }));
      if (i % 200 === 199) await sleep(20);
    }
    // Past the per-source limit, connections are refused at once; 100 stay open, idle.
    await eventually(() => (srv.log().match(/^refuse .* reason per-source$/gm) ?? []).length >= 1900, {
      timeoutMs: 30_000, message: '1,900 per-source refusals',
    });
    await checkedEcho(srv.port, 100_000, { source: '127.0.0.2' });
    // The idle timeout closes the 100 held ones: every one of the 2,000 ends.
    const results = await Promise.race([Promise.all(ends), deadline(30_000)]);
    assert.notEqual(results, 'hang', 'every idle connection ended within 30 s');
    assert.ok((srv.log().match(/^kill .* reason idle$/gm) ?? []).length >= 100 || /reason idle/.test(srv.log()), 'idle kills logged');
    await checkedEcho(srv.port, 10_000);
    await eventually(() => fdsOf(srv.pid).length <= baseline, { message: 'server descriptors back to the baseline' });
  } finally {
    for (const s of sockets) s.destroy();
    assert.equal((await srv.stop()).code, 0);
  }
});

test('20 peers that send 8 MB and never read: memory stays bounded, others are served', { timeout: 120_000 }, async (t) => {
  const srv = await startServer(['--model', 'event', '-c', '100', '-q']);
  const hogs: net.Socket[] = [];
  try {
    await checkedEcho(srv.port, 1000); // warm
    const rss0 = rssOf(srv.pid);
    const chunk = Buffer.alloc(64 * 1024, 7);
    for (let i = 0; i < 20; i++) {
      const s = await connectTo(srv.port);
      s.pause(); // never read
      s.on('error', () => {});
      for (let k = 0; k < 128; k++) s.write(chunk); // 8 MB queued on our side; the kernel and the server stop it
      hogs.push(s);
    }
    await sleep(3000);
    await checkedEcho(srv.port, 1_000_000);
    const grown = rssOf(srv.pid) - rss0;
    t.diagnostic(`server RSS growth with 20 non-reading peers: ${(grown / 1048576).toFixed(1)} MB`);
    // Unbounded buffering would hold up to 160 MB; backpressure keeps the server to its socket buffers.
    assert.ok(grown < 48 * 1024 * 1024, `server RSS grew by ${(grown / 1048576).toFixed(1)} MB with 20 non-reading peers`);
    const stuck = hogs.reduce((n, s) => n + s.writableLength, 0);
    // What the server has not taken from each peer: what the peer could not write yet (its own buffer) and what waits
    // in the kernel on the way (the peer's Send-Q, the server's Recv-Q). The server may only have taken what it could
    // pass back, so at least 8 MB minus what the kernel lets the echo direction hold (the server socket's send buffer
    // and the peer's receive buffer, SO_SNDBUF/SO_RCVBUF as `ss -m` reports them, else the tcp_wmem/tcp_rmem maxima),
    // minus what the peer read before pausing, minus a generous 1 MiB for the server's own read and write buffers.
    // Bigger kernel buffers give a smaller expectation; a server that kept reading would have taken everything.
    const kernel = kernelView(srv.port);
    const mem = tcpMem();
    let notTaken = 0;
    let expected = 0;
    for (const s of hogs) {
      const peer = kernel.get(`${s.localPort}>${srv.port}`);
      const server = kernel.get(`${srv.port}>${s.localPort}`);
      notTaken += s.writableLength + (peer?.sendQ ?? 0) + (server?.recvQ ?? 0);
      const echoRoom = (server?.sndbuf ?? mem?.wmem.max ?? Infinity) + (peer?.rcvbuf ?? mem?.rmem.max ?? Infinity);
      expected += Math.max(0, 128 * chunk.length - echoRoom - s.readableLength - 1024 * 1024);
    }
    t.diagnostic(`not taken by the server: ${notTaken} bytes (${stuck} unsent); expected at least ${expected} from the kernel's buffers (${kernel.size ? 'ss -m' : `tcp_wmem max ${mem?.wmem.max}, tcp_rmem max ${mem?.rmem.max}`})`);
    assert.ok(notTaken >= expected, `the peers' own writes are held back (${notTaken} bytes not taken by the server, ${stuck} unsent: expected at least ${expected})`);
  } finally {
    for (const s of hogs) s.destroy();
    assert.equal((await srv.stop()).code, 0);
  }
});

test('resets (SO_LINGER 0), half-closes and vanishing peers under fork --spare: no crash, no leaked child, others intact', { timeout: 180_000 }, async () => {
  const srv = await startServer(['--model', 'fork', '--spare', '2', '-c', '16', '-q']);
  try {
    await eventually(() => childrenOf(srv.pid).length >= 2, { message: 'two spares' });
    const bad = async (kind: string): Promise<void> => {
      const s = await connectTo(srv.port);
      s.on('error', () => {});
      s.write(random(200_000));
      await sleep(50 + Math.floor(Math.random() * 100));
      if (kind === 'reset') s.resetAndDestroy();
      else if (kind === 'half') {
        s.end(); // half-close and never read the reply
        await sleep(300);
        s.destroy();
      } else s.destroy(); // vanish: FIN with unread data in flight
    };
    const kinds = ['reset', 'half', 'vanish'];
    const good = Array.from({ length: 12 }, (_, i) => checkedEcho(srv.port, 100_000 + i * 10_000));
    const bads = Array.from({ length: 24 }, (_, i) => bad(kinds[i % 3] ?? 'vanish'));
    await Promise.all([...good, ...bads]);
    await checkedEcho(srv.port, 50_000);
    assert.equal(srv.proc.exitCode, null, 'server alive');
    // Only the spares are left: every per-connection child ended and was reaped (no zombie).
    await eventually(() => {
      const kids = childrenOf(srv.pid);
      return kids.length <= 2 && kids.every((k) => k.state !== 'Z');
    }, { timeoutMs: 30_000, message: 'children back to the two spares' });
    assert.doesNotMatch(srv.log(), /uncaught|TypeError|RangeError/i);
  } finally {
    const kids = childrenOf(srv.pid).map((k) => k.pid);
    assert.equal((await srv.stop()).code, 0);
    await eventually(() => kids.every((pid) => !alive(pid)), { message: 'no child left' });
  }
});

test('SIGTERM during 100 transfers: each completes byte for byte within the grace period; then nothing is left', { timeout: 90_000 }, async () => {
  const srv = await startServer(['--model', 'prefork', '--workers', '4', '-c', '200', '--grace', '60']);
  const size = 400_000;
  const transfers: { s: net.Socket; data: Buffer; done: Promise<Buffer>; firstBytes: Promise<unknown> }[] = [];
  try {
    await eventually(() => childrenOf(srv.pid).length >= 4, { message: 'four workers' });
    const workers = childrenOf(srv.pid).map((k) => k.pid);
    for (let i = 0; i < 100; i++) {
      const s = await connectTo(srv.port);
      const data = random(size);
      const chunks: Buffer[] = [];
      let got = 0;
      const firstBytes = new Promise((resolve) => s.once('data', resolve));
      const done = new Promise<Buffer>((resolve, reject) => {
        s.on('data', (c: Buffer) => {
          chunks.push(c);
          got += c.length;
        });
        s.once('end', () => resolve(Buffer.concat(chunks)));
        s.once('error', reject);
      });
      s.write(data.subarray(0, 100_000)); // the rest after SIGTERM
      transfers.push({ s, data, done, firstBytes });
    }
    await Promise.all(transfers.map((t) => t.firstBytes));
    srv.proc.kill('SIGTERM');
    await srv.waitFor(/^shutdown signal SIGTERM active \d+/m);
    // New connections are refused from now on; the ones in flight go on.
    await eventually(() => connectTo(srv.port).then((s) => (s.destroy(), false), () => true), { message: 'listener closed' });
    for (const t of transfers) {
      t.s.write(t.data.subarray(100_000, 250_000));
      t.s.end(t.data.subarray(250_000));
    }
    const replies = await Promise.race([Promise.all(transfers.map((t) => t.done)), deadline(60_000)]);
    assert.ok(replies !== 'hang', 'transfers finished within the grace period');
    replies.forEach((r, i) => assert.equal(sha256(r), sha256(transfers[i]!.data), `transfer ${i} byte for byte`));
    const exit = await srv.exited;
    assert.equal(exit.code, 0);
    assert.match(srv.log(), /^closed accepted \d+ served \d+$/m);
    await eventually(() => workers.every((pid) => !alive(pid)), { message: 'every worker gone' });
  } finally {
    for (const t of transfers) t.s.destroy();
    const kids = childrenOf(srv.pid).map((k) => k.pid);
    await srv.stop('SIGKILL');
    for (const pid of kids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
});
