// docs/walkthrough.md, step by step: the seed's session (UNP 5.4-5.5, normal startup
// and termination) with tcpkit serve, tcpkit client and tcpkit status in place of
// tcpserv01, tcpcli01, netstat -a and ps. Each state the walkthrough shows is checked.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { StatusSnapshot } from '../../dist/status/snapshot.js';
import type { Endpoint } from '../../dist/address.js';
import { BIN, childrenOf, eventually, run, startServer, type StartedServer } from '../helpers.js';

let server: StartedServer | undefined;
let client: (ChildProcessWithoutNullStreams & { out: string }) | undefined;
after(async () => {
  if (client && client.exitCode === null) client.kill('SIGKILL');
  if (server) await server.stop('SIGTERM');
});

/** `tcpkit status --port PORT --json`, parsed. */
async function status(port: number): Promise<StatusSnapshot> {
  const r = await run(['status', '--port', String(port), '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString());
}

const key = (e: Pick<Endpoint, 'address' | 'port'>): string => `${e.address}:${e.port}`;

/** Resolve with the client's stdout once it has `n` bytes more than `from`. */
function output(proc: { out: string }, n: number): Promise<string> {
  return eventually(() => (proc.out.length >= n ? proc.out : undefined), { message: `client output of ${n} bytes` });
}

/**
 * TcpExtTCPTimeWaitOverflow: connections the kernel closed without a TIME_WAIT socket because its table
 * (net.ipv4.tcp_max_tw_buckets) was full, which a busy shared machine reaches.
 */
function timeWaitOverflows(): number {
  try {
    const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
    const names = lines[0]!.split(/\s+/);
    const values = lines[1]!.split(/\s+/);
    return Number(values[names.indexOf('TCPTimeWaitOverflow')] ?? 0);
  } catch {
    return 0;
  }
}

test('the seed session: LISTEN; ESTABLISHED pair and a child; TIME_WAIT on the client side and no child', async (t) => {
  // 1. Start the server in the background (tcpserv01 &). It listens and waits in epoll, Node's accept.
  const srv = await startServer([]);
  server = srv;
  const { port, pid } = srv;

  // 2. netstat -a: one socket, in LISTEN, owned by the server; the only process is the parent.
  // (A TIME_WAIT left on this port number by an earlier user of it, on this shared machine, is not ours.)
  let s = await status(port);
  const earlier = new Set(s.sockets.filter((k) => k.state === 'TIME_WAIT').map((k) => `${key(k.local)} ${key(k.remote)}`));
  const ours = (list: StatusSnapshot['sockets']): StatusSnapshot['sockets'] => list.filter((k) => !earlier.has(`${key(k.local)} ${key(k.remote)}`));
  assert.equal(s.root, pid);
  assert.deepEqual(
    ours(s.sockets).map((k) => [k.state, key(k.local), k.remote.port, k.pids]),
    [['LISTEN', `127.0.0.1:${port}`, 0, [pid]]],
  );
  assert.deepEqual(
    s.processes.map((p) => [p.pid, p.role, p.connections.length]),
    [[pid, 'parent', 0]],
  );
  const text = (await run(['status', '--port', String(port)])).stdout.toString();
  assert.match(text, new RegExp(`^tcp +0 +0 +127\\.0\\.0\\.1:${port} +\\*:\\* +LISTEN +${pid}$`, 'm'));

  // 3. Start the client (tcpcli01 127.0.0.1): the ESTABLISHED pair appears, the server side held by a new child.
  const cli = Object.assign(spawn(process.execPath, [BIN, 'client', '127.0.0.1', String(port)], { stdio: ['pipe', 'pipe', 'pipe'] }), { out: '' });
  client = cli;
  cli.stdout.setEncoding('utf8').on('data', (c: string) => (cli.out += c));
  const clientExit = new Promise<number | null>((resolve) => cli.once('exit', (code) => resolve(code)));
  s = await eventually(
    async () => {
      const v = await status(port);
      return v.sockets.filter((k) => k.state === 'ESTABLISHED').length === 2 && v.processes.length === 2 ? v : undefined;
    },
    { message: 'the ESTABLISHED pair and the child' },
  );
  const serverSide = s.sockets.find((k) => k.state === 'ESTABLISHED' && k.local.port === port)!;
  const clientSide = s.sockets.find((k) => k.state === 'ESTABLISHED' && k.remote.port === port)!;
  assert.equal(key(serverSide.remote), key(clientSide.local), 'the two ends of one connection');
  assert.deepEqual(clientSide.pids, [cli.pid], 'the client holds its side');
  const child = s.processes.find((p) => p.role === 'child');
  assert.ok(child, 'a child process is shown');
  assert.equal(child.ppid, pid, 'the child is the server\'s');
  assert.deepEqual(serverSide.pids, [child.pid], 'only the child holds the connected socket: the parent closed its copy');
  assert.deepEqual(s.sockets.find((k) => k.state === 'LISTEN')?.pids, [pid], 'the child does not hold the listening socket');
  assert.deepEqual(child.connections.map((c) => [c.remote, c.state]), [[key(clientSide.local), 'ESTABLISHED']]);
  // ps: both asleep (S), waiting in the kernel; Node waits in epoll where the seed's C waits in accept/read.
  for (const p of s.processes) {
    assert.match(p.stat, /^[SR]$/, `pid ${p.pid} stat ${p.stat}`);
  }
  assert.notEqual(child.wchan, '', 'a wait channel is shown');

  // 4. Type two lines, each echoed; then ^D.
  cli.stdin.write('hello, world\n');
  assert.equal(await output(cli, 13), 'hello, world\n');
  cli.stdin.write('good bye\n');
  assert.equal(await output(cli, 22), 'hello, world\ngood bye\n');
  const overflowsBefore = timeWaitOverflows();
  cli.stdin.end();
  assert.equal(await clientExit, 0);

  // 5. netstat -a | grep PORT: LISTEN, and the client's side in TIME_WAIT (it closed first); no child left.
  s = await eventually(
    async () => {
      const v = await status(port);
      return v.processes.length === 1 && ours(v.sockets).every((k) => k.state === 'LISTEN' || k.state === 'TIME_WAIT') ? v : undefined;
    },
    { message: 'TIME_WAIT and no child' },
  );
  const tw = s.sockets.filter((k) => k.state === 'TIME_WAIT' && key(k.local) === key(clientSide.local));
  if (tw.length === 0 && timeWaitOverflows() > overflowsBefore) {
    // Not tcpkit's doing: the kernel's TIME_WAIT table was full (other work on this machine), so it closed the
    // client's side without one. Everything else is still checked.
    t.diagnostic('the kernel TIME_WAIT table overflowed during the test (TcpExtTCPTimeWaitOverflow): the client-side TIME_WAIT check is skipped');
  } else {
    assert.equal(tw.length, 1, 'the client side is in TIME_WAIT');
    assert.deepEqual(tw[0]!.pids, [], 'no process holds a TIME_WAIT socket');
    assert.equal(tw[0]!.inode, 0);
  }
  assert.equal(ours(s.sockets).filter((k) => k.state === 'TIME_WAIT' && k.local.port === port).length, 0, 'the server side is not');
  assert.deepEqual(s.processes.map((p) => p.role), ['parent']);
  assert.deepEqual(childrenOf(pid), [], 'no child, and no zombie (ps would show Z <defunct>)');
  // The server's log: the child was reaped (no zombie): end ... exitcode 0.
  await srv.waitFor(new RegExp(`end pid ${child.pid} exitcode 0 `));

  const { code } = await srv.stop('SIGTERM');
  assert.equal(code, 0);
});
