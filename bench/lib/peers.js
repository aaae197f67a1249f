// The servers the benchmark compares: tcpkit itself (any model, any service, --exec),
// a plain Node server (the floor), and the tools users would pick instead, each
// started on a loopback port: ucspi-tcp's tcpserver, socat, xinetd, ncat; and iperf3,
// the ceiling. Each start resolves { name, pid, port, stop() } or throws an Error
// whose message says why the peer could not run (the table prints it).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BIN, ROOT, freePort, sleep, spawnTracked, waitListening, waitStdout } from './procs.js';

/** Debian packages of the peers, by the command each provides. */
export const PEER_PACKAGES = { tcpserver: 'ucspi-tcp', socat: 'socat', xinetd: 'xinetd', ncat: 'ncat', iperf3: 'iperf3', unixserver: 'ucspi-unix', stunnel4: 'stunnel4', openssl: 'openssl' };

export function hasCommand(cmd) {
  try {
    execFileSync('bash', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** As root, apt-get install the peers that are missing; returns a log line per action. */
export function installPeers() {
  const missing = Object.entries(PEER_PACKAGES)
    .filter(([cmd]) => !hasCommand(cmd))
    .map(([, pkg]) => pkg);
  if (missing.length === 0) return [];
  if (process.getuid?.() !== 0) return [`not root: cannot install ${missing.join(', ')}`];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => execFileSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'ignore', env, timeout: 300_000 });
  try {
    install();
  } catch {
    try {
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env, timeout: 300_000 });
      install();
    } catch (err) {
      return [`apt-get install ${missing.join(' ')} failed: ${String(err.message).split('\n')[0]}`];
    }
  }
  return [`installed ${missing.join(', ')}`];
}

function wrap(name, child, port) {
  return { name, child, pid: child.pid, port, stop: () => child.stop('SIGTERM') };
}

async function started(name, child, getPort) {
  try {
    const port = await getPort();
    // Let the peer settle (and any probe connection's child exit) before measuring.
    await sleep(300);
    return wrap(name, child, port);
  } catch (err) {
    await child.stop('SIGKILL');
    throw new Error(`${name} did not start: ${err.message}`);
  }
}

/** The `tcpkit` binary the servers run (TCPKIT_SERVER_BIN overrides, to measure another build). */
export const SERVER_BIN = process.env.TCPKIT_SERVER_BIN ? path.resolve(process.env.TCPKIT_SERVER_BIN) : BIN;

/** `tcpkit serve --help`, once. */
let helpText;
export function serveHelp() {
  helpText ??= execFileSync(process.execPath, [SERVER_BIN, 'serve', '--help'], { encoding: 'utf8' });
  return helpText;
}

/** Models this tcpkit build offers (from `serve --help`). */
export function availableModels() {
  const m = /concurrency model: ([^(\n]+)/.exec(serveHelp());
  return m ? m[1].split(',').map((s) => s.trim()).filter(Boolean) : [];
}

/** Services this tcpkit build offers. */
export function availableServices() {
  const m = /^Services: ([^\n]+)\./m.exec(serveHelp());
  return m ? m[1].split(',').map((s) => s.trim()) : [];
}

/** tcpkit serve [SERVICE] with extra args (model, workers, --exec ...). */
export async function tcpkit(name, args) {
  const child = spawnTracked([
    process.execPath, SERVER_BIN, 'serve', '--host', '127.0.0.1', '--port', '0', '--print-port', '-q', ...args,
  ]);
  return started(name, child, async () => Number((await waitStdout(child, /^(\d+)\n/))[1]));
}

/** A fresh socket path for a UNIX-domain peer (in its own directory, removed with the run's temporary files). */
function unixPath(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-bench-unix-'));
  return path.join(dir, `${name}.sock`);
}

/** Wait until a server accepts on a UNIX socket path (a connect that succeeds). */
async function waitUnix(where, child, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const c = net.connect({ path: where }, () => {
        c.destroy();
        resolve(true);
      });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`nothing accepts on ${where}`);
    await sleep(50);
  }
}

/** tcpkit serve --unix PATH with extra args; its `port` is the load target `unix:PATH`. */
export async function tcpkitUnix(name, args) {
  const where = unixPath('tcpkit');
  const child = spawnTracked([process.execPath, SERVER_BIN, 'serve', '--unix', where, '--print-port', '-q', ...args]);
  return started(name, child, async () => (await waitStdout(child, /^(unix:\S+)\n/))[1]);
}

/** ucspi-unix's unixserver running cat on a UNIX socket (as many at once as tcpkit's rows allow). */
export async function unixserver() {
  need('unixserver');
  const where = unixPath('unixserver');
  const child = spawnTracked(['unixserver', '-q', '-c', '1000', '-b', '1024', where, 'cat']);
  return started('unixserver cat', child, async () => {
    await waitUnix(where, child);
    return `unix:${where}`;
  });
}

/** socat UNIX-LISTEN:PATH,fork EXEC:/bin/cat. */
export async function socatUnix() {
  need('socat');
  const where = unixPath('socat');
  const child = spawnTracked(['socat', `UNIX-LISTEN:${where},fork,backlog=1024`, 'EXEC:/bin/cat']);
  return started('socat unix fork cat', child, async () => {
    await waitUnix(where, child);
    return `unix:${where}`;
  });
}

