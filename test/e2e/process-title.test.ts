// The server's process title (src/process-title.ts): `pidof tcpkit` and `pgrep -x tcpkit` find it, as the
// README's `kill -HUP $(pidof tcpkit)` expects; ps shows `tcpkit serve ARGS`. It used to be `node`.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { after, describe, it } from 'node:test';
import { echoOnce, startServer, type StartedServer } from '../helpers.js';

/** The pids a command prints (empty when it finds none: pgrep and pidof exit 1 then). */
function pids(cmd: string, args: string[]): number[] {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe('process title', () => {
  let server: StartedServer | undefined;
  after(async () => {
    await server?.stop('SIGKILL');
  });

  it('pidof tcpkit, pgrep -x tcpkit and ps find the server by name', async () => {
    server = await startServer(['--model', 'fork']);
    assert.equal(fs.readFileSync(`/proc/${server.pid}/comm`, 'utf8'), 'tcpkit\n');
    assert.ok(pids('pgrep', ['-x', 'tcpkit']).includes(server.pid), 'pgrep -x tcpkit');
    assert.ok(pids('pidof', ['tcpkit']).includes(server.pid), 'pidof tcpkit');
    const args = execFileSync('ps', ['-o', 'args=', '-p', String(server.pid)], { encoding: 'utf8' }).trim();
    assert.equal(args, 'tcpkit serve --host 127.0.0.1 --port 0 --print-port --model fork');
    // Still the same server: it serves, and a signal sent by name reaches it.
    assert.equal((await echoOnce(server.port, 'hi')).toString(), 'hi');
    execFileSync('pkill', ['-TERM', '-x', '-P', String(process.pid), 'tcpkit']);
    assert.deepEqual(await server.exited, { code: 0, signal: null });
  });
});
