// Descriptor exhaustion: a server under `ulimit -n 128` with 1,000 connections at once stays
// alive, does not spin, logs EMFILE once per burst, loses no connection (they wait in the
// backlog) and serves every one of them once clients leave.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { BIN, echoOnce, eventually, fdsOf, sleep, type Exit } from '../helpers.js';

// Beyond the kernel's backlog (--backlog 2048 here) connects would stall: Node ignores `backlog` in listen({ fd }), so tcpkit passes it positionally.
const CLIENTS = 1000;

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // fields 14 and 15, in clock ticks (USER_HZ 100)
}

async function startLimited(args: string[]) {
  const cmd = `ulimit -n 128 && exec "${process.execPath}" "${BIN}" serve --host 127.0.0.1 --port 0 --print-port ${args.join(' ')}`;
  const proc = spawn('bash', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c) => (log += c));
  const exited = new Promise<Exit>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no port; stderr:\n${log}`)), 60_000);
    proc.stdout.once('data', (c: Buffer) => {
      clearTimeout(timer);
      resolve(Number(String(c).trim()));
    });
  });
  return { proc, pid: proc.pid!, port, exited, log: () => log };
}

/** Connect, send `payload`, keep the write side open until told; resolves what came back at EOF. */
function holdingClient(port: number, payload: string) {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const chunks: Buffer[] = [];
  const connected = new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
  const done = new Promise<Buffer>((resolve, reject) => {
    s.on('data', (c) => chunks.push(c));
    s.once('end', () => {
      s.destroy();
      resolve(Buffer.concat(chunks));
    });
    s.once('error', reject);
  });
  done.catch(() => {});
  s.write(payload);
  return { socket: s, connected, done };
}

test('ulimit -n 128, 500 connections: no spin, one EMFILE report per burst, every connection served', { timeout: 120_000 }, async (t) => {
  const server = await startLimited(['--model', 'event', '-c', '5000', '--backlog', '2048', '-q']);
  const clients: ReturnType<typeof holdingClient>[] = [];
  try {
    const baseline = fdsOf(server.pid).length;
    for (let i = 0; i < CLIENTS; i++) clients.push(holdingClient(server.port, `client ${i}\n`));
    await Promise.all(clients.map((c) => c.connected));
    await eventually(() => /code EMFILE/.test(server.log()), { timeoutMs: 20_000, message: 'an EMFILE report' });

    // At the limit for 3 s: the server must sleep, not spin. A spinning accept loop costs ~1 s of CPU per second.
    const cpu0 = cpuSeconds(server.pid);
    const t0 = Date.now();
    await sleep(3000);
    const ratio = (cpuSeconds(server.pid) - cpu0) / ((Date.now() - t0) / 1000);
    t.diagnostic(`CPU at the descriptor limit: ${ratio.toFixed(3)} s per s; descriptors ${fdsOf(server.pid).length} of 128`);
    assert.ok(ratio < 0.3, `server CPU while at the descriptor limit: ${ratio.toFixed(2)} s per s`);
    assert.ok(fdsOf(server.pid).length <= 128, 'never above the limit');

    const reports = server.log().match(/^error where accept code EMFILE .*$/gm) ?? [];
    assert.ok(reports.length >= 1 && reports.length <= 3, `EMFILE reports during one burst: ${reports.length}\n${reports.join('\n')}`);
    t.diagnostic(`EMFILE report lines: ${reports.length}; ${reports.at(-1)}`);
    assert.match(reports[0] ?? '', /suppressed \d+ message ".*of.*128.*descriptors/);

    // Clients leave: each half-closes; the server echoes and ends it, frees its descriptor, accepts the next.
    for (const c of clients) c.socket.end();
    const replies = await Promise.all(clients.map((c) => c.done));
    replies.forEach((r, i) => assert.equal(r.toString(), `client ${i}\n`, `client ${i} echoed exactly`));
    assert.equal(server.proc.exitCode, null, 'server alive');
    assert.deepEqual(await echoOnce(server.port, Buffer.from('after')), Buffer.from('after'));
    await eventually(() => fdsOf(server.pid).length <= baseline + 1, { message: 'descriptors back to the baseline' });
  } finally {
    for (const c of clients) c.socket.destroy();
    server.proc.kill('SIGTERM');
    const timer = setTimeout(() => server.proc.kill('SIGKILL'), 20_000);
    const exit = await server.exited;
    clearTimeout(timer);
    assert.equal(exit.code, 0, server.log().slice(-2000));
  }
});
