// The report channel of fork children and spares (src/workers/child-report.ts): a handler's ctx.log and its
// failures reach the server as records and are logged as the in-process models log them: one sanitized
// `error where service` line (a newline from the peer cannot forge another line), JSON under --log-format json
// with the stack in a field, counted in /metrics; the child's own stderr text is `stderr pid P id I text T`.
// On the old code the child wrote `tcpkit child PID: CODE reason` raw on the server's stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT, startServer, type StartedServer } from '../helpers.js';
import { startConfigServer } from '../exec-helpers.js';

const HANDLER = path.join(ROOT, 'test', 'fixtures', 'report-handler.js');
const INJECTION = 'x\nINJECT end pid 1';

/** Send `text`, half-close, and resolve with everything the server sent until it closed (a reset included). */
function ask(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => s.end(text));
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (got += d));
    s.on('close', () => resolve(got));
    // A server that closes with the text unread resets: what came before still counts.
    s.on('error', () => {});
  });
}

/** The log's lines, once `ends` connections have logged their `end`. */
async function linesAfter(server: StartedServer, ends: number): Promise<string[]> {
  await server.waitFor(new RegExp(`(^end .*\\n[^]*){${ends}}`, 'm'));
  return server.log().split('\n');
}

const models: Array<{ name: string; args: string[] }> = [
  { name: 'fork', args: ['--model', 'fork'] },
  { name: 'fork --spare 1', args: ['--model', 'fork', '--spare', '1'] },
  { name: 'event (the reference)', args: ['--model', 'event'] },
];

for (const { name, args } of models) {
  test(`${name}: ctx.log with a newline from the peer is one sanitized error line, a throw one more`, { timeout: 60_000 }, async () => {
    const server = await startServer([...args, '--handler', HANDLER, '--admin', '127.0.0.1:0']);
    try {
      const admin = (await server.waitFor(/admin (http:\/\/\S+)\/ pid/))[1]!;
      assert.equal(await ask(server.port, INJECTION), 'ok\n');
      assert.equal(await ask(server.port, 'THROW'), '');
      const lines = await linesAfter(server, 2);
      const peer = lines.filter((l) => l.includes('INJECT'));
      assert.equal(peer.length, 1, `one line carries the peer's text:\n${server.log()}`);
      assert.match(peer[0]!, /^error where service code PEER id \d+ pid \d+ message "x.*x0aINJECT.*"$/);
      assert.equal(lines.filter((l) => /^end /.test(l)).length, 2, `exactly the two real end lines:\n${server.log()}`);
      assert.equal(lines.filter((l) => /^error where service code TCPKIT_HANDLER id \d+ pid \d+ message "handler.*threw.*on.*purpose"$/.test(l)).length, 1);
      // Nothing raw: every line is an event of the grammar (no `tcpkit child` text, no stack frame).
      for (const l of lines.filter(Boolean)) assert.match(l, /^(listen|admin|accept|end|spawn|exit|error|stderr) /, `a line of the grammar: ${l}`);
      const metrics = await (await fetch(`${admin}/metrics`)).text();
      assert.match(metrics, /^tcpkit_errors_total\{where="service",code="PEER"\} 1$/m);
      assert.match(metrics, /^tcpkit_errors_total\{where="service",code="TCPKIT_HANDLER"\} 1$/m);
    } finally {
      await server.stop();
    }
  });
}

for (const { name, args } of models.slice(0, 2)) {
  test(`${name}: --log-format json carries the exact text and the stack in a field`, { timeout: 60_000 }, async () => {
    const server = await startServer([...args, '--handler', HANDLER, '--log-format', 'json']);
    try {
      await ask(server.port, INJECTION);
      await ask(server.port, 'THROW');
      await server.waitFor(/("type":"end"[^]*){2}/);
      const records = server
        .log()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const peer = records.filter((r) => r.type === 'error' && r.code === 'PEER');
      assert.equal(peer.length, 1);
      assert.equal(peer[0]!.message, INJECTION);
      assert.equal(peer[0]!.where, 'service');
      const thrown = records.find((r) => r.type === 'error' && r.code === 'TCPKIT_HANDLER');
      assert.equal(thrown?.message, 'handler threw on purpose');
      assert.match(String(thrown?.stack), /^Error: handler threw on purpose\n\s+at /);
    } finally {
      await server.stop();
    }
  });

  test(`${name}: an uncaught exception in the child is one error line, not a stack on stderr`, { timeout: 60_000 }, async () => {
    const server = await startServer([...args, '--handler', HANDLER]);
    try {
      await ask(server.port, 'CRASH');
      const lines = await linesAfter(server, 1);
      assert.equal(lines.filter((l) => /^error where service code TCPKIT_HANDLER id \d+ pid \d+ message "handler.*crashed.*on.*purpose"$/.test(l)).length, 1, server.log());
      assert.ok(!lines.some((l) => l.startsWith('stderr ')), `no stack on stderr:\n${server.log()}`);
      assert.match(server.log(), /^end pid \d+ exitcode 1 /m);
    } finally {
      await server.stop();
    }
  });

  test(`${name}: the child's own stderr is stderr text, and cannot forge a record`, { timeout: 60_000 }, async () => {
    const server = await startServer([...args, '--handler', HANDLER]);
    try {
      const forged = 'STDERR a\n\x1e{"type":"log","reason":"forged","code":"FORGED"}\nb';
      assert.equal(await ask(server.port, forged), 'ok\n');
      const lines = await linesAfter(server, 1);
      assert.ok(!lines.some((l) => /code FORGED/.test(l)), `no forged record:\n${server.log()}`);
      const text = lines.filter((l) => l.startsWith('stderr '));
      assert.equal(text.length, 3, server.log());
      assert.match(text[0]!, /^stderr pid \d+ id \d+ text STDERR\\x20a$/);
      assert.match(text[1]!, /^stderr pid \d+ id \d+ text .*x1e\{"type":"log","reason":"forged","code":"FORGED"\}$/);
    } finally {
      await server.stop();
    }
  });
}

