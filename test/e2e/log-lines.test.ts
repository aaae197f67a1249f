// Log lines as a script reads them: every line decoded once by parseLogLine (src/log-parse.ts, which follows
// docs/log-grammar.md) gives the original text back. A message used to be escaped twice (sanitized, then
// JSON-quoted), so a parser got `spawn\x20ENOENT` back instead of `spawn ENOENT`.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { parseLogLine } from '../../src/log-parse.js';
import { connectTo, startServer, waitClose, type SpawnedServer } from '../helpers.js';
import { startConfigServer, stopAll, tempDir } from '../exec-helpers.js';

const tmp = tempDir();
const servers: SpawnedServer<unknown>[] = [];
after(async () => {
  await stopAll(servers);
  tmp.cleanup();
});

describe('log lines decoded once', () => {
  it('error where spawn: the message is the spawn error as Node wrote it', async () => {
    const prog = path.join(tmp.dir, 'vanishing prog');
    fs.copyFileSync('/bin/cat', prog);
    fs.chmodSync(prog, 0o755);
    const server = await startServer(['--model', 'fork', '--exec', '--', prog]);
    servers.push(server);
    fs.rmSync(prog);
    const s = await connectTo(server.port);
    await waitClose(s);
    s.destroy();
    const [line] = await server.waitFor(/^error where spawn .*$/m);
    const parsed = parseLogLine(line);
    assert.equal(parsed.event, 'error');
    assert.equal(parsed.fields.where, 'spawn');
    assert.equal(parsed.fields.code, 'ENOENT');
    assert.equal(parsed.fields.message, `spawn ENOENT ${prog}`);
    // One escape on the line itself: spaces as \x20, never a doubled backslash.
    assert.ok(!line.includes('\\\\'), line);
  });

  it('reload failed: the message is the configuration error, spaces and quotes and all', async () => {
    const file = path.join(tmp.dir, 'bad "one".yaml');
    fs.writeFileSync(file, 'services:\n  cat:\n    listen: 127.0.0.1:0\n    exec: /bin/cat\n');
    const srv = await startConfigServer(file, 1);
    servers.push(srv);
    fs.writeFileSync(file, 'services:\n  cat:\n    listen: 127.0.0.1:0\n    exce: /bin/cat\n');
    const from = srv.log().length;
    srv.proc.kill('SIGHUP');
    const [line] = await srv.waitFor(/^reload failed .*$/m, { from });
    const parsed = parseLogLine(line);
    assert.deepEqual(parsed.positional, ['failed']);
    assert.match(parsed.fields.message!, /^.*bad "one"\.yaml: services\.cat\.exce: unknown field/);
    assert.ok(!line.includes('\\\\'), line);
  });
});
