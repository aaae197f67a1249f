// Bad arguments: each gets one line naming the argument and a documented exit code.
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, run, portOf, startServer } from '../helpers.js';

const cases: [args: string[], code: number, message: string | RegExp][] = [
  [['serve', '--port', 'abc'], 100, 'tcpkit: --port: must be an integer from 0 to 65535, got "abc"\n'],
  [['serve', '--port', '70000'], 100, 'tcpkit: --port: must be an integer from 0 to 65535, got "70000"\n'],
  [['serve', '--max-conns', '0'], 100, 'tcpkit: --max-conns: must be an integer from 1 to 1000000, got "0"\n'],
  [['serve', '--backlog', '-1'], 100, 'tcpkit: serve: --backlog needs a value; a value starting with "-" is written --backlog=VALUE\n'],
  [['serve', '--backlog=-1'], 100, 'tcpkit: --backlog: must be an integer from 1 to 65535, got "-1"\n'],
  [['serve', '--port'], 100, 'tcpkit: serve: --port needs a value\n'],
  [['serve', '--print-port=yes'], 100, 'tcpkit: serve: --print-port takes no value\n'],
  [['serve', '--grace', 'soon'], 100, 'tcpkit: --grace: must be a number of seconds >= 0 and <= 2147483, got "soon"\n'],
  [['serve', '--model', 'threadz'], 100, /^tcpkit: --model: must be one of .*fork.*, got "threadz"\n$/],
  [['serve', 'gopher'], 100, /^tcpkit: serve: unknown service "gopher" \(known: .*echo.*\)\n$/],
  [['serve', '--frobnicate'], 100, 'tcpkit: serve: unknown option --frobnicate (see tcpkit serve --help)\n'],
  [['serve', '--host', 'no.such.host.invalid', '--port', '0'], 111, /^tcpkit: listen (ENOTFOUND|EAI_AGAIN) no\.such\.host\.invalid:0\n$/],
  [['client', '127.0.0.1', 'http'], 100, 'tcpkit: client: PORT: must be an integer from 0 to 65535, got "http"\n'],
  [['client', '127.0.0.1', '0'], 100, 'tcpkit: client: PORT: must be an integer from 1 to 65535, got "0"\n'],
  [['client', '--connect-timeout', 'x'], 100, 'tcpkit: --connect-timeout: must be a number of seconds >= 0 and <= 2147483, got "x"\n'],
  [['client', '--source', 'nowhere', '127.0.0.1', '9'], 100, 'tcpkit: client: --source: must be an IP address, got "nowhere"\n'],
  [['client', 'a', 'b', 'c'], 100, 'tcpkit: client: expected [HOST] [PORT], got a b c\n'],
  // Other commands join the list as they land; the message names the command and lists them.
  [['frob'], 100, /^tcpkit: unknown command "frob" \(commands: serve, client(, [a-z]+)*\)\n$/],
  [[], 100, /^usage: tcpkit COMMAND/],
];

describe('bad arguments', () => {
  for (const [args, code, message] of cases) {
    it(`tcpkit ${args.join(' ') || '(nothing)'} → exit ${code}`, async () => {
      const r = await run(args);
      assert.equal(r.code, code, r.stderr);
      const text = args.length === 0 ? r.stdout.toString() : r.stderr;
      if (message instanceof RegExp) assert.match(text, message);
      else assert.equal(text, message);
    });
  }

  it('a port in use: listen EADDRINUSE with the address, exit 111', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = portOf(blocker);
    try {
      const r = await run(['serve', '--host', '127.0.0.1', '--port', String(port)]);
      assert.equal(r.code, 111);
      assert.equal(r.stderr, `tcpkit: listen EADDRINUSE 127.0.0.1:${port}\n`);
    } finally {
      blocker.close();
    }
  });

  it('the default wildcard address is named too: listen EADDRINUSE 0.0.0.0:PORT', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '0.0.0.0', r));
    const port = portOf(blocker);
    try {
      const r = await run(['serve', '--port', String(port)]);
      assert.equal(r.code, 111);
      assert.equal(r.stderr, `tcpkit: listen EADDRINUSE 0.0.0.0:${port}\n`);
    } finally {
      blocker.close();
    }
  });

  it('connect timeout names the address and the limit, exit 111', async () => {
    // A listener with a full backlog never completes new handshakes: SYNs are dropped, so connect times out.
    const r = await run(['client', '--connect-timeout', '0.5', '127.0.0.1', '1'], { input: '' });
    // Port 1 on loopback is refused at once on Linux; a refusal is also a clean, named failure.
    assert.equal(r.code, 111);
    assert.match(r.stderr, /^tcpkit: connect (ECONNREFUSED|ETIMEDOUT) 127\.0\.0\.1:1/);
  });

  it('--help for each command exits 0', async () => {
    for (const cmd of ['serve', 'client']) {
      const r = await run([cmd, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout.toString(), new RegExp(`^usage: tcpkit ${cmd}`));
    }
  });
});

describe('what people expect of a daemon (issue 24 items 2 and 8)', () => {
  it('tcpkit --version and -V print the package version', async () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await run([flag]);
      assert.equal(r.code, 0);
      assert.equal(r.stdout.toString(), `tcpkit ${version}\n`);
    }
  });

  it('--exec without -- says where the program\'s arguments go', async () => {
    const r = await run(['serve', '--exec', 'cat', '-n']);
    assert.equal(r.code, 100);
    assert.match(r.stderr, /unknown option -n .*with --exec, the program and its arguments go after --: tcpkit serve --exec -- PROGRAM \[ARGS\.\.\.\]/);
  });

  it('--pid-file: written (whole) once listening, removed on exit; an unwritable path is named', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-pid-'));
    try {
      const file = path.join(dir, 'tcpkit.pid');
      const srv = await startServer(['--model', 'event', '--pid-file', file]);
      assert.equal(fs.readFileSync(file, 'utf8'), `${srv.pid}\n`);
      assert.deepEqual(fs.readdirSync(dir), ['tcpkit.pid'], 'no temporary file left');
      const exit = await srv.stop('SIGTERM');
      assert.equal(exit.code, 0);
      assert.equal(fs.existsSync(file), false);
      const bad = path.join(dir, 'missing', 'x.pid');
      const r = await run(['serve', '--port', '0', '--host', '127.0.0.1', '--model', 'event', '--pid-file', bad]);
      assert.equal(r.code, 111);
      assert.match(r.stderr, new RegExp(`--pid-file ${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: cannot write: ENOENT`));
      // Refused before binding, and by check with the same words.
      assert.doesNotMatch(r.stderr, /listen /);
      const c = await run(['check', '--pid-file', bad]);
      assert.equal(c.code, 100);
      assert.equal(c.stderr.trim(), r.stderr.trim().replace(/^tcpkit: /, 'tcpkit check: '));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--log-timestamps starts each text line with an ISO 8601 time', async () => {
    const srv = await startServer(['--model', 'event', '--log-timestamps']);
    await srv.waitFor(/listen /);
    await srv.stop('SIGTERM');
    const lines = srv.log().split('\n').filter((l) => l !== '');
    assert.ok(lines.length > 0);
    for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \S/, l);
  });
});
