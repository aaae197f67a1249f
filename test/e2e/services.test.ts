// The internal services, byte by byte against their RFCs: discard (863),
// chargen (864), daytime (867), time (868).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { stopAll } from '../exec-helpers.js';
import { connectTo, echoOnce, random, readBytes, rssOf, sleep, startServer, waitClose, type StartedServer } from '../helpers.js';

type Name = 'discard' | 'daytime' | 'chargen' | 'time';
const servers = new Map<Name, StartedServer>();
before(async () => {
  for (const name of ['discard', 'daytime', 'chargen', 'time'] as const) servers.set(name, await startServer([name]));
});
after(async () => {
  await stopAll(servers.values());
});
/** The server of that service, started in before(). */
function server(name: Name): StartedServer {
  const s = servers.get(name);
  assert.ok(s, `the ${name} server did not start`);
  return s;
}

/** RFC 864's pattern, written out independently of the service: line n, character i. */
function chargenLine(n: number): string {
  let line = '';
  for (let i = 0; i < 72; i++) line += String.fromCharCode(32 + ((n + i) % 95));
  return `${line}\r\n`;
}

describe('discard (RFC 863)', () => {
  it('reads everything, sends nothing, and closes after the peer\'s FIN', async () => {
    const got = await echoOnce(server('discard').port, random(256 * 1024));
    assert.equal(got.length, 0);
    await server('discard').waitFor(/end pid \d+ exitcode 0 /);
  });
});

describe('daytime (RFC 867)', () => {
  it('sends one line with the current time and closes without waiting for the client', async () => {
    const s = await connectTo(server('daytime').port);
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    assert.equal(await waitClose(s), 'end');
    s.destroy();
    const text = Buffer.concat(chunks).toString('latin1');
    const m = /^(Sunday|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday), ([A-Z][a-z]+) (\d{1,2}), (\d{4}) (\d\d):(\d\d):(\d\d)-UTC\r\n$/.exec(text);
    assert.ok(m, `not a daytime line: ${JSON.stringify(text)}`);
    const when = Date.parse(`${m[2]} ${m[3]}, ${m[4]} ${m[5]}:${m[6]}:${m[7]} UTC`);
    assert.ok(Math.abs(when - Date.now()) < 30_000, `${text.trim()} is not now`);
    assert.equal(new Date(when).getUTCDay(), ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'].indexOf(m[1]));
  });
});

describe('time (RFC 868)', () => {
  it('sends exactly 4 bytes with the current time, then closes', async () => {
    const s = await connectTo(server('time').port);
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    assert.equal(await waitClose(s), 'end');
    s.destroy();
    const got = Buffer.concat(chunks);
    assert.equal(got.length, 4);
    const unix = got.readUInt32BE() - 2_208_988_800;
    assert.ok(Math.abs(unix - Date.now() / 1000) < 30, `time ${unix} is not now`);
  });
});

describe('chargen (RFC 864)', () => {
  it('sends 72-character lines of the rotating 95 printable characters with CRLF, exactly, across backpressure', async () => {
    const s = await connectTo(server('chargen').port);
    s.pause();
    // A peer that does not read: the child must wait for drain, not buffer without bound.
    const [, pid] = await server('chargen').waitFor(/accept \S+ -> \S+ IPv4 pid (\d+)/);
    await sleep(1000);
    assert.ok(rssOf(Number(pid)) < 200 * 1024 * 1024, 'chargen child buffers without bound');
    const lines = 2000; // 21 full cycles of 95 lines and then some
    const got = await readBytes(s, lines * 74);
    let expected = '';
    for (let n = 0; n < lines; n++) expected += chargenLine(n);
    assert.equal(got.subarray(0, lines * 74).toString('latin1'), expected);
    assert.equal(chargenLine(0).slice(0, 5), ' !"#$');
    assert.equal(chargenLine(94)[0], '~');
    s.destroy();
    // The child notices the peer is gone at its next write and ends.
    await server('chargen').waitFor(new RegExp(`end pid ${pid} `));
  });
});
