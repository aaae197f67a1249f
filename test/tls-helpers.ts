// Helpers of the TLS tests: certificates made by openssl at test time (no private key is committed),
// openssl s_client as a peer, a Node TLS client.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

/** Whether a command runs here (`openssl version`, `stunnel4 -version`). */
export function have(cmd: string, args: string[] = ['version']): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).error === undefined;
}

/** Files of a test PKI: a CA, server certificates for localhost and other.test, client certificates. */
export interface TestPki {
  dir: string;
  ca: string;
  /** CN=localhost, signed by the CA; `chain`: the certificate followed by the CA's. */
  cert: string;
  key: string;
  chain: string;
  /** CN=other.test (an SNI name), signed by the CA. */
  otherCert: string;
  otherKey: string;
  /** A client certificate (CN=client one) signed by the CA, and one self-signed (CN=stranger). */
  clientCert: string;
  clientKey: string;
  strangerCert: string;
  strangerKey: string;
  cleanup(): void;
}

function ossl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Sign `name` (its key and CSR made here) with the CA; SAN for server names. */
function signed(dir: string, name: string, cn: string, san?: string): void {
  ossl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, san ? `subjectAltName=${san}\n` : 'basicConstraints=CA:FALSE\n');
  ossl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '30', '-out', `${name}.pem`, '-extfile', ext]);
}

/** Make a test PKI in a fresh temporary directory (removed by cleanup()). */
export function makePki(): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-tls-'));
  ossl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', '/CN=tcpkit test CA']);
  signed(dir, 'server', 'localhost', 'DNS:localhost,IP:127.0.0.1');
  signed(dir, 'other', 'other.test', 'DNS:other.test');
  signed(dir, 'client', 'client one');
  ossl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'stranger.key', '-out', 'stranger.pem', '-days', '30', '-subj', '/CN=stranger']);
  const p = (f: string) => path.join(dir, f);
  fs.writeFileSync(p('chain.pem'), fs.readFileSync(p('server.pem'), 'utf8') + fs.readFileSync(p('ca.pem'), 'utf8'));
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.key')) fs.chmodSync(p(f), 0o600);
  return {
    dir,
    ca: p('ca.pem'),
    cert: p('server.pem'),
    key: p('server.key'),
    chain: p('chain.pem'),
    otherCert: p('other.pem'),
    otherKey: p('other.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
    strangerCert: p('stranger.pem'),
    strangerKey: p('stranger.key'),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** What `openssl s_client` printed, and how it ended. */
export interface SClientResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

/**
 * Run `openssl s_client -connect 127.0.0.1:PORT ARGS`, write `input`, and stop it once
 * `until` appears in its stdout (or it exits, or `timeoutMs` passes).
 */
export function sClient(port: number, args: string[], input: string, until: RegExp | undefined, timeoutMs = 10_000): Promise<SClientResult> {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => p.kill(), timeoutMs);
    p.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      if (until && until.test(stdout)) p.kill();
    });
    p.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    p.stdin.on('error', () => {});
    p.stdin.write(input);
    p.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code });
    });
  });
}

/** A Node TLS connection to 127.0.0.1:port trusting `ca` (servername localhost unless given). */
export function tlsConnect(port: number, opts: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...opts });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}
