// Helpers of the pool tests (test/e2e/pools.test.ts, pools-admission.test.ts): a server with its log in a file,
// its admin endpoint and /status, echo clients in lanes and clients that hold their connection.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BIN, eventually } from './helpers.js';

/** The admin endpoint's URL, from the server's log. */
export async function adminOf(server: { log(): string }): Promise<string> {
  return (await eventually(() => /admin (http:\/\/\S+)\/ pid \d+/.exec(server.log())?.[1], { timeoutMs: 20_000, message: 'the admin line' }));
}

export interface Snapshot {
  server: {
    accepted: number;
    ended: number;
    active: number;
    models: { processes: Array<{ pid: number; threadId: number; role: string; served: number; connections: number[] }>; messages: { fromWorkers: number; toWorkers: number } };
  };
}

export async function status(admin: string): Promise<Snapshot> {
  return (await (await fetch(`${admin}/status`)).json()) as Snapshot;
}

/** One echo of `ping\n` on a new connection; resolves whether it came back exact (30 s at most). */
export function echoPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let got = '';
    const timer = setTimeout(() => s.destroy(), 30_000);
    s.setEncoding('utf8');
    s.on('data', (c: string) => (got += c));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got === 'ping\n');
    });
    s.end('ping\n');
  });
}

/** `count` echoes, `lanes` at a time; resolves how many came back exact. */
export async function echoes(port: number, count: number, lanes: number): Promise<number> {
  let next = 0;
  let exact = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < count) {
        next++;
        if (await echoPing(port)) exact++;
      }
    }),
  );
  return exact;
}

/** A client that sends a line and keeps its connection open; `served` once the echo is back, `closed` when the server closes it. */
export interface Held {
  socket: net.Socket;
  served: boolean;
  closed: boolean;
  port: number;
}

export async function hold(port: number): Promise<Held> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  const h: Held = { socket, served: false, closed: false, port: 0 };
  socket.on('data', () => (h.served = true));
  socket.on('error', () => {});
  socket.on('close', () => (h.closed = true));
  await new Promise((resolve) => socket.once('connect', resolve));
  h.port = socket.localPort ?? 0;
  socket.write('x\n');
  return h;
}

export const lines = (log: string, re: RegExp): RegExpMatchArray[] => [...log.matchAll(re)];

/**
 * `tcpkit serve` with its log in a file: a burst of lines into a pipe the test reads
 * between hundreds of clients can fill it, and the server then drops lines (EAGAIN,
 * counted in the log); a file takes every line, which the tests below count.
 */
export async function startLogged(args: string[]): Promise<{ port: number; log(): string; stop(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-pools-'));
  const file = path.join(dir, 'log');
  const fd = fs.openSync(file, 'w');
  const proc = spawn(process.execPath, [BIN, 'serve', '--host', '127.0.0.1', '--port', '0', '--print-port', ...args], { stdio: ['ignore', 'pipe', fd] });
  fs.closeSync(fd);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const log = (): string => fs.readFileSync(file, 'utf8');
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no port; log:\n${log()}`)), 20_000);
    proc.stdout!.once('data', (c) => {
      clearTimeout(timer);
      resolve(Number(String(c).trim()));
    });
  });
  return {
    port,
    log,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

