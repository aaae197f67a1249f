// TLS termination (issue 21): every model, SNI, client certificates, versions, --exec through the relay,
// the SSL_* environment, hostile peers, SIGHUP, --user with a key only root may read. Peers: openssl s_client
// and Node's tls client; certificates made by openssl at test time (test/tls-helpers.ts).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import { BIN, ROOT, connectTo, echoOnce, eventually, fdsOf, freePort, random, run, sha256, sleep, startServer, type StartedServer, EVERY_MODEL } from '../helpers.js';
import { startConfigServer } from '../exec-helpers.js';
import { have, makePki, sClient, tlsConnect, type TestPki } from '../tls-helpers.js';

const skip = have('openssl') ? false : 'openssl is not installed (apt-get install openssl)';
let pki: TestPki;
const servers: StartedServer[] = [];
before(() => {
  if (!skip) pki = makePki();
});
after(async () => {
  await Promise.all(servers.map((s) => s.stop('SIGKILL')));
  pki?.cleanup();
});

async function serve(args: string[]): Promise<StartedServer> {
  const s = await startServer(['--tls-cert', pki.chain, '--tls-key', pki.key, ...args]);
  servers.push(s);
  return s;
}

async function stop(s: StartedServer): Promise<void> {
  await s.stop();
  servers.splice(servers.indexOf(s), 1);
}

/** Send `data` over TLS, half-close, read everything back; the reader pauses now and then (a slow reader). */
async function roundTrip(port: number, data: Buffer, { slow = false } = {}): Promise<Buffer> {
  const s = await tlsConnect(port, { ca: fs.readFileSync(pki.ca) });
  const chunks: Buffer[] = [];
  let got = 0;
  const done = new Promise<void>((resolve, reject) => {
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      // Stop reading for a moment every 4 MiB: the server must hold back, not buffer without bound.
      if (slow && got % (4 << 20) < c.length) {
        s.pause();
        setTimeout(() => s.resume(), 100);
      }
    });
    s.once('end', resolve);
    s.once('error', reject);
  });
  s.end(data);
  await done;
  s.destroy();
  return Buffer.concat(chunks);
}

const MODELS = EVERY_MODEL;

describe('serve --tls-cert: every model, openssl s_client as the client', { skip }, () => {
  for (const [name, args] of MODELS) {
    it(`echo under ${name}: verified by the CA (chain in the cert file), accept line says tls TLSv1.3`, async () => {
      const srv = await serve(args);
      const r = await sClient(srv.port, ['-quiet', '-CAfile', pki.ca, '-servername', 'localhost', '-verify_return_error'], `ping ${name}\n`, new RegExp(`ping ${name}`));
      assert.match(r.stdout, new RegExp(`ping ${name}`), r.stderr);
      await srv.waitFor(/accept 127\.0\.0\.1:\d+ -> \S+ IPv4 pid \d+ count \d+\/\d+ id \d+ tls TLSv1\.3/);
      await stop(srv);
    });
  }
});

