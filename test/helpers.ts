// Shared test helpers: start the real CLI on port 0, talk to it over real sockets,
// and look at processes and descriptors through /proc.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = path.join(ROOT, 'bin', 'tcpkit.js');

/** Run the CLI to completion; resolves { code, signal, stdout, stderr }. Bounded by timeoutMs. */
export function run(args, { input, timeoutMs = 60_000, env, stdin } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      stdio: [stdin ?? 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    const out = [];
    const err = [];
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => err.push(c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tcpkit ${args.join(' ')} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() });
    });
    if (child.stdin) {
      child.stdin.on('error', () => {});
      if (input !== undefined) child.stdin.end(input);
      else child.stdin.end();
    }
  });
}

/**
 * Start `tcpkit ARGS` and resolve once `ready(stdout)` returns a value (what the server
 * printed: a port, a list of bindings). Returns { ready, proc, pid, exited, log(),
 * waitFor(regex), stop(signal) }; shared by every helper that starts a server.
 */
export async function spawnServer(args, ready, { env, timeoutMs = 20_000, what = 'its port' } = {}) {
  const proc = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  let stdout = '';
  const waiters = new Set();
  const check = () => {
    for (const w of waiters) {
      const m = w.re.exec(stderr.slice(w.from));
      if (m) {
        waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(m);
      }
    }
  };
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c) => {
    stderr += c;
    check();
  });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const value = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not print ${what}; stderr:\n${stderr}`)), timeoutMs);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (c) => {
      stdout += c;
      const v = ready(stdout);
      if (v !== undefined) {
        clearTimeout(timer);
        resolve(v);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited ${code} before listening; stderr:\n${stderr}`));
    });
  });
  return {
    ready: value,
    proc,
    pid: proc.pid,
    exited,
    log: () => stderr,
    /** Resolve with the match of `re` in stderr written after `from` (default: anywhere). */
    waitFor(re, { from = 0, timeoutMs: t = 20_000 } = {}) {
      return new Promise((resolve, reject) => {
        const w = { re, from, resolve };
        w.timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`timed out waiting for ${re} in server log:\n${stderr}`));
        }, t);
        waiters.add(w);
        check();
      });
    },
    /** Send a signal and resolve with the exit { code, signal }. Kills with SIGKILL after timeoutMs. */
    async stop(signal = 'SIGTERM', t = 30_000) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), t);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

/**
 * Start `tcpkit serve ... --port 0 --print-port` and resolve once it prints its port.
 * Returns { port, proc, pid, log(), waitFor(regex), stop(signal) }.
 */
export async function startServer(args = [], { env, timeoutMs = 20_000 } = {}) {
  const server = await spawnServer(
    ['serve', '--host', '127.0.0.1', '--port', '0', '--print-port', ...args],
    (stdout) => {
      const m = /^(\d+)\n/.exec(stdout);
      return m ? Number(m[1]) : undefined;
    },
    { env, timeoutMs },
  );
  return Object.assign(server, { port: server.ready });
}

/** Connect to 127.0.0.1:port (optionally from `source`). */
export function connectTo(port, { host = '127.0.0.1', source } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, localAddress: source, allowHalfOpen: true });
    s.once('connect', () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Send `data`, half-close, and collect everything until the server closes. */
export async function echoOnce(port, data, opts) {
  const s = await connectTo(port, opts);
  return exchange(s, data);
}

/** Write data, FIN, read to EOF. Resolves the received Buffer. */
export function exchange(socket, data) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    socket.on('data', (c) => chunks.push(c));
    socket.once('end', () => {
      socket.destroy();
      resolve(Buffer.concat(chunks));
    });
    socket.once('error', reject);
    socket.end(data);
  });
}

/** Read from socket until `n` bytes have arrived. */
export function readBytes(socket, n) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let got = 0;
    const onData = (c) => {
      chunks.push(c);
      got += c.length;
      if (got >= n) {
        socket.off('data', onData);
        socket.pause();
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('end', () => {
      if (got < n) reject(new Error(`EOF after ${got} of ${n} bytes`));
    });
    socket.resume();
  });
}

/** Resolve when the socket sees EOF (or error), with which it was. */
export function waitClose(socket, timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('socket did not close')), timeoutMs);
    socket.once('end', () => {
      clearTimeout(timer);
      resolve('end');
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      resolve(e.code);
    });
    socket.resume();
  });
}

export const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
export const random = (n) => randomBytes(n);

/** Pids whose parent is `pid` (from /proc). */
export function childrenOf(pid) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push({ pid: Number(d), state: fields[0] });
    } catch {
      // raced with exit
    }
  }
  return out;
}

/** The descriptors of a process: [{ fd, target }]. */
export function fdsOf(pid) {
  const dir = `/proc/${pid}/fd`;
  return fs.readdirSync(dir).map((fd) => {
    let target = '';
    try {
      target = fs.readlinkSync(`${dir}/${fd}`);
    } catch {
      // closed meanwhile
    }
    return { fd: Number(fd), target };
  });
}

/** Socket inodes of a process. */
export function socketInodes(pid) {
  return fdsOf(pid)
    .map((f) => /^socket:\[(\d+)\]$/.exec(f.target)?.[1])
    .filter(Boolean);
}

/** TCP sockets by inode from /proc/net/tcp{,6}: Map<inode, { local, remote, state }>. */
export function tcpTable() {
  const map = new Map();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.trim().split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      map.set(f[9], { local: f[1], remote: f[2], state: f[3] });
    }
  }
  return map;
}

/** Resident set size in bytes of a process. */
export function rssOf(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

/** Poll `fn` until it returns truthy; reject after timeoutMs. */
export async function eventually(fn, { timeoutMs = 10_000, intervalMs = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${message} (last: ${JSON.stringify(last)})`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
