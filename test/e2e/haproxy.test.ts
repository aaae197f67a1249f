// A real HAProxy in front of two tcpkit instances: one behind `send-proxy` (v1), one behind
// `send-proxy-v2` (with its CRC32C TLV), health checks on. A client bound to 127.0.0.7 shows up as
// 127.0.0.7 on the tcpkit side (the exec'd program's TCPREMOTEIP where --exec exists, the accept
// line always); killing one instance moves new connections to the other.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connectTo, eventually, exchange, run, startServer, portOf, freePort, BIN, type StartedServer } from '../helpers.js';

const haproxy = ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy'].find((p) => fs.existsSync(p));

/** Does this build's `serve` have --exec (the super-server, issue 4)? Then the program reports TCPREMOTEIP itself. */
const hasExec = /--exec/.test(spawnSync(process.execPath, [BIN, 'serve', '--help'], { encoding: 'utf8' }).stdout);


/** The configuration the test runs, as docs/scaling.md shows it. */
export function haproxyConfig({ frontend, a, b }: { frontend: number; a: number; b: number }): string {
  return `global
    maxconn 256

defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # A connection that fails to reach a server is retried on another one.
    retries 3
    option redispatch

frontend tcpkit_in
    bind 127.0.0.1:${frontend}
    default_backend tcpkit

backend tcpkit
    balance roundrobin
    # Health checks carry the PROXY header too (HAProxy sends it on checks of send-proxy servers).
    default-server check inter 500ms fall 2 rise 1
    server a 127.0.0.1:${a} send-proxy
    server b 127.0.0.1:${b} send-proxy-v2 proxy-v2-options crc32c
`;
}

