// The handler contract (docs/handlers.md) under every model, through the CLI's --handler: the idioms a Node
// developer writes (the examples/ handlers, a promise resolving on 'end', pipe()) echo 1 B, 64 KiB and 4 MiB exactly,
// answer a half-close before closing, and log a clean `end` and no `error`; a throw, a rejection and an 'error'
// event each give exactly one `error where service` line; a peer's reset gives none; a handler that returns at
// once without touching its socket is ended by --idle-timeout. One server per model and handler.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Handler, ServiceContext } from '../../dist/index.js';
import { ROOT, connectTo, eventually, exchange, random, sha256, startServer, waitClose, type StartedServer, EVERY_MODEL } from '../helpers.js';
import { parseLogLine } from '../../src/log-parse.js';

const EXAMPLES = path.join(ROOT, 'examples');
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'handlers');

const MODELS = EVERY_MODEL;

/** ASCII a-z to A-Z, byte for byte, as examples/pipeline.mjs answers. */
function upper(data: Buffer): Buffer {
  const out = Buffer.from(data);
  for (let i = 0; i < out.length; i++) if (out[i]! >= 0x61 && out[i]! <= 0x7a) out[i]! -= 0x20;
  return out;
}

/** The echoing handlers and what each answers to a payload. */
const ECHOES: ReadonlyArray<readonly [string, string, (data: Buffer) => Buffer]> = [
  ['listener idiom', path.join(EXAMPLES, 'listener.mjs'), (d) => d],
  ['promise resolving on end', path.join(FIXTURES, 'promise.mjs'), (d) => d],
  ['pipe to itself', path.join(FIXTURES, 'pipe.mjs'), (d) => d],
  ['for await', path.join(EXAMPLES, 'iterator.mjs'), (d) => d],
  ['pipeline with a Transform', path.join(EXAMPLES, 'pipeline.mjs'), upper],
];

const SIZES = [1, 64 * 1024, 4 * 1024 * 1024];

/** Lines of the server's log that start with `word`. */
const linesOf = (server: StartedServer, word: string) => server.log().split('\n').filter((l) => l.startsWith(`${word} `));

/** Wait for `n` `end` lines, then check each is a clean end and that no `error` line was logged. */
async function assertCleanEnds(server: StartedServer, n: number): Promise<void> {
  await eventually(() => linesOf(server, 'end').length >= n, { timeoutMs: 20_000, message: `${n} end lines in\n${server.log()}` });
  const ends = linesOf(server, 'end');
  assert.equal(ends.length, n, server.log());
  for (const line of ends) assert.match(line, /^end pid \d+ exitcode 0 /, server.log());
  assert.deepEqual(linesOf(server, 'error'), [], server.log());
}

async function stop(server: StartedServer): Promise<void> {
  const exit = await server.stop('SIGTERM');
  assert.equal(exit.code, 0, server.log());
}