describe('serve --tls-*: certificates, versions, clients', { skip }, () => {
  it('--tls-sni NAME=CERT,KEY picks the certificate by the name the client asks for; others get --tls-cert', async () => {
    const srv = await serve(['--model', 'event', '--tls-sni', `other.test=${pki.otherCert},${pki.otherKey}`]);
    const other = await sClient(srv.port, ['-servername', 'other.test', '-CAfile', pki.ca], '', /Verify return code/);
    assert.match(other.stdout, /subject=\s*CN\s*=\s*other\.test/);
    const main = await sClient(srv.port, ['-servername', 'localhost', '-CAfile', pki.ca], '', /Verify return code/);
    assert.match(main.stdout, /subject=\s*CN\s*=\s*localhost/);
    await stop(srv);
  });

  it('TLS 1.1 is refused by default: one refuse line, reason tls-version', async () => {
    const srv = await serve(['--model', 'event']);
    const r = await sClient(srv.port, ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0', '-quiet'], 'x\n', undefined);
    assert.notEqual(r.code, 0);
    await srv.waitFor(/refuse 127\.0\.0\.1:\d+ -> \S+ IPv4 reason tls-version/);
    await stop(srv);
  });

  it('--tls-client require: no certificate → refused (tls-no-cert); a stranger\'s → refused (tls-cert); the CA\'s → served, SSL_* in the program\'s environment', async () => {
    const srv = await serve(['--model', 'fork', '--tls-ca', pki.ca, '--tls-client', 'require', '--exec', '--', '/usr/bin/env']);
    const none = await sClient(srv.port, ['-quiet', '-CAfile', pki.ca], '', /SSL_/, 5000);
    assert.doesNotMatch(none.stdout, /SSL_PROTOCOL/);
    await srv.waitFor(/refuse 127\.0\.0\.1:\d+ -> \S+ IPv4 reason tls-no-cert/);
    const stranger = await sClient(srv.port, ['-quiet', '-cert', pki.strangerCert, '-key', pki.strangerKey], '', /SSL_/, 5000);
    assert.doesNotMatch(stranger.stdout, /SSL_PROTOCOL/);
    await srv.waitFor(/refuse 127\.0\.0\.1:\d+ -> \S+ IPv4 reason tls-cert/);
    const ok = await sClient(srv.port, ['-quiet', '-CAfile', pki.ca, '-servername', 'localhost', '-cert', pki.clientCert, '-key', pki.clientKey], '', /SSL_PEER_CERT_HASH=.*\n/);
    assert.match(ok.stdout, /^SSL_PROTOCOL=TLSv1\.3$/m);
    assert.match(ok.stdout, /^SSL_CIPHER=TLS_AES_\w+$/m);
    assert.match(ok.stdout, /^SSL_TLS_SNI_SERVERNAME=localhost$/m);
    assert.match(ok.stdout, /^SSL_PEER_CERT_SUBJECT=CN=client one$/m);
    assert.match(ok.stdout, /^SSL_PEER_CERT_ISSUER=CN=tcpkit test CA$/m);
    assert.match(ok.stdout, /^SSL_PEER_CERT_HASH=([0-9A-F]{2}:){31}[0-9A-F]{2}$/m);
    assert.match(ok.stdout, /^TCPREMOTEIP=127\.0\.0\.1$/m);
    await stop(srv);
  });

  it('--allow-cert by subject, --deny-cert by fingerprint, in order with --deny: the rule decides with the certificate (deny ... rule)', async () => {
    const { X509Certificate } = await import('node:crypto');
    const own = new X509Certificate(fs.readFileSync(pki.clientCert)).fingerprint256;
    // client one is allowed by subject; with --deny-cert by its fingerprint first, it is denied; no certificate: denied by the --deny all.
    const allowSrv = await serve(['--model', 'event', '--tls-ca', pki.ca, '--tls-client', 'request', '--allow-cert', 'CN=client one', '--deny', 'all']);
    const ca = fs.readFileSync(pki.ca);
    // No certificate: the handshake completes, then the rule denies it (the socket is closed, maybe reset).
    const bare = await tlsConnect(allowSrv.port, { ca });
    bare.on('error', () => {});
    await new Promise((resolve) => bare.once('close', resolve).resume());
    await allowSrv.waitFor(/deny 127\.0\.0\.1:\d+ -> \S+ IPv4 reason access rule deny:all/);
    const s = await tlsConnect(allowSrv.port, { ca, cert: fs.readFileSync(pki.clientCert), key: fs.readFileSync(pki.clientKey) });
    const echoed = new Promise<string>((resolve) => s.once('data', (c: Buffer) => resolve(c.toString())));
    s.write('with cert');
    assert.equal(await echoed, 'with cert');
    s.destroy();
    await stop(allowSrv);
    const denySrv = await serve(['--model', 'fork', '--tls-ca', pki.ca, '--tls-client', 'require', '--deny-cert', own.replace(/:/g, '').toLowerCase(), '--allow-cert', 'CN=client one']);
    const d = await tlsConnect(denySrv.port, { ca, cert: fs.readFileSync(pki.clientCert), key: fs.readFileSync(pki.clientKey) });
    d.on('error', () => {});
    await new Promise((resolve) => d.once('close', resolve).resume());
    await denySrv.waitFor(/deny 127\.0\.0\.1:\d+ -> \S+ IPv4 reason access rule deny:all\+cert/);
    await stop(denySrv);
  });

  it('--proxy-protocol: the PROXY header first, then the handshake; the header\'s client is the peer (log, TCPREMOTEIP)', async () => {
    const srv = await serve(['--model', 'fork', '--proxy-protocol', '--exec', '--', '/usr/bin/env']);
    const r = await run(['client', '127.0.0.1', String(srv.port), '--proxy-protocol', 'v1', '--proxy-source', '192.0.2.9:4000', '--tls', '--tls-ca', pki.ca], { input: '' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /^TCPREMOTEIP=192\.0\.2\.9$/m);
    assert.match(r.stdout.toString(), /^SSL_PROTOCOL=TLSv1\.3$/m);
    await srv.waitFor(/accept 192\.0\.2\.9:4000 -> \S+ IPv4 pid \d+ count 1\/\d+ id \d+ via 127\.0\.0\.1:\d+ tls TLSv1\.3/);
    await stop(srv);
  });

  for (const [name, args] of [MODELS[1]!, MODELS[2]!, MODELS[4]!, MODELS[6]!]) {
    it(`--exec /bin/cat under ${name}: 64 MiB byte-exact through the relay, with a slow reader`, async () => {
      const srv = await serve([...args, '--exec', '--', '/bin/cat']);
      const data = random(64 << 20);
      const back = await roundTrip(srv.port, data, { slow: true });
      assert.equal(back.length, data.length);
      assert.equal(sha256(back), sha256(data));
      await srv.waitFor(/end pid \d+ exitcode 0/);
      await stop(srv);
    });
  }
});

describe('serve --tls-*: hostile peers', { skip }, () => {
  it('a ClientHello sent one byte at a time and never finished, and 1,000 garbage connections: capped, timed out, refusals folded; served throughout, descriptors flat', async () => {
    const srv = await serve(['--model', 'event', '--tls-max-pending-per-source', '4', '--tls-handshake-timeout', '2']);
    const hello = Buffer.from('16030100c8010000c40303', 'hex');
    // A warm-up connection, then the server's descriptors as a baseline.
    assert.equal((await roundTrip(srv.port, Buffer.from('warm'))).toString(), 'warm');
    await sleep(200);
    const baseline = fdsOf(srv.pid).length;
    // Slowloris: 8 connections from 127.0.0.3 trickling a ClientHello; 4 wait, the others are refused at once (tls-busy).
    const slow: net.Socket[] = [];
    for (let i = 0; i < 8; i++) {
      const s = net.connect({ port: srv.port, host: '127.0.0.1', localAddress: '127.0.0.3' });
      s.on('error', () => {});
      slow.push(s);
    }
    let i = 0;
    const trickle = setInterval(() => {
      for (const s of slow) if (!s.destroyed) s.write(hello.subarray(i % hello.length, (i % hello.length) + 1));
      i++;
    }, 200);
    await srv.waitFor(/reason tls-busy message "4\\x20handshakes\\x20in\\x20progress\\x20from\\x20127\.0\.0\.3"/);
    // Another source is served meanwhile.
    assert.equal((await roundTrip(srv.port, Buffer.from('still here'))).toString(), 'still here');
    await srv.waitFor(/reason tls-timeout/);
    clearInterval(trickle);
    for (const s of slow) s.destroy();
    // 1,000 garbage connections, 50 at a time.
    const from = srv.log().length;
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        Array.from({ length: 50 }, () => new Promise<void>((resolve) => {
          const s = net.connect({ port: srv.port, host: '127.0.0.1' }, () => s.end('GET / HTTP/1.0\r\n\r\n'));
          s.on('error', () => resolve());
          s.on('close', () => resolve());
          s.resume();
        })),
      );
    }
    await sleep(1500);
    const lines = srv.log().slice(from).split('\n').filter((l) => /reason tls-/.test(l));
    assert.ok(lines.length >= 1 && lines.length < 60, `refusals folded to about one line a second, got ${lines.length}`);
    assert.match(lines.join('\n'), /reason tls-garbage/);
    assert.match(lines.join('\n'), /handshakes?\\x20refused\\x20in\\x20the\\x20last\\x20second,\\x20folded/);
    assert.equal((await roundTrip(srv.port, Buffer.from('after'))).toString(), 'after');
    await eventually(() => fdsOf(srv.pid).length <= baseline + 2, { timeoutMs: 10_000, message: `descriptors back near ${baseline}` });
    await stop(srv);
  });
});

