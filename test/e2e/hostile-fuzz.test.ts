// Bad input everywhere, by property-based fuzzing (fast-check): the CLI's argv, the
// configuration file, and the bench protocol on a live server. Each property has a fixed
// number of runs and a fixed seed per run printed on failure (fast-check's report).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { parseConfig } from '../../dist/super/config.js';
import { ConfigError } from '../../dist/errors.js';
import { startServer } from '../helpers.js';
import { spawn } from 'node:child_process';
import { BIN } from '../helpers.js';

const STACK = /^\s+at .+:\d+:\d+\)?$/m;

/** Values an option may be given: numbers in and out of range, words, empties, controls, huge. */
const optionValue = fc.oneof(
  fc.constantFrom('0', '-1', '1', '65536', '1e3', '0x10', 'NaN', 'Infinity', '', ' ', '99999999999999999999', '2.5', 'echo', 'fork', 'shared', 'json', '127.0.0.1:0', '/nonexistent/x', '\u0000', 'é', '--'),
  fc.string({ maxLength: 12 }),
  fc.integer({ min: -5, max: 100_000 }).map(String),
);
/** Every serve option but those that would bind a fixed port or address: --port and --admin get only port 0 or invalid values. */
const flags = [
  '--backlog', '--model', '-c', '--max-conns', '--grace', '--workers', '--spare', '--accept', '--max-conns-per-worker',
  '--max-reply', '--handler', '--log-format', '--per-source', '--rate', '--idle-timeout', '--time-limit', '--config', '--user', '--group',
];
const word = fc.oneof(
  fc.constantFrom('echo', 'discard', 'daytime', 'chargen', 'time', 'bench', 'nosuch', '-q', '--print-port', '--nosuch', '-x', '--exec', '--admin-public', '-h'),
  fc.tuple(fc.constantFrom(...flags), optionValue).map(([f, v]) => `${f}=${v}`),
  fc.tuple(fc.constantFrom(...flags), optionValue),
  fc.constantFrom(['--port', '-1'], ['--port', 'x'], ['--port', '70000'], ['--admin', 'nohost'], ['--admin', '127.0.0.1:0'], ['--admin', '10.0.0.1:0']),
  fc.string({ maxLength: 10 }),
);
const argvArb = fc.tuple(
  fc.constantFrom('serve', 'status', 'nosuchcommand', 'help', ''),
  fc.array(word, { maxLength: 6 }),
).map(([cmd, words]) => [cmd, ...words.flat()].filter((a, i) => i > 0 || a !== '').map((a) => a.replaceAll('\u0000', '')));

/** Run argv; if it turns into a running server (valid options), that counts too: stop it and expect 0. */
/** How a bounded run ended. */
interface Bounded {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  stdout: string;
  serving: boolean;
}

function runBounded(argv: string[]): Promise<Bounded> {
  return new Promise((resolve) => {
    // serve binds only to 127.0.0.1 port 0 unless the argv names another --port (only invalid ones are generated).
    const full = argv[0] === 'serve' ? ['serve', '--host', '127.0.0.1', '--port', '0', ...argv.slice(1)] : argv;
    const child = spawn(process.execPath, [BIN, ...full], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    let serving = false;
    const timer = setTimeout(() => {
      serving = /^listen /m.test(stderr);
      child.kill(serving ? 'SIGTERM' : 'SIGKILL');
    }, 4000);
    const hard = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(hard);
      resolve({ code, signal, stderr, stdout, serving });
    });
  });
}

test('fuzz: random argv exits 0, 100 or 111 with one clear line, never a stack trace or a hang', { timeout: 240_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(argvArb, async (argv) => {
      const r = await runBounded(argv);
      const where = `argv ${JSON.stringify(argv)} -> code ${r.code} signal ${r.signal}\n${r.stderr}`;
      assert.equal(r.signal, null, `no hang, no crash: ${where}`);
      assert.ok([0, 100, 111].includes(r.code ?? -1), where);
      assert.doesNotMatch(r.stderr, STACK, where);
      if (r.code === 100 && r.stderr === '') assert.match(r.stdout, /^usage: /, where); // bare `tcpkit`: the usage text
      else if (r.code !== 0) {
        // One line per problem (serve lists every problem of its arguments, as check does).
        const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('tcpkit: '));
        assert.ok(lines.length >= 1, `an error line: ${where}`);
        for (const line of lines) assert.ok(line.length > 'tcpkit: '.length + 5, where);
      }
    }),
    { numRuns: 40 },
  );
});