for (const [model, args] of MODELS) {
  for (const [idiom, file, answer] of ECHOES) {
    test(`${idiom} under ${model}: exact echo of 1 B, 64 KiB, 4 MiB after a half-close, clean ends`, { timeout: 120_000 }, async () => {
      const server = await startServer([...args, '--handler', file]);
      try {
        for (const size of SIZES) {
          const data = random(size);
          const got = await exchange(await connectTo(server.port), data);
          assert.equal(got.length, size, `${size} B sent`);
          assert.equal(sha256(got), sha256(answer(data)), `${size} B sent`);
        }
        await assertCleanEnds(server, SIZES.length);
      } finally {
        await stop(server);
      }
    });
  }

  test(`readline line protocol under ${model}: commands answered, the half-close answered, QUIT closes`, { timeout: 120_000 }, async () => {
    const server = await startServer([...args, '--handler', path.join(EXAMPLES, 'lines.mjs')]);
    try {
      const got = await exchange(await connectTo(server.port), 'ECHO hello, world\r\nLEN h\u00e9\nECHO last');
      assert.equal(got.toString('utf8'), 'hello, world\n3\nlast\nbye\n');
      const quit = await connectTo(server.port);
      const text: Buffer[] = [];
      quit.on('data', (c: Buffer) => text.push(c));
      quit.write('ECHO one\nQUIT\n');
      // The server ends its side after QUIT, without waiting for ours; then ours closes the connection.
      assert.equal(await waitClose(quit), 'end');
      quit.end();
      assert.equal(Buffer.concat(text).toString(), 'one\nbye\n');
      await assertCleanEnds(server, 2);
    } finally {
      await stop(server);
    }
  });

  test(`failing handlers under ${model}: one error line each, none for a reset, --idle-timeout ends an untouched socket`, { timeout: 120_000 }, async () => {
    const server = await startServer([...args, '--idle-timeout', '1', '--handler', path.join(FIXTURES, 'misbehave.mjs')]);
    try {
      const thrown = await connectTo(server.port, { source: '127.0.0.2' });
      assert.notEqual(await waitClose(thrown), 'timeout');
      thrown.destroy();
      for (const what of ['REJECT', 'ERROR', 'EMIT']) {
        const s = await connectTo(server.port);
        s.write(what);
        await waitClose(s);
        s.destroy();
      }
      // A peer that resets in the middle: its business, not the handler's failure.
      const reset = await connectTo(server.port);
      assert.equal((await exchangeSome(reset, 'hello')).toString(), 'hello');
      reset.resetAndDestroy();
      // Returns at once and never touches the socket: the idle limit closes it.
      const untouched = await connectTo(server.port, { source: '127.0.0.3' });
      untouched.write('anyone there?');
      // Closed by the server: a FIN, or a reset where the server held unread bytes (as close(2) does).
      assert.match(await waitClose(untouched, 20_000), /^(end|ECONNRESET)$/);
      untouched.destroy();
      await server.waitFor(/(^|\n)kill [^\n]*reason idle/);
      await eventually(() => linesOf(server, 'end').length >= 6, { timeoutMs: 20_000, message: `6 end lines in\n${server.log()}` });
      const errors = linesOf(server, 'error');
      for (const message of ['thrown on purpose', 'rejected on purpose', 'destroyed on purpose', 'emitted on purpose']) {
        // Decoded once, as docs/log-grammar.md says (a space is written \x20).
        const mine = errors.filter((l) => parseLogLine(l).fields.message === message);
        assert.equal(mine.length, 1, `one line for "${message}":\n${server.log()}`);
        assert.match(mine[0]!, /^error where service code \S+ id \d+ pid \d+ message /);
      }
      assert.equal(errors.length, 4, server.log());
      assert.equal(linesOf(server, 'stderr').length, 0, `no raw text on stderr:\n${server.log()}`);
    } finally {
      await stop(server);
    }
  });
}

/** Write `text` and resolve the first chunk that comes back. */
function exchangeSome(socket: import('node:net').Socket, text: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    socket.once('data', resolve);
    socket.once('error', reject);
    socket.write(text);
  });
}

for (const model of ['event', 'prefork']) {
  test(`examples/server.mjs, the library program, under ${model}: registers by URL, serves, closes on SIGTERM`, { timeout: 60_000 }, async () => {
    const proc = spawn(process.execPath, [path.join(EXAMPLES, 'server.mjs'), model, '0'], { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (log += c));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        proc.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c;
          const m = /^(\d+)\n/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        void exited.then((code) => reject(new Error(`exited ${code} before printing its port:\n${log}`)));
      });
      const data = random(64 * 1024);
      assert.equal(sha256(await exchange(await connectTo(port), data)), sha256(upper(data)));
      await eventually(() => /(^|\n)end /.test(log), { message: 'an end line' });
    } finally {
      proc.kill('SIGTERM');
    }
    assert.equal(await exited, 0, log);
    assert.doesNotMatch(log, /(^|\n)error /);
  });
}

test('docs/handlers.md: its "Testing a handler" example runs and passes', { timeout: 60_000 }, async () => {
  const doc = readFileSync(path.join(ROOT, 'docs', 'handlers.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Testing a handler'));
  const code = /```js\n([^]*?)```/.exec(section)?.[1];
  assert.ok(code, 'a js block under "Testing a handler"');
  // Where a test of the reader's would sit (one directory below the package), so that its imports resolve as shown.
  const file = path.join(ROOT, 'test', `.handlers-doc-${process.pid}.test.mjs`);
  writeFileSync(file, code);
  try {
    const r = await runNodeTest(file);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /# pass 1\b/);
  } finally {
    rmSync(file, { force: true });
  }
});

/** Run `node --test FILE` and collect its output. */
function runNodeTest(file: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    // Without this runner's NODE_TEST_CONTEXT, which would make the child's runner skip the file as a recursion.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const proc = spawn(process.execPath, ['--test', '--test-reporter=tap', file], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    proc.once('exit', (code) => resolve({ code, out }));
  });
}

test('the public types: a handler typed with Handler and ServiceContext from the package', () => {
  // Checked by tsc (npm test type-checks the tests): the names a handler's author imports exist and fit.
  const typed: Handler = async ({ socket, info, options, log }: ServiceContext) => {
    if (options.greeting === undefined) log(`no greeting for ${info.remote.address}`, 'NO_GREETING');
    for await (const chunk of socket) socket.write(chunk as Buffer);
    socket.end();
  };
  assert.equal(typeof typed, 'function');
});
