// tcpkit check: what serve would refuse at start, found without binding or starting anything; and the
// SIGHUP reload of a --config server refusing exactly what check refuses (one function behind both).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { portOf, run } from '../helpers.js';
import { startConfigServer, stopAll, tempDir, type ConfigServer } from '../exec-helpers.js';

const tmp = tempDir();
const servers: ConfigServer[] = [];
after(async () => {
  await stopAll(servers);
  tmp.cleanup();
});
const isRoot = process.getuid?.() === 0;
/** serve's and check's one message for spare children with a program service (src/options.ts spareWithProgram). */
const SPARE_PROGRAM = (service: string) =>
  `spare: does not apply to a service that runs a program per connection (${service}): each program is started when its connection arrives`;

function writeConfig(name: string, text: string): string {
  const file = path.join(tmp.dir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** Run `tcpkit check ARGS`: exit code, stdout, and stderr's lines. */
async function check(...args: string[]): Promise<{ code: number | null; out: string; problems: string[] }> {
  const r = await run(['check', ...args]);
  return { code: r.code, out: r.stdout.toString(), problems: r.stderr.split('\n').filter((l) => l !== '') };
}

describe('tcpkit check --config', () => {
  it('accepts a valid file without binding anything: its port may be held by someone else meanwhile', async () => {
    // Hold the port the file names: a check that bound it would fail with EADDRINUSE (exit 111).
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    try {
      const port = portOf(holder);
      const file = writeConfig('ok.yaml', `services:\n  echo:\n    listen: [127.0.0.1:${port}, 127.0.0.1:0]\n    internal: echo\n  cat:\n    listen: 127.0.0.1:0\n    exec: [/bin/cat]\n    limits: { maxConns: 3, perSource: 1 }\n`);
      const r = await check('--config', file);
      assert.deepEqual(r.problems, []);
      assert.equal(r.code, 0);
      assert.equal(r.out, `${file}: ok (2 services, 3 addresses)\n`);
      // Still ours, and nothing else listens on it.
      assert.equal(holder.listening, true);
    } finally {
      holder.close();
    }
  });

  const cases: Array<[string, string, RegExp]> = [
    ['schema: an unknown field', 'services:\n  e:\n    listen: 127.0.0.1:0\n    internal: echo\n    limts: {}\n', /services\.e\.limts: unknown field$/],
    ['address: a port out of range', 'services:\n  e:\n    listen: 127.0.0.1:99999\n    internal: echo\n', /services\.e\.listen\[0\]: must be an integer from 0 to 65535/],
    ['address: a host with a space in it', "services:\n  e:\n    listen: '127.0.0.1 :7'\n    internal: echo\n", /services\.e\.listen\[0\]: address "127\.0\.0\.1 " contains white space/],
    ['user: no such user', 'user: no-such-user-here\nservices:\n  e:\n    listen: 127.0.0.1:0\n    internal: echo\n', /user: no such user "no-such-user-here"/],
    ['program: not found', 'services:\n  e:\n    listen: 127.0.0.1:0\n    exec: [/no/such/program]\n', /services\.e\.exec: program "\/no\/such\/program" not found/],
    ['access rule: not an address', 'services:\n  e:\n    listen: 127.0.0.1:0\n    internal: echo\n    access:\n      - deny: 1.2.3\n', /services\.e\.access\[0\]\.deny: expected an IP address/],
    ['limit: beyond its maximum', 'services:\n  e:\n    listen: 127.0.0.1:0\n    internal: echo\n    grace: 1e308\n', /services\.e\.grace: must be a number of seconds >= 0 and <= 2147483/],
    ['a program service with spares', 'services:\n  e:\n    listen: 127.0.0.1:0\n    exec: [/bin/cat]\n    spare: 2\n', /services\.e: spare: does not apply to a service that runs a program per connection \(exec\)/],
  ];
  for (const [name, text, expected] of cases) {
    it(`refuses ${name}, naming the field (exit 100)`, async () => {
      const file = writeConfig(`bad-${name.replace(/\W+/g, '-')}.yaml`, text);
      const r = await check('--config', file);
      assert.equal(r.code, 100);
      assert.equal(r.out, '');
      assert.equal(r.problems.length, 1, r.problems.join('\n'));
      assert.ok(r.problems[0]!.startsWith(`tcpkit check: ${file}: `), r.problems[0]);
      assert.match(r.problems[0]!, expected);
    });
  }

  it('lists every problem it can find, one line each', async () => {
    const file = writeConfig('two-bad.yaml', 'services:\n  a:\n    listen: 127.0.0.1:0\n    exec: [/bin/cat]\n    spare: 1\n  b:\n    listen: 127.0.0.1:0\n    exec: [/bin/true]\n    spare: 3\n');
    const r = await check('--config', file);
    assert.equal(r.code, 100);
    assert.deepEqual(
      r.problems.map((p) => p.replace(`tcpkit check: ${file}: `, '')),
      [`services.a: ${SPARE_PROGRAM('exec')}`, `services.b: ${SPARE_PROGRAM('exec')}`],
    );
  });

  it('refuses a program the configured user cannot execute (checked for that user, not for root)', { skip: isRoot ? false : 'needs root (user: nobody)' }, async () => {
    // Mode 0700, owned by root, in a directory only root may search: root could run it, nobody cannot.
    const program = path.join(tmp.dir, 'root-only');
    fs.copyFileSync('/bin/cat', program);
    fs.chmodSync(program, 0o700);
    const file = writeConfig('nobody.yaml', `user: nobody\nservices:\n  e:\n    listen: 127.0.0.1:0\n    exec: [${program}]\n`);
    const r = await check('--config', file);
    assert.equal(r.code, 100);
    assert.equal(r.problems.length, 1);
    assert.match(r.problems[0]!, new RegExp(`services\\.e\\.exec: program "${program.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}" cannot be run as the target user: uid 65534`));
    // The same file with the program root can run and nobody too: accepted.
    const ok = writeConfig('nobody-ok.yaml', 'user: nobody\nservices:\n  e:\n    listen: 127.0.0.1:0\n    exec: [/bin/cat]\n');
    assert.equal((await check('--config', ok)).code, 0);
  });
});

describe('tcpkit check with serve options', () => {
  it('accepts what serve would start, binding nothing', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    try {
      const r = await check('--host', '127.0.0.1', '--port', String(portOf(holder)), '--model', 'prefork', '--exec', '--', '/bin/cat');
      assert.deepEqual(r.problems, []);
      assert.equal(r.code, 0);
      assert.equal(r.out, 'serve options: ok\n');
    } finally {
      holder.close();
    }
  });

  it('refuses what serve would refuse, with the same words', async () => {
    for (const [args, expected] of [
      [['--grace', '1e9'], 'tcpkit check: --grace: must be a number of seconds >= 0 and <= 2147483, got "1e9"'],
      [['--exec', '--', '/no/such/program'], 'tcpkit check: exec: program "/no/such/program" not found or not executable'],
      [['--user', 'no-such-user-here'], 'tcpkit check: user: no such user "no-such-user-here" in /etc/passwd'],
      [['--host', ''], 'tcpkit check: host: empty address "" (give 0.0.0.0 or :: to bind every interface)'],
    ] as const) {
      const r = await check(...args);
      assert.equal(r.code, 100, args.join(' '));
      assert.deepEqual(r.problems, [expected]);
      // serve says the same (as `tcpkit:`), before binding anything.
      const s = await run(['serve', '--port', '0', ...args]);
      assert.equal(s.code, 100, `serve ${args.join(' ')}`);
      assert.equal(s.stderr.toString().trim(), expected.replace(/^tcpkit check: /, 'tcpkit: '));
    }
  });
});

describe('SIGHUP reload runs the same check', () => {
  it('a file check refuses is a reload that fails with the same message; the services keep running', async () => {
    const file = writeConfig('reload.yaml', 'services:\n  e:\n    listen: 127.0.0.1:0\n    internal: echo\n');
    const srv = await startConfigServer(file, 1);
    servers.push(srv);
    // Valid for the schema and the option table, refused only by the start-up checks (a spare cannot run a program).
    fs.writeFileSync(file, 'services:\n  e:\n    listen: 127.0.0.1:0\n    internal: echo\n  c:\n    listen: 127.0.0.1:0\n    exec: [/bin/cat]\n    spare: 2\n');
    const r = await check('--config', file);
    assert.equal(r.code, 100);
    const from = srv.log().length;
    srv.proc.kill('SIGHUP');
    // The same words as check's (the log's escaping of spaces aside).
    await srv.waitFor(/reload failed message ".*services\.c:(\\+x20| )spare:(\\+x20| )does(\\+x20| )not(\\+x20| )apply.*previous(\\+x20| )configuration(\\+x20| )stays"/, { from });
    assert.deepEqual(r.problems, [`tcpkit check: ${file}: services.c: ${SPARE_PROGRAM('exec')}`]);
    // And what check accepts, the reload takes.
    fs.writeFileSync(file, 'services:\n  e:\n    listen: 127.0.0.1:0\n    internal: echo\n  c:\n    listen: 127.0.0.1:0\n    exec: [/bin/cat]\n');
    assert.equal((await check('--config', file)).code, 0);
    srv.proc.kill('SIGHUP');
    await srv.waitFor(/reload ok kept 1 started 1 stopped 0/, { from });
  });
});

describe('every problem, and handlers loaded as serve loads them (issue 24 item 5)', () => {
  it('two bad services in a file: two lines, each naming its service', async () => {
    const file = writeConfig('two-bad.yaml', 'services:\n  a:\n    listen: 127.0.0.1:0\n    internal: echo\n    limits: { maxConns: 0 }\n  b:\n    listen: 127.0.0.1:0\n    internal: echo\n    grace: -1\n');
    const r = await check('--config', file);
    assert.equal(r.code, 100);
    assert.deepEqual(r.problems.sort(), [
      `tcpkit check: ${file}: services.a.limits.maxConns: must be an integer from 1 to 1000000, got 0`,
      `tcpkit check: ${file}: services.b.grace: must be a number of seconds >= 0 and <= 2147483, got -1`,
    ]);
  });

  it('a handler that does not exist is refused by check, by serve --config and by a reload alike', async () => {
    const file = writeConfig('nohandler.yaml', 'services:\n  h:\n    listen: 127.0.0.1:0\n    handler: /nonexistent.mjs\n');
    const r = await check('--config', file);
    assert.equal(r.code, 100);
    assert.equal(r.problems.length, 1);
    assert.match(r.problems[0]!, new RegExp(`^tcpkit check: ${file}: services\\.h: handler: cannot load (file://)?/nonexistent\\.mjs`));
    const s = await run(['serve', '--config', file]);
    assert.equal(s.code, 100);
    assert.match(s.stderr, /services\.h: handler: cannot load (file:\/\/)?\/nonexistent\.mjs/);
    const flags = await check('--handler', '/nonexistent.mjs', '--port', '0');
    assert.equal(flags.code, 100);
    assert.match(flags.problems.join('\n'), /^tcpkit check: handler: cannot load (file:\/\/)?\/nonexistent\.mjs/);
  });

  it('spare with a --handler that exports program is refused by capability, as serve refuses it', async () => {
    const handler = writeConfig('program-handler.mjs', "export const program = () => ({ argv: ['/bin/cat'] });\nexport default () => {};\n");
    const r = await check('--handler', handler, '--spare', '1', '--port', '0');
    assert.equal(r.code, 100);
    assert.deepEqual(r.problems, [`tcpkit check: ${SPARE_PROGRAM('handler')}`]);
    const s = await run(['serve', '--handler', handler, '--spare', '1', '--port', '0']);
    assert.equal(s.code, 100);
    assert.equal(s.stderr.trim(), `tcpkit: ${SPARE_PROGRAM('handler')}`);
  });

  it('several bad flags: one line each, from check and from serve', async () => {
    const r = await check('--grace', 'x', '--backlog', '0', '--port', '0');
    assert.equal(r.code, 100);
    assert.deepEqual(r.problems.sort(), [
      'tcpkit check: --backlog: must be an integer from 1 to 65535, got "0"',
      'tcpkit check: --grace: must be a number of seconds >= 0 and <= 2147483, got "x"',
    ]);
    const s = await run(['serve', '--grace', 'x', '--backlog', '0', '--port', '0']);
    assert.equal(s.code, 100);
    assert.deepEqual(s.stderr.trim().split('\n').sort(), r.problems.map((p) => p.replace(/^tcpkit check: /, 'tcpkit: ')));
  });
});

describe('an option of another model', () => {
  it('threads --accept pass: refused by check as by serve (before, check said ok)', async () => {
    const r = await check('--model', 'threads', '--accept', 'pass', '--port', '0');
    assert.equal(r.code, 100);
    assert.deepEqual(r.problems, ['tcpkit check: accept: applies to the prefork model, not threads']);
    const s = await run(['serve', '--model', 'threads', '--accept', 'pass', '--port', '0']);
    assert.equal(s.code, 100);
    assert.equal(s.stderr.trim(), 'tcpkit: accept: applies to the prefork model, not threads');
  });
});