/** Configuration-like values: right shapes with wrong parts, and plain junk. */
const scalar = fc.oneof(fc.string({ maxLength: 8 }), fc.integer({ min: -3, max: 70000 }), fc.boolean(), fc.constant(null), fc.double());
const junk = fc.anything({ maxDepth: 3, maxKeys: 4, withNullPrototype: false });
const limitsArb = fc.dictionary(fc.constantFrom('maxConns', 'perSource', 'rate', 'idleTimeout', 'timeLimit', 'bogus'), scalar, { maxKeys: 3 });
const serviceArb = fc.record(
  {
    listen: fc.oneof(fc.constantFrom('127.0.0.1:0', '[::1]:0', 'nohost', ':0', '127.0.0.1:99999'), fc.array(fc.constantFrom('127.0.0.1:0', 'x:y', 5), { maxLength: 3 }), scalar),
    internal: fc.oneof(fc.constantFrom('echo', 'discard', 'nosuch'), scalar),
    exec: fc.oneof(fc.constant(['/bin/cat']), fc.array(fc.string({ maxLength: 5 }), { maxLength: 2 }), scalar),
    model: fc.oneof(fc.constantFrom('fork', 'event', 'prefork', 'nosuch'), scalar),
    limits: fc.oneof(limitsArb, scalar),
    access: fc.oneof(fc.array(fc.dictionary(fc.constantFrom('allow', 'deny', 'env'), fc.oneof(fc.constantFrom('127.0.0.0/8', 'all', '1.2.3.4/40', 'x'), scalar)), { maxLength: 2 }), scalar),
    handler: fc.oneof(fc.constant('/nonexistent.js'), scalar),
  },
  { requiredKeys: [] },
);
const configArb = fc.oneof(
  fc.record({ services: fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), serviceArb, { maxKeys: 3 }), user: fc.oneof(fc.constantFrom('root', 'nosuchuser'), scalar) }, { requiredKeys: ['services'] }).map((c) => stringify(c)),
  junk.map((j) => stringify(j) ?? ""),
  fc.string({ maxLength: 200 }),
  fc.constantFrom('services: {', 'services:\n  - a\n', '{"services": 1}', '\t:\n', '*x', '!!js/function x', 'services: &a [*a]'),
);

test('fuzz: random configuration files parse or throw a ConfigError naming the field, nothing else', { timeout: 60_000 }, () => {
  fc.assert(
    fc.property(configArb, (text) => {
      try {
        parseConfig(text, 'fuzz.yaml');
      } catch (err) {
        assert.ok(err instanceof ConfigError, `${text}\n-> ${err instanceof Error ? err.stack : String(err)}`);
        assert.match(err.message, /^fuzz\.yaml: /);
        assert.equal(err.exitCode, 100);
        if (err.path) assert.ok(err.message.includes(err.path), err.message);
      }
    }),
    { numRuns: 2000 },
  );
});

/** Send bytes to a bench server, half-close, read to EOF or reset; bounded. */
function benchExchange(port: number, bytes: Buffer): Promise<{ got: number; how: string | undefined }> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let got = 0;
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ got, how: 'hang' });
    }, 15_000);
    s.on('data', (c) => (got += c.length));
    s.on('end', () => {
      clearTimeout(timer);
      s.destroy();
      resolve({ got, how: 'end' });
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ got, how: e.code });
    });
    s.end(bytes);
  });
}

