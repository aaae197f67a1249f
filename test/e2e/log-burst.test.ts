// A log reader that falls behind for a moment (a full stderr pipe: EAGAIN) loses no line: the server holds
// lines back (bounded) and writes them in order once the reader catches up, and keeps serving meanwhile.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { BIN, echoOnce, eventually, sleep } from '../helpers.js';

test('a burst of 600 connections while nobody reads the log: every accept and end line arrives, in order', { timeout: 120_000 }, async () => {
  const proc = spawn(process.execPath, [BIN, 'serve', 'echo', '--model', 'event', '--host', '127.0.0.1', '--port', '0', '--print-port'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      proc.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /^(\d+)\n/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      proc.once('exit', (code) => reject(new Error(`server exited ${code}`)));
    });
    // Nobody reads stderr now: after ~64 KiB of pipe (and what Node buffers on our side) the server's writes get EAGAIN.
    proc.stderr.pause();
    const n = 600;
    for (let i = 0; i < n; i += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, j) => echoOnce(port, `line ${i + j}\n`).then((b) => assert.equal(b.toString(), `line ${i + j}\n`))));
    }
    let log = '';
    proc.stderr.on('data', (c: Buffer) => (log += c.toString()));
    proc.stderr.resume();
    await eventually(() => (log.match(/^end pid /gm) ?? []).length >= n, { timeoutMs: 30_000, message: `${n} end lines` });
    await sleep(200);
    assert.equal((log.match(/^accept /gm) ?? []).length, n);
    assert.equal((log.match(/^end pid /gm) ?? []).length, n);
    assert.doesNotMatch(log, /^error where log /m, 'no line was dropped');
    // Every line whole: each starts with a known event word.
    for (const line of log.split('\n').filter(Boolean)) assert.match(line, /^(listen|accept|end) /, line);
  } finally {
    proc.kill('SIGTERM');
    await new Promise((resolve) => proc.once('exit', resolve));
  }
});
