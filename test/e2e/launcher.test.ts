// The native launcher through the CLI (`node bin/tcpkit.js`, which runs dist/: `npm run build:ts` first):
// --exec programs and the fork model's children are started by posix_spawn and reaped on pidfds.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { childrenOf, connectTo, echoOnce, eventually, fdsOf, startServer, waitClose } from '../helpers.js';

type Server = Awaited<ReturnType<typeof startServer>>;

/** Run `total` tasks, at most `width` at a time. */
async function bounded(total: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < total) await task(next++);
    }),
  );
}

const count = (text: string, re: RegExp) => (text.match(re) ?? []).length;

describe('launcher (CLI)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-launcher-e2e-'));
  const servers: Server[] = [];
  after(async () => {
    for (const s of servers) await s.stop('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('2,000 --exec cat connections, 8 at a time: every byte back, every child reaped, descriptors back', { timeout: 600_000 }, async () => {
    const server = await startServer(['--exec', '--', '/bin/cat']);
    servers.push(server);
    const fds = fdsOf(server.pid).length;
    const total = 2000;
    await bounded(total, 8, async () => {
      const data = randomBytes(1 + Math.floor(Math.random() * 20_000));
      const got: Buffer = await echoOnce(server.port, data);
      assert.ok(got.equals(data), `${got.length} of ${data.length} bytes, exact`);
    });
    await eventually(() => count(server.log(), /^end pid \d+ exitcode 0 /gm) === total, { timeoutMs: 60_000, message: `${total} clean ends` });
    assert.equal(count(server.log(), /^accept /gm), total);
    // No zombie, no straggler: /proc lists no child of the server (a zombie would still be listed).
    await eventually(() => childrenOf(server.pid).length === 0, { message: 'no child of the server' });
    // The reaper thread and its two descriptors end a second after the last child.
    await eventually(() => fdsOf(server.pid).length <= fds, { message: `server descriptors back to ${fds}` });
    assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
  });

  for (const model of ['fork', 'event']) {
    it(`${model}: a program gone missing, then one not executable: a clear log line, that connection closed, the server keeps serving`, { timeout: 120_000 }, async () => {
      const prog = path.join(dir, `prog-${model}`);
      fs.copyFileSync('/bin/cat', prog);
      fs.chmodSync(prog, 0o755);
      // The program exists at start (checked then); it changes while the server runs.
      const server = await startServer(['--model', model, '--exec', '--', prog]);
      servers.push(server);
      const hello = Buffer.from('hello\n');
      assert.ok((await echoOnce(server.port, hello)).equals(hello));

      for (const [code, breakIt] of [
        ['ENOENT', () => fs.rmSync(prog)],
        ['EACCES', () => fs.chmodSync(prog, 0o644)],
      ] as const) {
        breakIt();
        const from = server.log().length;
        const s = await connectTo(server.port);
        assert.ok(['end', 'ECONNRESET'].includes(await waitClose(s)), 'the connection is closed');
        s.destroy();
        const line = (await server.waitFor(new RegExp(`^.*code ${code}.*\\n`, 'm'), { from }))[0];
        // `error where spawn code ENOENT id N pid P message "spawn ENOENT PATH"`, under every model.
        assert.ok(line.startsWith('error where ') && line.includes(`spawn\\x20${code}\\x20${prog}`), line);
        // Repair it: the very same server serves the next connection.
        if (code === 'ENOENT') fs.copyFileSync('/bin/cat', prog);
        fs.chmodSync(prog, 0o755);
        assert.ok((await echoOnce(server.port, hello)).equals(hello));
      }
      assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
    });
  }

  for (const model of ['fork', 'event']) {
    it(`${model}: a script without #! runs under /bin/sh, as execvp runs it, by path and by name on PATH (it failed ENOEXEC)`, { timeout: 120_000 }, async () => {
      const bin = path.join(dir, `bin-${model}`);
      fs.mkdirSync(bin);
      const script = path.join(bin, 'no-shebang');
      fs.writeFileSync(script, 'printf "%s %s\\n" "$0" "$1"\nexec cat\n', { mode: 0o755 });
      for (const [prog, env] of [
        [script, undefined],
        ['no-shebang', { PATH: `${bin}:${process.env.PATH}` }],
      ] as const) {
        const server = await startServer(['--model', model, '--exec', '--', prog, 'first-arg'], { env });
        servers.push(server);
        // $0 is the script's path (sh was handed it, as execvp does), $1 the program's own argument.
        assert.equal((await echoOnce(server.port, 'hello\n')).toString(), `${script} first-arg\nhello\n`);
        assert.doesNotMatch(server.log(), /ENOEXEC/);
        assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
      }
    });
  }

  it('a program that ignores SIGTERM at shutdown is killed after --grace', { timeout: 120_000 }, async () => {
    const server = await startServer(['--grace', '1', '--exec', '--', '/bin/sh', '-c', 'trap "" TERM; exec sleep 60']);
    servers.push(server);
    const s = await connectTo(server.port);
    const pid = Number((await server.waitFor(/^accept \S+ -> \S+ IPv4 pid (\d+)/m))[1]);
    await eventually(() => fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').startsWith('sleep'), { message: 'sleep running' });
    server.proc.kill('SIGTERM');
    assert.deepEqual(await server.exited, { code: 0, signal: null });
    const log = server.log();
    assert.match(log, new RegExp(`^kill pid ${pid} signal SIGTERM reason grace$`, 'm'));
    assert.match(log, new RegExp(`^kill pid ${pid} signal SIGKILL reason grace$`, 'm'));
    assert.match(log, new RegExp(`^end pid ${pid} signal SIGKILL `, 'm'));
    assert.equal(fs.existsSync(`/proc/${pid}`), false, 'killed and reaped');
    s.destroy();
  });

  it('--spare with --exec is refused with a clear message', { timeout: 60_000 }, async () => {
    await assert.rejects(startServer(['--spare', '2', '--exec', '--', '/bin/cat']), /spare: does not apply to a service that runs a program per connection/);
  });

  it('child_process children are still reaped beside launched ones: fork --spare (spares by child_process, children by the launcher)', { timeout: 120_000 }, async () => {
    const server = await startServer(['--model', 'fork', '--spare', '1']);
    servers.push(server);
    const data = randomBytes(5000);
    for (let i = 0; i < 10; i++) assert.ok((await echoOnce(server.port, data)).equals(data));
    // A spare waiting now (every connection ended, and a spare started that has served none): kill it; its exit
    // is logged from Node's own reaping, and another spare starts. The spare that served the last echo may still
    // be on its way out, so the one picked must have no `accept` line.
    await eventually(() => server.log().split('\n').filter((l) => l.startsWith('end ')).length >= 10, { message: '10 connections ended' });
    const idleSpare = (): RegExpExecArray | null => {
      const log = server.log();
      const last = log.split('\n').filter((l) => /^spawn pid \d+ role spare$/.test(l)).at(-1) ?? '';
      const m = /^spawn pid (\d+) role spare$/.exec(last);
      return m && !new RegExp(`^accept .* pid ${m[1]} `, 'm').test(log) ? m : null;
    };
    const spare = Number((await eventually(idleSpare, { message: 'an idle spare' }))[1]);
    await eventually(() => childrenOf(server.pid).some((c: { pid: number }) => c.pid === spare), { message: 'the spare running' });
    const from = server.log().length;
    process.kill(spare, 'SIGKILL');
    await server.waitFor(new RegExp(`^exit pid ${spare} role spare signal SIGKILL$`, 'm'), { from });
    await server.waitFor(/^spawn pid \d+ role spare$/m, { from });
    for (let i = 0; i < 10; i++) assert.ok((await echoOnce(server.port, data)).equals(data));
    await eventually(() => childrenOf(server.pid).every((c: { state: string }) => c.state !== 'Z'), { message: 'no zombie' });
    assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
  });

  it('prefork with --exec: a killed worker is reaped, logged and restarted while its programs are launched natively', { timeout: 120_000 }, async () => {
    const server = await startServer(['--model', 'prefork', '--workers', '2', '--exec', '--', '/bin/cat']);
    servers.push(server);
    const data = randomBytes(5000);
    for (let i = 0; i < 10; i++) assert.ok((await echoOnce(server.port, data)).equals(data));
    const worker = Number((await server.waitFor(/^spawn pid (\d+) role worker$/m))[1]);
    const from = server.log().length;
    process.kill(worker, 'SIGKILL');
    await server.waitFor(new RegExp(`^exit pid ${worker} role worker signal SIGKILL$`, 'm'), { from });
    await server.waitFor(/^spawn pid \d+ role worker$/m, { from });
    for (let i = 0; i < 10; i++) assert.ok((await echoOnce(server.port, data)).equals(data));
    assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
    assert.equal(childrenOf(server.pid).length, 0);
  });
});
