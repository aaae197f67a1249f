// Trust boundaries, inputs (issue 15 items 8, 11, 12, 13): config files are read capped and
// only when regular (a FIFO or a device is a clear error, at start and on SIGHUP, and a
// running server keeps serving); access-rule environment names are checked under every
// rule; --env-clear / `env: { clear, pass }` pass only what is listed; odd --host values are
// errors; SIGUSR2 under --config is logged and ignored. Real processes on 127.0.0.1.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { echoOnce, run, sleep, startServer as startServerJs } from '../helpers.js';
import { startConfigServer as startConfigServerJs, tempDir } from '../exec-helpers.js';

// The JavaScript helpers take `env`, which their inferred types leave out.
type Env = Record<string, string>;
const startServer = startServerJs as (args: string[], o?: { env?: Env }) => ReturnType<typeof startServerJs>;
const startConfigServer = startConfigServerJs as (file: string, count: number, o?: { env?: Env }) => ReturnType<typeof startConfigServerJs>;

const tmp = tempDir();
const servers: Array<{ stop(signal?: string): Promise<{ code: number | null; signal: string | null }> }> = [];
after(async () => {
  const codes = await Promise.all(servers.map((s) => s.stop('SIGTERM')));
  assert.deepEqual(codes.filter((c) => c.code !== 0), []);
  tmp.cleanup();
});

const ECHO = 'services:\n  echo:\n    listen: 127.0.0.1:0\n    internal: echo\n';

/** A FIFO nobody writes to: opening it for reading without O_NONBLOCK would block forever. */
function fifo(name: string): string {
  const file = path.join(tmp.dir, name);
  execFileSync('mkfifo', [file]);
  return file;
}

