// The native launcher (src/net/launcher.ts, native/launch.c): posix_spawn on a connected
// socket, reaped by the helper's pidfd thread, beside child_process children.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { launch, launchedDescriptors, liveChildren, type Launched } from '../../../src/net/launcher.js';
import { SystemCallError } from '../../../src/errors.js';

const fdCount = () => fs.readdirSync('/proc/self/fd').length;

/** A loopback server whose each connection is handed to `onSocket` (paused, as tcpkit's are). */
async function withServer(onSocket: (s: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, onSocket);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return { port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** Connect, send `data`, half-close, read to EOF. */
function roundTrip(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => s.end(data));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      s.destroy();
      resolve(Buffer.concat(chunks));
    });
    s.on('error', reject);
  });
}

/** The fields of /proc/PID/status as a map. */
function status(pid: number): Map<string, string> {
  return new Map(
    fs
      .readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()] as [string, string]),
  );
}

describe('launcher', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-launcher-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('runs a program on the socket: bytes back exactly, exit code reported, only fds 0-2, exact env', async () => {
    const fds = fdCount();
    let child: Launched | undefined;
    const seen: { fds?: string[]; env?: string; held?: number } = {};
    const srv = await withServer((socket) => {
      // The program reports its own descriptors (ls's) and the environment it was started with (its
      // /proc/$$/environ, read by the program itself: no race with the exec from out here).
      child = launch({ file: '/bin/sh', argv: ['sh', '-c', 'ls /proc/self/fd >&2; echo ENV >&2; cat /proc/$$/environ >&2; cat'], env: { ONLY: 'this' }, socket });
      socket.destroy();
      // Its pidfd and its stderr pipe, counted for the acceptor's headroom check.
      seen.held = launchedDescriptors();
      const stderr: Buffer[] = [];
      child.stderr!.on('data', (c: Buffer) => stderr.push(c));
      child.stderr!.on('end', () => {
        const [fds = '', env = ''] = Buffer.concat(stderr).toString('latin1').split('ENV\n');
        seen.fds = fds.trim().split('\n');
        seen.env = env;
      });
    });
    try {
      const data = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919) & 0xff));
      assert.ok((await roundTrip(srv.port, data)).equals(data));
      assert.deepEqual(await child!.exited, { code: 0, signal: null });
      // Its stderr pipe may end a moment after the exit is reaped.
      for (let i = 0; i < 200 && seen.env === undefined; i++) await new Promise((r) => setTimeout(r, 25));
      // ls's own directory descriptor is the fourth.
      assert.ok(seen.fds!.length <= 4 && ['0', '1', '2'].every((f) => seen.fds!.includes(f)), String(seen.fds));
      assert.equal(seen.env, 'ONLY=this\0');
    } finally {
      await srv.close();
    }
    assert.equal(liveChildren(), 0);
    assert.equal(seen.held, 2, 'a live child holds its pidfd and its stderr pipe here');
    for (let i = 0; i < 100 && launchedDescriptors() > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(launchedDescriptors(), 0, 'both released once it is reaped and its pipe read to the end');
    // The reaper thread and its descriptors end after a second with no child.
    for (let i = 0; i < 100 && fdCount() > fds; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(fdCount() <= fds, `descriptors back to ${fds} (now ${fdCount()})`);
  });

  it('a program that cannot be executed throws ENOENT or EACCES at once, leaving nothing open', async () => {
    const notExec = path.join(dir, 'not-executable');
    fs.writeFileSync(notExec, '#!/bin/sh\necho hi\n', { mode: 0o644 });
    const errors: unknown[] = [];
    const srv = await withServer((socket) => {
      for (const file of [path.join(dir, 'missing'), notExec]) {
        try {
          launch({ file, argv: [file], env: {}, socket });
        } catch (err) {
          errors.push(err);
        }
      }
      socket.destroy();
    });
    const fds = fdCount();
    try {
      assert.equal((await roundTrip(srv.port, Buffer.from('x'))).length, 0);
    } finally {
      await srv.close();
    }
    assert.equal(errors.length, 2);
    assert.ok(errors[0] instanceof SystemCallError);
    assert.equal((errors[0] as SystemCallError).code, 'ENOENT');
    assert.match((errors[0] as Error).message, /^spawn ENOENT .*missing$/);
    assert.equal((errors[1] as SystemCallError).code, 'EACCES');
    assert.equal(liveChildren(), 0);
    // The reaper thread and its descriptors end after a second with no child.
    for (let i = 0; i < 100 && fdCount() > fds; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(fdCount() <= fds, `descriptors back to ${fds} (now ${fdCount()})`);
  });

  it('a clean start (own session, default signals); kill() signals through the pidfd; the signal is reported; a reaped child cannot be signalled', async () => {
    let child: Launched | undefined;
    const srv = await withServer((socket) => {
      child = launch({ file: 'sleep', argv: ['sleep', '60'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, socket, stderr: 'inherit', setsid: true });
      socket.destroy();
    });
    const s = net.connect(srv.port, '127.0.0.1');
    try {
      await new Promise((r) => s.once('connect', r));
      for (let i = 0; i < 200 && !child; i++) await new Promise((r) => setTimeout(r, 10));
      // Its own session (setsid): it leads it.
      const stat = fs.readFileSync(`/proc/${child!.pid}/stat`, 'utf8');
      assert.equal(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]), child!.pid);
      // Node ignores SIGPIPE; the program starts with nothing blocked and signals 1-31 at their
      // defaults (glibc's posix_spawn ignores its two internal real-time signals, 32 and 33).
      const sig = status(child!.pid);
      assert.equal(sig.get('SigBlk'), '0000000000000000');
      assert.equal(BigInt(`0x${sig.get('SigIgn')}`) & 0x7fffffffn, 0n, `SigIgn ${sig.get('SigIgn')}`);
      assert.equal(child!.kill('SIGTERM'), true);
      assert.deepEqual(await child!.exited, { code: null, signal: 'SIGTERM' });
      assert.equal(child!.kill('SIGKILL'), false);
      assert.equal(fs.existsSync(`/proc/${child!.pid}`), false, 'reaped: no zombie');
    } finally {
      s.destroy();
      await srv.close();
    }
  });

  it('child_process children and launched ones are each reaped by their owner, with the right status', async () => {
    const launched: Launched[] = [];
    const srv = await withServer((socket) => {
      const n = launched.length;
      launched.push(launch({ file: '/bin/sh', argv: ['sh', '-c', `cat >/dev/null; exit ${n % 5}`], env: {}, socket }));
      socket.destroy();
    });
    try {
      const nodeKids = Array.from({ length: 6 }, (_, i) =>
        new Promise<number | null>((resolve) => spawn(process.execPath, ['-e', `setTimeout(() => process.exit(${10 + i}), ${50 * i})`]).once('exit', (code) => resolve(code))),
      );
      const trips = Array.from({ length: 20 }, () => roundTrip(srv.port, Buffer.from('data')));
      assert.deepEqual(await Promise.all(nodeKids), [10, 11, 12, 13, 14, 15]);
      await Promise.all(trips);
      const exits = await Promise.all(launched.map((c) => c.exited));
      assert.deepEqual(exits.map((e) => e.code), launched.map((_, i) => i % 5));
    } finally {
      await srv.close();
    }
  });

  it('an idle process can exit: the launcher holds Node open only while a child lives', () => {
    const script = `
      import net from 'node:net';
      import { launch } from ${JSON.stringify(new URL('../../../src/net/launcher.ts', import.meta.url).href)};
      const srv = net.createServer({ pauseOnConnect: true }, (s) => {
        const c = launch({ file: '/bin/sh', argv: ['sh', '-c', 'sleep 0.3; exit 7'], env: {}, socket: s, stderr: 'inherit' });
        s.destroy();
        srv.close();
        c.exited.then((e) => console.log(JSON.stringify(e)));
      });
      srv.listen(0, '127.0.0.1', () => net.connect(srv.address().port, '127.0.0.1').on('error', () => {}).on('close', () => {}).resume());
    `;
    // Ends by itself once the child is reaped: no explicit exit, bounded by the timeout.
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '{"code":7,"signal":null}');
  });
});
