// The super-server's config file: several services, schema errors that name the
// field, SIGHUP reloads that keep listening sockets, privilege drop.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ROOT, connectTo, echoOnce, eventually, random, run, sha256, startServer, portOf, errnoOf, type SpawnedServer } from '../helpers.js';
import { hasIPv6, startConfigServer, tempDir, stopAll } from '../exec-helpers.js';

const tmp = tempDir();
const servers: SpawnedServer<unknown>[] = [];
after(async () => {
  await stopAll(servers);
  tmp.cleanup();
});
const isRoot = process.getuid?.() === 0;
const UPPER = path.join(ROOT, 'test', 'fixtures', 'upper-handler.js');

function writeConfig(name: string, text: string): string {
  const file = path.join(tmp.dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('config file', () => {
  it('runs several services on several addresses (IPv4 and IPv6), internal and exec', async () => {
    const v6 = hasIPv6();
    const file = writeConfig('two.yaml', `
services:
  echo:
    listen: [127.0.0.1:0${v6 ? ', "[::1]:0"' : ''}]
    internal: echo
  cat:
    listen: 127.0.0.1:0
    exec: /bin/cat
    limits: { maxConns: 5, perSource: 3 }
  upper:
    listen: 127.0.0.1:0
    handler: ${UPPER}
${isRoot ? `  whoami:
    listen: 127.0.0.1:0
    exec: [/usr/bin/id, -u]
    user: nobody
` : ''}`);
    const srv = await startConfigServer(file, (v6 ? 4 : 3) + (isRoot ? 1 : 0));
    servers.push(srv);
    const data = random(64 * 1024);
    assert.equal(sha256(await echoOnce(srv.ports['echo 127.0.0.1:0'], data)), sha256(data));
    if (v6) assert.equal((await echoOnce(srv.ports['echo [::1]:0'], 'six', { host: '::1' })).toString(), 'six');
    assert.equal(sha256(await echoOnce(srv.ports['cat 127.0.0.1:0'], data)), sha256(data));
    assert.equal((await echoOnce(srv.ports['upper 127.0.0.1:0'], 'handler module')).toString(), 'HANDLER MODULE');
    if (isRoot) assert.equal((await echoOnce(srv.ports['whoami 127.0.0.1:0'], '')).toString(), '65534\n');
    // Under --config a service is named by its key: `cat` runs exec.
    await srv.waitFor(/listen 127\.0\.0\.1:\d+ IPv4 model fork service cat /);
    await srv.waitFor(/listen 127\.0\.0\.1:\d+ IPv4 model fork service echo /);
  });

  it('the CLI exits 100 on a broken config, naming the field', async () => {
    const file = writeConfig('broken.yaml', 'services:\n  echo:\n    listen: 127.0.0.1:0\n    internal: echo\n    limits: { maxConns: 0 }\n');
    const r = await run(['serve', '--config', file]);
    assert.equal(r.code, 100);
    assert.equal(r.stderr, `tcpkit: ${file}: services.echo.limits.maxConns: must be an integer from 1 to 1000000, got 0\n`);
    const r2 = await run(['serve', '--config', file, '--port', '7']);
    assert.equal(r2.code, 100);
    assert.match(r2.stderr, /--config FILE names the services and addresses; drop --port/);
  });

  it('SIGHUP: a changed service keeps its socket (no connection refused under load); an invalid file changes nothing; a removed service drains', async () => {
    const version = (maxConns: number, extra = ''): string => `
services:
  cat:
    listen: 127.0.0.1:0
    exec: /bin/cat
    limits: { maxConns: ${maxConns} }
${extra}`;
    const file = writeConfig('reload.yaml', version(30));
    const srv = await startConfigServer(file, 1);
    servers.push(srv);
    const port = srv.ports['cat 127.0.0.1:0'];

    // Load: 4 clients, each making connection after connection, until told to stop.
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const client = async () => {
      for (let i = 0; !stop && i < 2000; i++) {
        const payload = `c${i}-${'x'.repeat(i % 100)}`;
        try {
          const got = await echoOnce(port, payload);
          if (got.toString() !== payload) failures.push(`wrong echo ${got.length}`);
          else ok++;
        } catch (err) {
          failures.push(errnoOf(err).code ?? errnoOf(err).message);
        }
      }
    };
    const load = Promise.all([client(), client(), client(), client()]);
    await eventually(() => ok >= 20, { message: 'load running' });

    // A held connection on the old server must survive the reload (drain).
    const held = await connectTo(port);
    fs.writeFileSync(file, version(31, '  day:\n    listen: 127.0.0.1:0\n    internal: daytime\n'));
    let from = srv.log().length;
    srv.proc.kill('SIGHUP');
    await srv.waitFor(/reload ok kept 0 started 2 stopped 1/, { from });
    const [, dayPort] = await srv.waitFor(/listen 127\.0\.0\.1:(\d+) IPv4 model fork service day /, { from });
    await srv.waitFor(new RegExp(`listen 127\\.0\\.0\\.1:${port} IPv4 model fork service cat `), { from });
    await srv.waitFor(/shutdown signal reload active \d+ /, { from });
    const okAtReload = ok;
    await eventually(() => ok >= okAtReload + 20, { message: 'load after reload' });
    assert.match((await echoOnce(Number(dayPort), '')).toString(), /-UTC\r\n$/);

    // An invalid file: logged, the running services stay as they are.
    fs.writeFileSync(file, version(0));
    from = srv.log().length;
    srv.proc.kill('SIGHUP');
    await srv.waitFor(/reload failed message ".*services\.cat\.limits\.maxConns:\\x20must\\x20be\\x20an\\x20integer\\x20from\\x201\\x20to\\x201000000,\\x20got\\x200;\\x20the\\x20previous\\x20configuration\\x20stays"/, { from });
    const okAtBad = ok;
    await eventually(() => ok >= okAtBad + 10, { message: 'load after failed reload' });
    stop = true;
    await load;
    assert.deepEqual(failures, [], `connections failed during reloads (${ok} succeeded)`);

    // The held connection from before the first reload still echoes.
    held.write('still here');
    const back = await new Promise<Buffer>((resolve) => held.once('data', resolve));
    assert.equal(back.toString(), 'still here');
    held.end();

    // Remove cat: its port stops accepting (refused by the kernel); daytime stays.
    fs.writeFileSync(file, '\nservices:\n  day:\n    listen: 127.0.0.1:0\n    internal: daytime\n');
    from = srv.log().length;
    srv.proc.kill('SIGHUP');
    await srv.waitFor(/reload ok kept 1 started 0 stopped 1/, { from });
    await assert.rejects(connectTo(port), { code: 'ECONNREFUSED' });
    assert.match((await echoOnce(Number(dayPort), '')).toString(), /-UTC\r\n$/);
  });
});

describe('config reload failures', () => {
  it('a reload whose new address cannot be bound changes nothing (all or nothing)', async () => {
    const file = writeConfig('busy.yaml', 'services:\n  e:\n    listen: 127.0.0.1:0\n    internal: echo\n');
    const srv = await startConfigServer(file, 1);
    servers.push(srv);
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    try {
      const taken = portOf(busy);
      fs.writeFileSync(file, `services:\n  e:\n    listen: 127.0.0.1:0\n    internal: echo\n    limits: { maxConns: 7 }\n  d:\n    listen: 127.0.0.1:${taken}\n    internal: discard\n`);
      srv.proc.kill('SIGHUP');
      const [, port] = await srv.waitFor(/reload failed message "listen\\x20EADDRINUSE\\x20127\.0\.0\.1:(\d+);/);
      assert.equal(Number(port), taken);
      assert.doesNotMatch(srv.log(), /max 7|service d( |$)/m, 'part of the failed reload was started');
      assert.equal((await echoOnce(srv.ports['e 127.0.0.1:0'], 'same')).toString(), 'same');
    } finally {
      busy.close();
    }
  });
});

/** A free port below 1024 on 127.0.0.1 (we are root), or undefined. */
async function freeLowPort() {
  for (let port = 700; port < 1000; port++) {
    const free = await new Promise((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen({ host: '127.0.0.1', port, exclusive: true }, () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
  return undefined;
}

describe('privilege drop', () => {
  it('binds a port below 1024 as root, then runs as nobody (server and programs)', { skip: isRoot ? false : 'needs root' }, async () => {
    const port = await freeLowPort();
    assert.ok(port, 'no free port below 1024');
    const srv = await startServer(['--port', String(port), '--user', 'nobody', '--exec', '--', '/usr/bin/id', '-u']);
    servers.push(srv);
    assert.equal(srv.port, port);
    const status = fs.readFileSync(`/proc/${srv.pid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
    assert.match(status, /^Gid:\s+65534\s+65534\s+65534\s+65534$/m);
    assert.match(status, /^Groups:\s*65534\s*$/m);
    assert.equal((await echoOnce(port, '')).toString(), '65534\n');
  });

  it('drops to the config file\'s top-level user after binding', { skip: isRoot ? false : 'needs root' }, async () => {
    const file = writeConfig('user.yaml', 'user: nobody\nservices:\n  id:\n    listen: 127.0.0.1:0\n    exec: [/usr/bin/id, -u]\n');
    const srv = await startConfigServer(file, 1);
    servers.push(srv);
    assert.match(fs.readFileSync(`/proc/${srv.pid}/status`, 'utf8'), /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
    assert.equal((await echoOnce(srv.ports['id 127.0.0.1:0'], '')).toString(), '65534\n');
  });

  it('fails with a clear error when the user does not exist', async () => {
    const r = await run(['serve', '--host', '127.0.0.1', '--port', '0', '--user', 'no-such-user-here', 'echo']);
    assert.equal(r.code, 100);
    assert.match(r.stderr, /user: no such user "no-such-user-here"/);
  });
});