describe('serve --tls-*: reload and privileges', { skip }, () => {
  for (const model of ['event', 'prefork']) it(`SIGHUP (${model}): the next client sees the new certificate, the open session goes on; a mismatched pair keeps the old one and logs reload failed`, async () => {
    const certFile = path.join(pki.dir, `live-${model}.pem`);
    const keyFile = path.join(pki.dir, `live-${model}.key`);
    fs.copyFileSync(pki.cert, certFile);
    fs.copyFileSync(pki.key, keyFile);
    const srv = await startServer(['--model', model, '--workers', '2', '--tls-cert', certFile, '--tls-key', keyFile].filter((a, i, all) => model === 'prefork' || (a !== '--workers' && all[i - 1] !== '--workers')));
    servers.push(srv);
    const fp = async () => {
      const s = await tlsConnect(srv.port, { rejectUnauthorized: false });
      const f = s.getPeerX509Certificate()!.fingerprint256;
      s.destroy();
      return f;
    };
    const first = await fp();
    const open = await tlsConnect(srv.port, { rejectUnauthorized: false });
    fs.copyFileSync(pki.otherCert, certFile);
    fs.copyFileSync(pki.otherKey, keyFile);
    process.kill(srv.pid, 'SIGHUP');
    await srv.waitFor(/^reload ok/m);
    // A pool's workers get the new keys in a message: the next connection a worker accepts after it.
    const second = await eventually(async () => {
      const f = await fp();
      return f !== first ? f : undefined;
    }, { timeoutMs: 5000, message: 'the new certificate' });
    assert.equal(second, new (await import('node:crypto')).X509Certificate(fs.readFileSync(pki.otherCert)).fingerprint256);
    // The session opened before the reload still echoes.
    const echoed = new Promise<string>((resolve) => open.once('data', (c: Buffer) => resolve(c.toString())));
    open.write('old session');
    assert.equal(await echoed, 'old session');
    open.destroy();
    // A key that is not the certificate's: refused, the running one stays.
    fs.copyFileSync(pki.key, keyFile);
    process.kill(srv.pid, 'SIGHUP');
    await srv.waitFor(/^reload failed message "TLS:.*is\\x20not\\x20the\\x20key\\x20of\\x20the\\x20certificate/m);
    assert.equal(await fp(), second);
    await stop(srv);
  });

  it('--user nobody with a key only root may read: read before the drop, served as nobody', { skip: process.getuid?.() === 0 ? false : 'needs root' }, async () => {
    fs.chmodSync(pki.dir, 0o700);
    const srv = await serve(['--model', 'fork', '--user', 'nobody']);
    assert.equal(fs.statSync(pki.key).mode & 0o077, 0);
    assert.equal((await roundTrip(srv.port, Buffer.from('as nobody'))).toString(), 'as nobody');
    const status = fs.readFileSync(`/proc/${srv.pid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+65534\b/m);
    await stop(srv);
  });

  it('serve --config with a top-level user: the service\'s tls files are read before the drop', { skip: process.getuid?.() === 0 ? false : 'needs root' }, async () => {
    fs.chmodSync(pki.dir, 0o700);
    const file = path.join(pki.dir, 'tls.yaml');
    fs.writeFileSync(file, `user: nobody\nservices:\n  e:\n    listen: [127.0.0.1:0]\n    internal: echo\n    model: event\n    tls:\n      cert: ${pki.chain}\n      key: ${pki.key}\n`);
    const srv = await startConfigServer(file, 1);
    try {
      const port = Object.values(srv.ports)[0]!;
      assert.equal((await roundTrip(port, Buffer.from('config'))).toString(), 'config');
    } finally {
      await srv.stop();
    }
  });
});

describe('tcpkit client --tls, stunnel4 in front, tcpkit check', { skip }, () => {
  it('client --tls verifies by default and says why it fails; --tls-ca, --servername, --insecure, a client certificate', async () => {
    const srv = await serve(['--model', 'event', '--tls-ca', pki.ca, '--tls-client', 'request']);
    const port = String(srv.port);
    const untrusted = await run(['client', '127.0.0.1', port, '--tls'], { input: 'x\n' });
    assert.equal(untrusted.code, 111);
    assert.match(untrusted.stderr, /certificate not verified: SELF_SIGNED_CERT_IN_CHAIN \(give the CA that signed it with --tls-ca FILE, or --insecure to skip the check\)/);
    const ok = await run(['client', '127.0.0.1', port, '--tls', '--tls-ca', pki.ca], { input: 'verified\n' });
    assert.equal(ok.stdout.toString(), 'verified\n', ok.stderr);
    const wrongName = await run(['client', '127.0.0.1', port, '--tls', '--tls-ca', pki.ca, '--servername', 'other.test'], { input: 'x\n' });
    assert.equal(wrongName.code, 111);
    assert.match(wrongName.stderr, /certificate does not name other\.test/);
    const insecure = await run(['client', '127.0.0.1', port, '--tls', '--insecure'], { input: 'anyway\n' });
    assert.equal(insecure.stdout.toString(), 'anyway\n');
    const withCert = await run(['client', '127.0.0.1', port, '--tls', '--tls-ca', pki.ca, '--tls-cert', pki.clientCert, '--tls-key', pki.clientKey, '-v'], { input: 'mine\n' });
    assert.equal(withCert.stdout.toString(), 'mine\n');
    assert.match(withCert.stderr, /^tls TLSv1\.3 \S+ subject CN=localhost sha256 [0-9A-F:]+$/m);
    const usage = await run(['client', '127.0.0.1', port, '--tls-ca', pki.ca]);
    assert.equal(usage.code, 100);
    assert.match(usage.stderr, /--tls-ca needs --tls/);
    await stop(srv);
  });

  it('/metrics, /status and tcpkit status show handshakes, failures by reason, protocols and ciphers (a pool: the workers\' counts); the listener is marked tls', async () => {
    const srv = await serve(['--model', 'prefork', '--workers', '2', '--admin', '127.0.0.1:0']);
    const [, admin] = await srv.waitFor(/^admin (http:\/\/127\.0\.0\.1:\d+)\//m);
    for (let i = 0; i < 3; i++) assert.equal((await roundTrip(srv.port, Buffer.from('m'))).toString(), 'm');
    const garbage = await connectTo(srv.port);
    garbage.end('GET / HTTP/1.0\r\n\r\n');
    garbage.resume();
    await srv.waitFor(/reason tls-garbage/);
    // Workers report their counters at most once a second.
    const metrics = await eventually(async () => {
      const text = await (await fetch(`${admin}/metrics`)).text();
      return /tcpkit_tls_handshakes_total\{kind="full"\} 3\b/.test(text) && /tcpkit_tls_handshake_failures_total\{reason="tls-garbage"\} 1\b/.test(text) ? text : undefined;
    }, { timeoutMs: 10_000, message: 'TLS counters in /metrics' });
    assert.match(metrics, /tcpkit_tls_protocol_total\{protocol="TLSv1\.3"\} 3\b/);
    assert.match(metrics, /tcpkit_tls_cipher_total\{cipher="TLS_AES_\w+"\} 3\b/);
    const status = (await (await fetch(`${admin}/status`)).json()) as { server: { tls: { handshakes: number; failures: Record<string, number> } } };
    assert.equal(status.server.tls.handshakes, 3);
    assert.equal(status.server.tls.failures['tls-garbage'], 1);
    const text = await run(['status', '--admin', admin!]);
    assert.match(text.stdout.toString(), /^tls handshakes 3 {2}resumed 0 {2}pending 0 {2}failures tls-garbage=1 {2}protocols TLSv1\.3=3/m);
    assert.match(text.stdout.toString(), new RegExp(`127\\.0\\.0\\.1:${srv.port}\\s+\\*:\\*\\s+LISTEN tls`));
    await stop(srv);
  });

  it('tcpkit bench --tls: full handshakes, and with --resume sessions resumed (the server counts them)', async () => {
    const srv = await serve(['--model', 'event', '--admin', '127.0.0.1:0']);
    const [, admin] = await srv.waitFor(/^admin (http:\/\/127\.0\.0\.1:\d+)\//m);
    const full = await run(['bench', '127.0.0.1', String(srv.port), '--mode', 'echo', '--tls', '--conns', '20', '--json', '-q']);
    assert.equal(full.code, 0, full.stderr);
    assert.equal(JSON.parse(full.stdout.toString()).connections.completed, 20);
    const resumed = await run(['bench', '127.0.0.1', String(srv.port), '--mode', 'echo', '--tls', '--resume', '--conns', '20', '--json', '-q']);
    assert.equal(JSON.parse(resumed.stdout.toString()).connections.completed, 20);
    const status = (await (await fetch(`${admin}/status`)).json()) as { server: { tls: { handshakes: number; resumed: number } } };
    assert.equal(status.server.tls.handshakes, 40);
    assert.ok(status.server.tls.resumed >= 15, `resumed ${status.server.tls.resumed} of the 20 --resume handshakes`);
    const usage = await run(['bench', '127.0.0.1', String(srv.port), '--resume']);
    assert.equal(usage.code, 100);
    await stop(srv);
  });

  it('stunnel4 in client mode in front of tcpkit: plaintext in, verified TLS to tcpkit, echo back', { skip: have('stunnel4', ['-version']) ? false : 'stunnel4 is not installed (apt-get install stunnel4)' }, async () => {
    const srv = await serve(['--model', 'fork', '--exec', '--', '/usr/bin/env']);
    const front = await freePort();
    const conf = path.join(pki.dir, 'stunnel-client.conf');
    fs.writeFileSync(conf, `foreground = yes\npid =\n[c]\nclient = yes\naccept = 127.0.0.1:${front}\nconnect = 127.0.0.1:${srv.port}\nCAfile = ${pki.ca}\nverifyChain = yes\ncheckHost = localhost\nsni = localhost\n`);
    const stunnel = spawn('stunnel4', [conf], { stdio: 'ignore' });
    try {
      const out = await eventually(async () => {
        try {
          return (await echoOnce(front, '')).toString();
        } catch {
          return undefined;
        }
      }, { timeoutMs: 10_000, message: 'stunnel4 accepting' });
      assert.match(out, /^SSL_PROTOCOL=TLSv1\.3$/m);
      assert.match(out, /^SSL_TLS_SNI_SERVERNAME=localhost$/m);
    } finally {
      stunnel.kill();
    }
    await stop(srv);
  });

  it("tcpkit check: a key that is not the certificate's, a chain out of order, an SNI name not covered (errors, exit 100); a key others may read (warning, exit 0)", async () => {
    const reversed = path.join(pki.dir, 'reversed.pem');
    fs.writeFileSync(reversed, fs.readFileSync(pki.ca, 'utf8') + fs.readFileSync(pki.cert, 'utf8'));
    const bad = await run(['check', '--tls-cert', reversed, '--tls-key', pki.key, '--tls-sni', `nope.test=${pki.otherCert},${pki.otherKey}`]);
    assert.equal(bad.code, 100);
    assert.match(bad.stderr, /tcpkit check: tlsCert: \S+server\.key is not the key of the first certificate in \S+reversed\.pem \(CN=tcpkit test CA\)/);
    assert.match(bad.stderr, /certificate 1 \(CN=tcpkit test CA\) is not issued by certificate 2 \(CN=localhost\)/);
    assert.match(bad.stderr, /tcpkit check: tlsSni\[0\]: \S+other\.pem does not cover the SNI name nope\.test/);
    const open = path.join(pki.dir, 'open.key');
    fs.copyFileSync(pki.key, open);
    fs.chmodSync(open, 0o644);
    const warned = await run(['check', '--tls-cert', pki.chain, '--tls-key', open]);
    assert.equal(warned.code, 0, warned.stderr);
    assert.match(warned.stderr, /tcpkit check: warning: tlsCert: \S+open\.key may be read by others \(mode 644\): chmod 600 it/);
    const file = path.join(pki.dir, 'check.yaml');
    fs.writeFileSync(file, `services:\n  e:\n    listen: [127.0.0.1:0]\n    internal: echo\n    tls:\n      cert: ${pki.chain}\n      key: ${pki.key}\n      sni:\n        - nope.test=${pki.otherCert},${pki.otherKey}\n`);
    const config = await run(['check', '--config', file]);
    assert.equal(config.code, 100);
    assert.match(config.stderr, /tcpkit check: \S+check\.yaml: services\.e\.tls\.sni\[0\]: \S+other\.pem does not cover the SNI name nope\.test/);
    const good = await run(['check', '--tls-cert', pki.chain, '--tls-key', pki.key]);
    assert.equal(good.code, 0, good.stderr);
    assert.equal(good.stderr, '');
  });
});

describe('docs/tls.md', { skip }, () => {
  it('the self-signed session runs as shown (tcpkit on PATH, an empty directory)', () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs', 'tls.md'), 'utf8');
    const script = /## A self-signed certificate[\s\S]*?```sh\n([\s\S]*?)```/.exec(doc)![1]!;
    const dir = fs.mkdtempSync(path.join(pki.dir, 'doc-'));
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.writeFileSync(path.join(dir, 'bin', 'tcpkit'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`, { mode: 0o755 });
    const r = spawnSync('bash', ['-e', '-c', script], { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, PATH: `${path.join(dir, 'bin')}:${process.env.PATH}` } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'serve options: ok\nhello\nhello\n2\n');
  });
});