describe('behind a real HAProxy', { skip: haproxy ? false : 'haproxy is not installed (Debian package haproxy; .ci/run installs it)' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-haproxy-'));
  let a: StartedServer;
  let b: StartedServer;
  let hap: ChildProcessByStdio<null, Readable, Readable> | undefined;
  let hapLog = '';
  let frontend: number;
  // With --exec the program prints the UCSPI variables it got, then echoes; else the echo service.
  const service = hasExec ? ['--exec', '--', '/bin/sh', '-c', 'printf "%s %s\\n" "$TCPREMOTEIP" "$TCPREMOTEPORT"; exec cat'] : [];

  before(async () => {
    assert.ok(haproxy);
    const sa = await startServer(['--proxy-protocol', '--max-conns', '20', ...service]);
    a = sa;
    const sb = await startServer(['--proxy-protocol', '--max-conns', '20', ...service]);
    b = sb;
    frontend = await freePort();
    const cfg = path.join(dir, 'haproxy.cfg');
    fs.writeFileSync(cfg, haproxyConfig({ frontend, a: sa.port, b: sb.port }));
    const check = spawnSync(haproxy, ['-c', '-q', '-f', cfg], { encoding: 'utf8' });
    assert.equal(check.status, 0, `haproxy -c: ${check.stderr}`);
    // -db: stay in the foreground, so the test owns the process and stops it by pid.
    const h = spawn(haproxy, ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    hap = h;
    h.stdout.on('data', (c: Buffer) => (hapLog += c));
    h.stderr.on('data', (c: Buffer) => (hapLog += c));
    await eventually(
      () =>
        new Promise<boolean>((resolve) => {
          const s = net.connect({ host: '127.0.0.1', port: frontend }, () => {
            s.destroy();
            resolve(true);
          });
          s.on('error', () => resolve(false));
        }),
      { timeoutMs: 10_000, message: `HAProxy listening on ${frontend}; its output:\n${hapLog}` },
    );
  });

  after(async () => {
    const h = hap;
    if (h && h.exitCode === null && h.signalCode === null) {
      const exited = new Promise((resolve) => h.once('exit', resolve));
      h.kill('SIGTERM');
      await exited;
    }
    await a?.stop();
    await b?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** One session through HAProxy from 127.0.0.7: { port (the client's), reply }. */
  async function session(text: string): Promise<{ port: number | undefined; reply: string }> {
    const s = await connectTo(frontend, { source: '127.0.0.7' });
    const port = s.localPort;
    const reply = (await exchange(s, Buffer.from(text))).toString();
    return { port, reply };
  }

  const acceptedFrom = (server: StartedServer, port: number | undefined): boolean =>
    new RegExp(`^accept 127\\.0\\.0\\.7:${port} -> 127\\.0\\.0\\.1:${frontend} IPv4 pid \\d+ count \\d+/20 id \\d+ via 127\\.0\\.0\\.1:\\d+$`, 'm').test(server.log());

  it('the client at 127.0.0.7 is the peer on both instances (v1 and v2 headers), every byte echoed', async () => {
    const seen = { a: 0, b: 0 };
    // Round robin alternates; a few sessions reach both instances (bounded).
    for (let i = 0; i < 12 && (seen.a < 2 || seen.b < 2); i++) {
      const text = `session ${i} ${'x'.repeat(1000 * i)}\n`;
      const { port, reply } = await session(text);
      const expected = hasExec ? `127.0.0.7 ${port}\n${text}` : text;
      assert.equal(reply, expected, hasExec ? 'TCPREMOTEIP/TCPREMOTEPORT are the client behind HAProxy' : 'echo');
      await eventually(() => acceptedFrom(a, port) || acceptedFrom(b, port), { timeoutMs: 5000, message: `accept of 127.0.0.7:${port}` });
      if (acceptedFrom(a, port)) seen.a++;
      else seen.b++;
    }
    assert.ok(seen.a >= 2 && seen.b >= 2, `both instances served (a ${seen.a}, b ${seen.b})`);
    // HAProxy's health checks carry headers too and are accepted, never refused.
    assert.doesNotMatch(a.log() + b.log(), /^refuse /m);
  });

  it('health checks are silent at the default level: no error or refuse line, ever (3 s of checks)', async () => {
    // `check inter 500ms` on both servers: six checks each in 3 s. Each used to log
    // `error where proxy code TCPKIT_PROXY_TRUNCATED ...` (a connect reset before its address could be read).
    await new Promise((resolve) => setTimeout(resolve, 3000));
    for (const s of [a, b]) {
      // `stderr` lines are the exec'd program's own (printf into a check's reset connection), not tcpkit's.
      const other = s.log().split('\n').filter((l) => l && !/^(listen|accept|end|stderr) /.test(l));
      assert.deepEqual(other, [], 'only listen, accept and end lines');
    }
  });

  it('tcpkit client --source 127.0.0.7 through HAProxy', async () => {
    const r = await run(['client', '127.0.0.1', String(frontend), '--source', '127.0.0.7', '-v'], { input: 'via the CLI\n' });
    assert.equal(r.code, 0, r.stderr);
    const port = Number(/^connected 127\.0\.0\.7:(\d+) -> /m.exec(r.stderr)?.[1]);
    assert.equal(r.stdout.toString(), hasExec ? `127.0.0.7 ${port}\nvia the CLI\n` : 'via the CLI\n');
    await eventually(() => acceptedFrom(a, port) || acceptedFrom(b, port), { timeoutMs: 5000, message: 'accept line' });
  });

  it('killing one instance moves new connections to the other', async () => {
    const before = (b.log().match(/^accept 127\.0\.0\.7:/gm) ?? []).length;
    a.proc.kill('SIGKILL');
    await a.exited;
    // Right after the kill (HAProxy may not have noticed yet: redispatch retries elsewhere) and after.
    for (let i = 0; i < 6; i++) {
      const text = `after the kill ${i}\n`;
      const { port, reply } = await session(text);
      assert.equal(reply, hasExec ? `127.0.0.7 ${port}\n${text}` : text);
      await eventually(() => acceptedFrom(b, port), { timeoutMs: 5000, message: `instance b accepted 127.0.0.7:${port}` });
    }
    assert.equal((b.log().match(/^accept 127\.0\.0\.7:/gm) ?? []).length, before + 6);
  });
});