/** The floor: a plain single-process Node net server (bench/peers/node-server.js), echo or bench. */
export async function nodeFloor(kind) {
  const child = spawnTracked([process.execPath, path.join(ROOT, 'bench', 'peers', 'node-server.js'), kind, '0']);
  return started(`node ${kind}`, child, async () => Number((await waitStdout(child, /^(\d+)\n/))[1]));
}

function need(cmd) {
  if (!hasCommand(cmd)) throw new Error(`${cmd} not installed (Debian package ${PEER_PACKAGES[cmd]})`);
}

/** ucspi-tcp's tcpserver running cat. */
export async function tcpserver() {
  need('tcpserver');
  const child = spawnTracked(['tcpserver', '-1', '-R', '-H', '-l', '0', '-c', '1000', '-b', '1024', '127.0.0.1', '0', 'cat']);
  return started('tcpserver cat', child, async () => Number((await waitStdout(child, /^(\d+)\n/))[1]));
}

/** socat TCP-LISTEN,fork EXEC:cat. */
export async function socat() {
  need('socat');
  const port = await freePort();
  const child = spawnTracked(['socat', `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork,backlog=1024`, 'EXEC:/bin/cat']);
  return started('socat fork cat', child, async () => {
    await waitListening(port, child);
    return port;
  });
}

/** xinetd running /bin/cat (`internal: false`) or its internal echo service. */
export async function xinetd({ internal }) {
  need('xinetd');
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-xinetd-'));
  const limits = ['instances = UNLIMITED', 'per_source = UNLIMITED', 'cps = 1000000 1'];
  const service = internal
    ? ['service echo', '{', 'type = INTERNAL UNLISTED', 'id = echo-stream']
    : ['service tcpkit-bench-cat', '{', 'type = UNLISTED', 'server = /bin/cat'];
  const conf = [
    'defaults',
    '{',
    `log_type = FILE ${path.join(dir, 'xinetd.log')}`,
    ...limits,
    '}',
    ...service,
    'socket_type = stream',
    'protocol = tcp',
    'wait = no',
    'user = root',
    `port = ${port}`,
    'bind = 127.0.0.1',
    ...limits,
    '}',
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'xinetd.conf'), conf);
  const child = spawnTracked(['xinetd', '-dontfork', '-f', path.join(dir, 'xinetd.conf'), '-pidfile', path.join(dir, 'pid')]);
  child.exited.then(() => fs.rmSync(dir, { recursive: true, force: true }));
  return started(internal ? 'xinetd internal echo' : 'xinetd cat', child, async () => {
    await waitListening(port, child);
    return port;
  });
}

/** ncat --keep-open --exec /bin/cat. */
export async function ncat() {
  need('ncat');
  const port = await freePort();
  const child = spawnTracked(['ncat', '-l', '--keep-open', '--max-conns', '2000', '--exec', '/bin/cat', '127.0.0.1', String(port)]);
  return started('ncat --exec cat', child, async () => {
    await waitListening(port, child);
    return port;
  });
}

/** iperf3 on loopback: the one-way bandwidth ceiling, in bytes per second, for `bytes` bytes. */
export async function iperf3(bytes) {
  need('iperf3');
  const port = await freePort();
  const server = spawnTracked(['iperf3', '-s', '--forceflush', '-B', '127.0.0.1', '-p', String(port)]);
  try {
    await waitStdout(server, /Server listening/);
    const client = spawnTracked(['iperf3', '-c', '127.0.0.1', '-p', String(port), '-n', String(bytes), '-J']);
    await client.exited;
    const result = JSON.parse(client.stdoutText());
    if (result.error) throw new Error(result.error);
    const sum = result.end.sum_received;
    return { bytesPerSecond: sum.bits_per_second / 8, seconds: sum.seconds, bytes: sum.bytes };
  } finally {
    await server.stop('SIGTERM');
  }
}

/** A self-signed certificate for the TLS rows (openssl, made once per run in a temporary directory). */
let testCertificate;
export function testCert() {
  if (testCertificate) return testCertificate;
  need('openssl');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-bench-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  testCertificate = { cert, key };
  return testCertificate;
}

/** The TLS floor: a plain Node tls.createServer echo (bench/peers/node-tls-server.js). */
export async function nodeTls() {
  const { cert, key } = testCert();
  const child = spawnTracked([process.execPath, path.join(ROOT, 'bench', 'peers', 'node-tls-server.js'), cert, key, '0']);
  return started('node tls echo', child, async () => Number((await waitStdout(child, /^(\d+)\n/))[1]));
}

/** stunnel4 terminating TLS and running /bin/cat per connection (its `exec =` mode, inetd-style). */
export async function stunnelExec() {
  need('stunnel4');
  const { cert, key } = testCert();
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-stunnel-'));
  const conf = path.join(dir, 'stunnel.conf');
  fs.writeFileSync(conf, ['foreground = yes', 'pid =', 'debug = 0', `output = ${path.join(dir, 'log')}`, '[cat]', `accept = 127.0.0.1:${port}`, `cert = ${cert}`, `key = ${key}`, 'exec = /bin/cat', 'execArgs = cat', ''].join('\n'));
  const child = spawnTracked(['stunnel4', conf]);
  child.exited.then(() => fs.rmSync(dir, { recursive: true, force: true }));
  return started('stunnel4 exec=/bin/cat', child, async () => {
    await waitListening(port, child);
    return port;
  });
}
