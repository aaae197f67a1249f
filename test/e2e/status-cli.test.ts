// `tcpkit status` on a shared, busy host: tcpkit's own sockets by default (not every socket of every process),
// bounded output with "and N more" (it printed 121,604 lines of others' TIME_WAIT), and --admin-token-file
// for an admin endpoint that wants a token (it got 401 with no way to give one).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { echoOnce, portOf, run, startServer, type StartedServer } from '../helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-status-cli-'));
const env = { TCPKIT_STATE_DIR: dir };
const servers: StartedServer[] = [];
after(async () => {
  for (const s of servers) await s.stop('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('tcpkit status', () => {
  it('--admin-token-file: the token the endpoint wants; without it, one line that says what to give', async () => {
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, 'op-s3cret\n', { mode: 0o600 });
    const srv = await startServer(['--admin', '127.0.0.1:0', '--admin-token-file', tokenFile], { env });
    servers.push(srv);
    const url = (await srv.waitFor(/^admin (http:\/\/\S+)\/ pid/m))[1]!;
    const without = await run(['status', '--admin', url], { env });
    assert.equal(without.code, 111);
    assert.equal(without.stderr, `tcpkit: status: admin endpoint ${url} did not answer (HTTP 401: it wants a token: give --admin-token-file FILE)\n`);
    const r = await run(['status', '--admin', url, '--admin-token-file', tokenFile, '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout.toString()).server.pid, srv.pid);
    const missing = await run(['status', '--admin', url, '--admin-token-file', path.join(dir, 'nope')], { env });
    assert.equal(missing.code, 100);
    assert.match(missing.stderr, /^tcpkit: status: --admin-token-file: cannot read \S+nope \(ENOENT\)\n$/);
  });

  it('TIME_WAIT sockets are listed up to a bound, the rest counted in one note', { timeout: 120_000 }, async () => {
    const srv = await startServer(['--model', 'event'], { env });
    servers.push(srv);
    // The client closes first, so each connection leaves a TIME_WAIT socket on the server's port (60 s).
    for (let i = 0; i < 100; i++) await echoOnce(srv.port, 'x');
    const r = await run(['status', '--pid', String(srv.pid)], { env });
    assert.equal(r.code, 0, r.stderr);
    const text = r.stdout.toString();
    const listed = text.split('\n').filter((l) => /^tcp6? .* TIME_WAIT /.test(l)).length;
    assert.ok(listed <= 64, `${listed} TIME_WAIT rows`);
    const m = /^note: and (\d+) more sockets? not listed \((\d+) in TIME_WAIT; (\d+) in TIME_WAIT in all\)$/m.exec(text);
    assert.ok(m, text);
    assert.ok(Number(m[3]) >= 100 && listed + Number(m[2]) === Number(m[3]), m[0]);
  });

  it("by default, tcpkit's own sockets: another program's listener is shown by --all only", async () => {
    const srv = await startServer([], { env });
    servers.push(srv);
    const other = net.createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => other.once('listening', resolve));
    try {
      const port = portOf(other);
      const row = new RegExp(`127\\.0\\.0\\.1:${port} +\\*:\\* +LISTEN`);
      const plain = await run(['status'], { env });
      assert.equal(plain.code, 0, plain.stderr);
      const text = plain.stdout.toString();
      assert.doesNotMatch(text, row);
      // Other tcpkit servers may run on this host: ours is the one shown, named in a note, or counted past 20.
      assert.match(text, new RegExp(`(^${srv.pid} |tcpkit status --pid ${srv.pid}\\)|^note: and \\d+ more tcpkit servers$)`, 'm'));
      const all = await run(['status', '--all'], { env });
      assert.match(all.stdout.toString(), row);
      const bad = await run(['status', '--all', '--port', '1'], { env });
      assert.equal(bad.code, 100);
    } finally {
      other.close();
    }
  });
});