describe('trust: config files (item 11)', () => {
  it('--config /dev/zero is refused at once (not read until memory runs out)', async () => {
    const r = await run(['serve', '--config', '/dev/zero'], { timeoutMs: 30_000 });
    assert.equal(r.code, 100);
    assert.match(r.stderr, /\/dev\/zero: cannot read: a device, not a regular file/);
  });

  it('a FIFO at start is refused at once (start-up does not hang)', async () => {
    const file = fifo('start.fifo');
    const r = await run(['serve', '--config', file], { timeoutMs: 30_000 });
    assert.equal(r.code, 100);
    assert.match(r.stderr, /start\.fifo: cannot read: a FIFO, not a regular file/);
  });

  it('a file over the size cap is refused', async () => {
    const file = path.join(tmp.dir, 'huge.yaml');
    fs.writeFileSync(file, `${ECHO}# ${'x'.repeat(1024 * 1024)}\n`);
    const r = await run(['serve', '--config', file], { timeoutMs: 30_000 });
    assert.equal(r.code, 100);
    assert.match(r.stderr, /huge\.yaml: cannot read: \d+ bytes, more than the limit of 1048576/);
  });

  it('a FIFO swapped in before SIGHUP: the reload fails with a clear line, the server keeps serving and stops on SIGTERM', async () => {
    const file = path.join(tmp.dir, 'swap.yaml');
    fs.writeFileSync(file, ECHO);
    const srv = await startConfigServer(file, 1);
    servers.push(srv);
    const port = srv.ports['echo 127.0.0.1:0']!;
    assert.equal((await echoOnce(port, 'one')).toString(), 'one');
    fs.rmSync(file);
    fifo('swap.yaml');
    const from = srv.log().length;
    srv.proc.kill('SIGHUP');
    // Spaces in a logged message are escaped (\x20, its backslash doubled by JSON quoting): match words.
    await srv.waitFor(/^reload failed message ".*swap\.yaml:\S*cannot\S*read:\S*a\S*FIFO,\S*not\S*a\S*regular\S*file;\S*the\S*previous/m, { from });
    assert.equal((await echoOnce(port, 'two')).toString(), 'two');
    const r = await srv.stop('SIGTERM');
    assert.equal(r.code, 0);
  });
});

describe('trust: SIGUSR2 under --config (item 8)', () => {
  it('is logged and ignored, never the default action; the server keeps serving', async () => {
    const file = path.join(tmp.dir, 'usr2.yaml');
    fs.writeFileSync(file, ECHO);
    const srv = await startConfigServer(file, 1);
    servers.push(srv);
    srv.proc.kill('SIGUSR2');
    await srv.waitFor(/^restart state failed pid 0 message "SIGUSR2\S*ignored/m);
    await sleep(200);
    assert.equal(srv.proc.exitCode, null);
    assert.equal((await echoOnce(srv.ports['echo 127.0.0.1:0']!, 'still')).toString(), 'still');
  });
});

describe('trust: exec environment (item 12)', () => {
  it('an env name that is not NAME is refused under `allow: all` as under any other rule', async () => {
    for (const from of ['all', '127.0.0.1']) {
      const file = path.join(tmp.dir, `env-${from}.yaml`);
      fs.writeFileSync(
        file,
        `services:\n  env:\n    listen: 127.0.0.1:0\n    exec: [/usr/bin/env]\n    access:\n      - allow: ${from}\n        env: { "LD_PRELOAD=/tmp/evil.so X": "1" }\n`,
      );
      const r = await run(['serve', '--config', file], { timeoutMs: 30_000 });
      assert.equal(r.code, 100, `allow: ${from}`);
      assert.match(r.stderr, /services\.env\.access\[0\]\.allow\.env: "LD_PRELOAD=\/tmp\/evil\.so X" is not NAME=string/);
    }
  });

  it('--env-clear passes only the UCSPI variables and the --env-pass names', async () => {
    const env = { TRUST_SECRET: 'hidden', TRUST_KEPT: 'kept' };
    const srv = await startServer(['--env-clear', '--env-pass', 'TRUST_KEPT', '--exec', '--', '/usr/bin/env'], { env });
    servers.push(srv);
    const lines = (await echoOnce(srv.port, '')).toString().trim().split('\n').sort();
    const names = lines.map((l: string) => l.slice(0, l.indexOf('=')));
    assert.deepEqual(names, ['PROTO', 'TCPCONNNUM', 'TCPLOCALIP', 'TCPLOCALPORT', 'TCPREMOTEIP', 'TCPREMOTEPORT', 'TRUST_KEPT']);
    assert.ok(lines.includes('TRUST_KEPT=kept'));
  });

  it('config `env: { clear: true, pass: [...] }` does the same; the default passes the server\'s environment', async () => {
    const file = path.join(tmp.dir, 'envclear.yaml');
    fs.writeFileSync(
      file,
      'services:\n  clear:\n    listen: 127.0.0.1:0\n    exec: /usr/bin/env\n    env: { clear: true, pass: [TRUST_KEPT] }\n  all:\n    listen: 127.0.0.1:0\n    exec: /usr/bin/env\n',
    );
    const srv = await startConfigServer(file, 2, { env: { TRUST_SECRET: 'hidden', TRUST_KEPT: 'kept' } });
    servers.push(srv);
    const cleared = (await echoOnce(srv.ports['clear 127.0.0.1:0']!, '')).toString();
    assert.match(cleared, /^TRUST_KEPT=kept$/m);
    assert.doesNotMatch(cleared, /TRUST_SECRET|^PATH=/m);
    const all = (await echoOnce(srv.ports['all 127.0.0.1:0']!, '')).toString();
    assert.match(all, /^TRUST_SECRET=hidden$/m);
  });

  it('--env-pass without --env-clear, and env on a non-exec service, are usage errors', async () => {
    const r = await run(['serve', '--env-pass', 'PATH', '--exec', '--', '/bin/cat'], { timeoutMs: 30_000 });
    assert.equal(r.code, 100);
    assert.match(r.stderr, /--env-pass applies with --env-clear/);
    const file = path.join(tmp.dir, 'envecho.yaml');
    fs.writeFileSync(file, 'services:\n  echo:\n    listen: 127.0.0.1:0\n    internal: echo\n    env: { clear: true }\n');
    const c = await run(['serve', '--config', file], { timeoutMs: 30_000 });
    assert.equal(c.code, 100);
    assert.match(c.stderr, /services\.echo\.env: applies to exec services/);
  });
});

describe('trust: odd --host values (item 13)', () => {
  const refused: Array<[string, RegExp]> = [
    ['', /host: empty address "" \(give 0\.0\.0\.0 or :: to bind every interface\)/],
    ['127.0.0.1 ', /host: address "127\.0\.0\.1 " contains white space/],
    ['fe80::1%nosuchif0', /host: address "fe80::1%nosuchif0": zone "nosuchif0" is not a network interface of this machine/],
  ];
  for (const [host, message] of refused) {
    it(`--host ${JSON.stringify(host)} is a usage error naming the value, nothing is bound`, async () => {
      const r = await run(['serve', '--host', host, '--port', '0'], { timeoutMs: 30_000 });
      assert.equal(r.code, 100, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /^listen /m);
    });
  }

  it('a config listen address with a bogus zone is an error naming the field', async () => {
    const file = path.join(tmp.dir, 'zone.yaml');
    fs.writeFileSync(file, 'services:\n  echo:\n    listen: "[fe80::1%nosuchif0]:0"\n    internal: echo\n');
    const r = await run(['serve', '--config', file], { timeoutMs: 30_000 });
    assert.equal(r.code, 100);
    assert.match(r.stderr, /services\.echo\.listen\[0\]: address "fe80::1%nosuchif0": zone/);
  });

  it('--host [::1] is accepted with its brackets, as in a config file', async (t) => {
    const srv = await startServer(['--host', '[::1]']).catch((err: Error) => err);
    if (srv instanceof Error) {
      if (/EADDRNOTAVAIL|EAFNOSUPPORT/.test(srv.message)) return t.skip('no IPv6 loopback here');
      throw srv;
    }
    servers.push(srv);
    await srv.waitFor(/^listen \[::1\]:\d+ IPv6 /m);
    assert.equal((await echoOnce(srv.port, 'six', { host: '::1' })).toString(), 'six');
  });
});
