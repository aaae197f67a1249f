// Trust boundaries (issue 15): numbers within what timers hold (3), a failing log never
// stops serving (4), service limits across all addresses (9), log lines within the grammar (14).
// Drives the CLI (dist/: `npm run build:ts` first) on 127.0.0.1 port 0.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net, { connect as netConnect } from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { connectTo as connectJs, eventually, readBytes, run, sleep, startServer, waitClose } from '../helpers.js';
import { startConfigServer, tempDir } from '../exec-helpers.js';

/** helpers.js's connectTo, typed (its JSDoc-less options would infer too narrow a type). */
const connectTo = connectJs as (port: number, opts?: { host?: string; source?: string }) => Promise<net.Socket>;

const tmp = tempDir();
const servers: Array<{ stop: (signal?: NodeJS.Signals) => Promise<unknown> }> = [];
const sockets: net.Socket[] = [];
after(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => s.stop('SIGKILL')));
  tmp.cleanup();
});

function writeConfig(name: string, text: string): string {
  const file = path.join(tmp.dir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** Whether `socket` gets `data` echoed within `ms` (false: nothing came back). */
async function echoes(socket: net.Socket, data: string, ms: number): Promise<boolean> {
  socket.write(data);
  return Promise.race([readBytes(socket, data.length).then((b: Buffer) => b.toString() === data), sleep(ms).then(() => false)]);
}

describe('3: every duration has a maximum a timer can hold, on the CLI and in config files alike', () => {
  it('--time-limit and --grace beyond 2147483 s are refused naming the option (they used to become 1 ms)', async () => {
    for (const [flag, value] of [['--time-limit', '2592000'], ['--grace', '2147484'], ['--idle-timeout', '1e308'], ['--proxy-timeout', '99999999']]) {
      const r = await run(['serve', '--host', '127.0.0.1', '--port', '0', flag!, value!]);
      assert.equal(r.code, 100, `${flag} ${value}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^tcpkit: ${flag}: must be a number of seconds >= 0 and <= 2147483, got "${value}"\\n$|^tcpkit: ${flag}: must be a number of seconds > 0 and <= 2147483`));
    }
  });

  it('grace: 1e308 in a config file is refused naming the field, with the CLI\'s message', async () => {
    const file = writeConfig('huge.yaml', 'services:\n  echo:\n    listen: 127.0.0.1:0\n    internal: echo\n    grace: 1e308\n    limits: { timeLimit: 2592000 }\n');
    const r = await run(['serve', '--config', file]);
    assert.equal(r.code, 100);
    assert.equal(r.stderr, `tcpkit: ${file}: services.echo.grace: must be a number of seconds >= 0 and <= 2147483, got 1e+308\n`);
  });

  it('--time-limit at its maximum does not cut a connection off at once', async () => {
    const srv = await startServer(['--model', 'event', '--time-limit', '2147483', '--grace', '2147483']);
    servers.push(srv);
    const s: net.Socket = await connectTo(srv.port);
    sockets.push(s);
    assert.ok(await echoes(s, 'one', 10_000), 'echo');
    await sleep(1500);
    assert.ok(await echoes(s, 'two', 10_000), 'still served after 1.5 s');
    assert.doesNotMatch(srv.log(), /kill|TimeoutOverflowWarning|time-limit/);
    s.destroy();
  });
});

describe('9: service limits hold per service across all its addresses; ids are unique', () => {
  it('maxConns: 1 over three addresses serves one connection at a time', async () => {
    const file = writeConfig('three.yaml', [
      'services:',
      '  echo:',
      '    listen: [127.0.0.1:0, 127.0.0.2:0, 127.0.0.3:0]',
      '    internal: echo',
      '    model: event',
      '    limits: { maxConns: 1 }',
      '',
    ].join('\n'));
    const srv = await startConfigServer(file, 3);
    servers.push(srv);
    const ports = srv.ports as Record<string, number>;
    const [a, b, c] = [['127.0.0.1', ports['echo 127.0.0.1:0']!], ['127.0.0.2', ports['echo 127.0.0.2:0']!], ['127.0.0.3', ports['echo 127.0.0.3:0']!]] as const;
    const first: net.Socket = await connectTo(a[1], { host: a[0] });
    sockets.push(first);
    assert.ok(await echoes(first, 'first', 10_000));
    // The others wait in the backlog (connected by the kernel, not served) while the first is open.
    const second: net.Socket = await connectTo(b[1], { host: b[0] });
    const third: net.Socket = await connectTo(c[1], { host: c[0] });
    sockets.push(second, third);
    assert.equal(await echoes(second, 'second', 1500), false, 'a second connection on another address was served at once');
    assert.doesNotMatch(srv.log(), /count 2\//);
    first.destroy();
    // Served one after the other once the first is gone.
    const got = await readBytes(second, 6);
    assert.equal(got.toString(), 'second');
    second.destroy();
    third.write('third');
    assert.equal((await readBytes(third, 5)).toString(), 'third');
    third.destroy();
    await srv.waitFor(/end .* id \d+ ms \d+[^\n]*\n(.|\n)*end .* id \d+ ms \d+[^\n]*\n(.|\n)*end .* id \d+ ms/);
    const ids = [...srv.log().matchAll(/^accept .* id (\d+)( service \S+)?$/gm)].map((m) => m[1]);
    assert.equal(ids.length, 3, srv.log());
    assert.equal(new Set(ids).size, 3, `connection ids repeat: ${ids.join(' ')}`);
    assert.doesNotMatch(srv.log(), /count [2-9]\/1/);
  });

  it('perSource: 1 over two addresses refuses a second connection from the same source', async () => {
    const file = writeConfig('persource.yaml', [
      'services:',
      '  echo:',
      '    listen: [127.0.0.1:0, 127.0.0.2:0]',
      '    internal: echo',
      '    model: event',
      '    limits: { maxConns: 10, perSource: 1 }',
      '',
    ].join('\n'));
    const srv = await startConfigServer(file, 2);
    servers.push(srv);
    const ports = srv.ports as Record<string, number>;
    const first: net.Socket = await connectTo(ports['echo 127.0.0.1:0']!, { host: '127.0.0.1', source: '127.0.0.1' });
    sockets.push(first);
    assert.ok(await echoes(first, 'first', 10_000));
    const second: net.Socket = await connectTo(ports['echo 127.0.0.2:0']!, { host: '127.0.0.2', source: '127.0.0.1' });
    sockets.push(second);
    await waitClose(second, 10_000);
    await srv.waitFor(/^refuse 127\.0\.0\.1:\d+ -> 127\.0\.0\.2:\d+ IPv4 reason per-source( service \S+)?$/m);
    first.destroy();
    second.destroy();
  });
});

/** One echo round trip on a new connection; resolves what came back. */
async function echoRound(port: number, text: string): Promise<string> {
  const s = await connectTo(port);
  sockets.push(s);
  s.write(text);
  const got = (await readBytes(s, text.length)).toString();
  s.destroy();
  return got;
}

describe('4: a failing log target never stops serving', () => {
  for (const model of ['iterative', 'event', 'fork', 'prefork', 'threads']) {
    it(`${model}: the log pipe closed mid-load: serving goes on, tcpkit_log_dropped_total counts the lost lines`, async () => {
      const srv = await startServer(['--model', model, '--workers', '2', '--admin', '127.0.0.1:0']);
      servers.push(srv);
      const [, adminUrl] = await srv.waitFor(/^admin (http:\/\/\S+?)\/? pid \d+$/m);
      for (let i = 0; i < 5; i++) assert.equal(await echoRound(srv.port, `before ${i}`), `before ${i}`);
      // The reader of the server's stderr goes away: every later line meets EPIPE.
      srv.proc.stderr!.destroy();
      for (let i = 0; i < 30; i++) assert.equal(await echoRound(srv.port, `after ${i}`), `after ${i}`);
      assert.equal(srv.proc.exitCode, null, 'server alive');
      await eventually(async () => {
        const text = await (await fetch(`${adminUrl}/metrics`)).text();
        const m = /^tcpkit_log_dropped_total (\d+)$/m.exec(text);
        return m !== null && Number(m[1]) > 0;
      }, { timeoutMs: 20_000, message: 'tcpkit_log_dropped_total > 0' });
      assert.deepEqual(await srv.stop('SIGTERM'), { code: 0, signal: null });
    });
  }

  it('2>/dev/full: starts, serves and exits 0 (it used to exit 1 at start)', async () => {
    const full = fs.openSync('/dev/full', 'w');
    const { spawn } = await import('node:child_process');
    const { BIN } = await import('../helpers.js');
    const proc = spawn(process.execPath, [BIN as string, 'serve', '--host', '127.0.0.1', '--port', '0', '--print-port', '--model', 'fork'], {
      stdio: ['ignore', 'pipe', full],
    });
    fs.closeSync(full);
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    servers.push({ stop: async () => void (proc.exitCode === null && proc.kill('SIGKILL')) });
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      proc.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /^(\d+)\n/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      void exited.then((code) => reject(new Error(`exited ${code} before printing its port`)));
    });
    for (let i = 0; i < 5; i++) assert.equal(await echoRound(port, `full ${i}`), `full ${i}`);
    proc.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});

describe('14: log lines within the grammar', () => {
  it('a flood of resets during the PROXY header: no peerless line per connection, none under -q but rate-limited ones', async () => {
    const srv = await startServer(['--model', 'event', '--proxy-protocol', '-q', '-c', '2000']);
    servers.push(srv);
    const N = 1000;
    const t0 = Date.now();
    // Connect and reset at once, as fast as possible: many resets reach the server before it accepts.
    await new Promise<void>((resolve) => {
      let done = 0;
      for (let i = 0; i < N; i++) {
        const s = netConnect({ host: '127.0.0.1', port: srv.port });
        s.on('error', () => {});
        s.on('connect', () => {
          s.resetAndDestroy();
          if (++done === N) resolve();
        });
      }
    });
    // Every refusal is reported by now or within the next report second.
    await sleep(2500);
    const seconds = (Date.now() - t0) / 1000;
    const lines = srv.log().split('\n').filter(Boolean);
    const peerless = lines.filter((l: string) => l.startsWith('error where proxy'));
    for (const l of peerless) assert.match(l, /^error where proxy code TCPKIT_PROXY_TRUNCATED( suppressed \d+)? message "[^"]*"$/);
    // At most one a second (and the last count), whatever the number of resets.
    assert.ok(peerless.length <= Math.ceil(seconds) + 2, `${peerless.length} peerless lines in ${seconds} s:\n${peerless.slice(0, 5).join('\n')}`);
    // -q: a reset with a known peer is a per-connection line, left out.
    assert.equal(lines.filter((l: string) => / reason proxy-truncated /.test(l)).length, 0);
    // Still serving.
    assert.equal(srv.proc.exitCode, null);
  });

  for (const model of ['fork', 'event', 'iterative', 'prefork', 'threads']) {
    it(`${model}: an exec'd program's stderr is logged as "stderr pid P id I text T", as under fork`, async () => {
      const srv = await startServer(['--model', model, '--workers', '1', '--exec', '--', '/bin/sh', '-c', 'echo "says $$" >&2; echo $$']);
      servers.push(srv);
      const s = await connectTo(srv.port);
      sockets.push(s);
      s.end();
      const pid = Number((await new Promise<string>((resolve) => {
        let out = '';
        s.on('data', (c: Buffer) => (out += c.toString()));
        s.on('end', () => resolve(out));
      })).trim());
      assert.ok(pid > 0);
      await srv.waitFor(new RegExp(`^stderr pid ${pid} id \\d+ text says\\\\x20${pid}$`, 'm'));
      assert.doesNotMatch(srv.log(), /code stderr/);
    });
  }
});
