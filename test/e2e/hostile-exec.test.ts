// Exec safety: peer bytes never reach a shell or an argument; the program's environment is the
// server's own (without TCPKIT_*) plus UCSPI plus what the configuration grants, nothing else;
// it holds no descriptor but 0, 1 and 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { BIN, connectTo, eventually, fdsOf, readBytes, type Exit } from '../helpers.js';

/** `tcpkit serve --config FILE --print-port`: { pid, port, log(), acceptPid(from), stop() }. */
async function startConfigServer(config: string, env?: NodeJS.ProcessEnv) {
  const proc = spawn(process.execPath, [BIN, 'serve', '--config', config, '--print-port'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let log = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c) => (log += c));
  const exited = new Promise<Exit>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no port: ${log}`)), 60_000);
    let out = '';
    proc.stdout.on('data', (c) => {
      out += c;
      const m = /(\d+)\n/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
  });
  return {
    pid: proc.pid!,
    port,
    log: () => log,
    async stop() {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

const UCSPI = new Set(['PROTO', 'TCPLOCALIP', 'TCPLOCALPORT', 'TCPLOCALHOST', 'TCPREMOTEIP', 'TCPREMOTEPORT', 'TCPREMOTEHOST', 'TCPREMOTEINFO', 'TCPCONNNUM']);

const environ = (pid: number): Map<string, string> =>
  new Map(fs.readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));

test('exec: shell metacharacters from the peer stay data; environment and descriptors are only what is granted', { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-hostile-'));
  const marker = path.join(dir, 'pwned');
  const config = path.join(dir, 'tcpkit.yaml');
  fs.writeFileSync(config, [
    'services:',
    '  cat:',
    '    listen: 127.0.0.1:0',
    '    exec: [/bin/cat]',
    '    access:',
    '      - allow: 127.0.0.0/8',
    '        env: { GRANTED: "yes" }',
    '',
  ].join('\n'));
  const srv = await startConfigServer(config, { TCPKIT_SECRET: 'no', HOSTILE_SERVER_VAR: 'kept' });
  const sockets = [];
  try {
    const serverEnv = environ(srv.pid);
    const payloads = [
      `$(touch ${marker})\n`, `\`touch ${marker}\`\n`, `; touch ${marker} #\n`, `| touch ${marker}\n`, `&& touch ${marker}\n`,
      `' " \\ \n`, '\x00\x01\xff\n', `$PATH \${HOME} *\n`,
    ];
    for (const p of payloads) {
      // Before connecting: the accept line can be logged before the client sees its connect.
      const from = srv.log().length;
      const s = await connectTo(srv.port);
      sockets.push(s);
      s.write(Buffer.from(p, 'latin1'));
      const back = await readBytes(s, Buffer.byteLength(p, 'latin1'));
      assert.equal(back.toString('latin1'), p, 'echoed exactly, as data');
      const pid = (await eventually(() => /accept \S+ -> \S+ IPv4 pid (\d+)/.exec(srv.log().slice(from)), { message: 'the accept line' }))[1];
      // The program is cat with no argument; the peer's bytes are in no argument.
      assert.equal(fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1'), '/bin/cat\0');
      const env = environ(Number(pid));
      for (const [k, v] of env) {
        if (UCSPI.has(k) || k === 'GRANTED') continue;
        assert.equal(serverEnv.get(k), v, `${k} is the server's own`);
      }
      assert.equal(env.get('GRANTED'), 'yes');
      assert.equal(env.get('HOSTILE_SERVER_VAR'), 'kept');
      assert.equal(env.has('TCPKIT_SECRET'), false, 'TCPKIT_* is not passed on');
      assert.equal(env.get('PROTO'), 'TCP');
      assert.equal(env.get('TCPREMOTEIP'), '127.0.0.1');
      for (const v of env.values()) assert.ok(!v.includes('touch'), 'no peer bytes in the environment');
      assert.deepEqual(fdsOf(Number(pid)).map((f) => f.fd).sort(), [0, 1, 2], 'only 0, 1, 2');
      s.end();
    }
    await new Promise<void>((r) => setTimeout(r, 500));
    assert.equal(fs.existsSync(marker), false, 'no shell ran the peer\'s bytes');
    await eventually(() => (srv.log().match(/^end pid \d+ exitcode 0 /gm) ?? []).length >= payloads.length, { message: 'every cat ended cleanly' });
  } finally {
    for (const s of sockets) s.destroy();
    assert.equal((await srv.stop()).code, 0);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