test('fuzz: random bench requests on a live server: exact replies for valid counts, a clean close otherwise, and it keeps serving', { timeout: 120_000 }, async () => {
  const srv = await startServer(['bench', '--model', 'event', '--max-reply', '100000', '-q']);
  try {
    const line = fc.oneof(
      fc.integer({ min: 1, max: 100_000 }).map((n) => `${n}\n`),
      fc.integer({ min: 1, max: 100 }).map((n) => `${n}\r\n`),
      fc.constantFrom('0\n', '-1\n', '100001\n', '1e3\n', ' 5\n', '\n', '99999999999999999999\n', '7'.repeat(40)),
      fc.string({ maxLength: 20 }),
      fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a).toString('latin1')),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(line, { maxLength: 5 }), async (lines) => {
        // What a correct server answers: every count up to the first bad line; after a bad line, nothing more.
        let expected = 0;
        let clean = true;
        const text = lines.join('');
        const parts = text.split('\n');
        const trailing = parts.pop() ?? '';
        for (const p of parts) {
          const t = p.endsWith('\r') ? p.slice(0, -1) : p;
          const n = /^\d{1,16}$/.test(t) ? Number(t) : NaN;
          if (!(n >= 1 && n <= 100_000)) {
            clean = false;
            break;
          }
          expected += n;
        }
        if (trailing.length > 8) clean = false;
        const r = await benchExchange(srv.port, Buffer.from(text, 'latin1'));
        const where = `${JSON.stringify(text)} -> ${JSON.stringify(r)} expected ${expected} clean ${clean}`;
        assert.notEqual(r.how, 'hang', where);
        if (clean) {
          assert.equal(r.how, 'end', where);
          assert.equal(r.got, expected, where);
        } else assert.ok(r.got <= expected, where);
      }),
      { numRuns: 150 },
    );
    assert.equal(srv.proc.exitCode, null);
    const ok = await benchExchange(srv.port, Buffer.from('1000\n'));
    assert.deepEqual(ok, { got: 1000, how: 'end' });
    assert.doesNotMatch(srv.log(), STACK);
  } finally {
    assert.equal((await srv.stop()).code, 0);
  }
});

test('fuzz: random PROXY headers to a --proxy-protocol server: each connection ends, none hangs, and it keeps serving', { timeout: 120_000 }, async () => {
  const srv = await startServer(['--model', 'event', '--proxy-protocol', '--proxy-timeout', '2', '-q']);
  const V2 = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
  try {
    const header = fc.oneof(
      fc.uint8Array({ maxLength: 120 }).map((a) => Buffer.from(a)),
      fc.tuple(fc.constantFrom('PROXY TCP4 ', 'PROXY TCP6 ', 'PROXY UNKNOWN', 'PROXY ', 'PROXY TCP4 1.2.3.4 5.6.7.8 '), fc.string({ maxLength: 60 }), fc.constantFrom('\r\n', '\n', '', '\r\n\r\n'))
        .map(([a, b, c]) => Buffer.from(a + b + c, 'latin1')),
      fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ maxLength: 64 })).map(([h, rest]) => Buffer.concat([V2, Buffer.from(h), Buffer.from(rest)])),
    );
    await fc.assert(
      fc.asyncProperty(header, fc.uint8Array({ maxLength: 32 }), async (h, data) => {
        const r = await benchExchange(srv.port, Buffer.concat([h, Buffer.from(data)]));
        assert.notEqual(r.how, 'hang', `header ${h.toString('hex')} -> ${JSON.stringify(r)}`);
      }),
      { numRuns: 150 },
    );
    assert.equal(srv.proc.exitCode, null, 'server alive');
    const payload = Buffer.from('after the fuzz');
    const s = await new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect({ port: srv.port, host: '127.0.0.1', allowHalfOpen: true }, () => resolve(c));
      c.once('error', reject);
    });
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise((resolve) => s.once('end', resolve));
    s.end(Buffer.concat([Buffer.from('PROXY TCP4 192.0.2.7 127.0.0.1 4000 80\r\n'), payload]));
    await ended;
    s.destroy();
    assert.deepEqual(Buffer.concat(chunks), payload);
    assert.doesNotMatch(srv.log(), STACK);
  } finally {
    assert.equal((await srv.stop()).code, 0);
  }
});