// A program that cannot be started is counted and logged the same under every model: `accept`, `error where spawn
// code ENOENT|EACCES`, `end`, and `closed accepted 1 served 1`. On the old code fork logged the error alone (no
// accept, not counted) and the in-process models `error where service`.
const unrunnable: Array<{ how: 'ENOENT' | 'EACCES'; spoil(file: string): void }> = [
  { how: 'ENOENT', spoil: (file) => fs.rmSync(file) },
  { how: 'EACCES', spoil: (file) => fs.chmodSync(file, 0o644) },
];
for (const model of [['fork'], ['event'], ['prefork', '--workers', '1'], ['threads', '--workers', '1']]) {
  for (const { how, spoil } of unrunnable) {
    test(`--model ${model[0]}: a program gone ${how} after start is accept, error where spawn, end`, { timeout: 60_000 }, async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-unrunnable-'));
      const program = path.join(dir, 'prog');
      fs.writeFileSync(program, '#!/bin/sh\nexec cat\n', { mode: 0o755 });
      const server = await startServer(['--model', ...model, '--exec', program]);
      try {
        spoil(program);
        assert.equal(await ask(server.port, 'hello'), '');
        await server.waitFor(/^end .*$/m);
      } finally {
        await server.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      }
      const lines = server.log().split('\n');
      const accept = lines.filter((l) => l.startsWith('accept '));
      assert.equal(accept.length, 1, server.log());
      const id = / id (\d+)/.exec(accept[0]!)![1];
      const errors = lines.filter((l) => l.startsWith('error '));
      assert.equal(errors.length, 1, server.log());
      assert.match(errors[0]!, new RegExp(`^error where spawn code ${how} id ${id} pid \\d+ message ".*spawn.*${how}.*prog.*"$`));
      assert.equal(lines.filter((l) => new RegExp(`^end pid \\d+ exitcode 0 count 0/\\d+ id ${id} `).test(l)).length, 1, server.log());
      assert.match(server.log(), /^closed accepted 1 served 1$/m);
    });
  }
}

// Under `serve --config`, every line about a service names it (its config key), `shutdown` and `closed` included,
// and its errors and stderr lines too: two exec services are told apart. On the old code both said `service exec`
// on `listen` and nothing after.
test('serve --config, two exec services: every line names its service', { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-names-'));
  const file = path.join(dir, 'two.yaml');
  // `loud` writes a line on its stderr, then echoes; `quiet` only echoes.
  fs.writeFileSync(
    file,
    'services:\n  loud:\n    listen: 127.0.0.1:0\n    exec: [/bin/sh, -c, "echo noise >&2; exec cat"]\n  quiet:\n    listen: 127.0.0.1:0\n    exec: /bin/cat\n',
  );
  const server = await startConfigServer(file, 2);
  try {
    assert.equal(await ask(server.ports['loud 127.0.0.1:0']!, 'one'), 'one');
    assert.equal(await ask(server.ports['quiet 127.0.0.1:0']!, 'two'), 'two');
    await server.waitFor(/(^end .*\n[^]*){2}/m);
    await server.waitFor(/^stderr .*$/m);
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const lines = server.log().split('\n').filter(Boolean);
  const about = (service: string) => lines.filter((l) => new RegExp(`(^listen .* service ${service} |[ ]service ${service}$)`).test(l));
  for (const service of ['loud', 'quiet']) {
    const mine = about(service).map((l) => l.split(' ')[0]);
    assert.deepEqual(mine.filter((e) => e !== 'stderr'), ['listen', 'accept', 'end', 'shutdown', 'closed'], `${service}:\n${server.log()}`);
  }
  assert.match(server.log(), /^stderr pid \d+ id \d+ text noise service loud$/m);
  // Nothing about a service goes unnamed: only the admin and reload lines are the supervisor's own.
  for (const l of lines) assert.match(l, /(service (loud|quiet)( |$))/, `a line that names its service: ${l}`);
});
