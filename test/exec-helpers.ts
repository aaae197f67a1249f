// Helpers shared by the super-server tests.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { childrenOf, connectTo, eventually, exchange, spawnServer, type ConnectOptions, type SpawnedServer } from './helpers.js';

/** What test/fixtures/ucspi-peer.js tells its peer: its UCSPI environment and what its descriptor 0 says. */
export interface UcspiReport {
  env: Record<string, string | undefined>;
  peer: { address?: string; port?: number; family?: string };
  local: { address?: string; port?: number };
  argv: string[];
}

/** Connect, send nothing (half-close), read everything to EOF, parse one JSON line (a UcspiReport from ucspi-peer.js). */
export async function ask(port: number, opts?: ConnectOptions): Promise<UcspiReport> {
  const s = await connectTo(port, opts);
  const out = await exchange(s, Buffer.alloc(0));
  const report: UcspiReport = JSON.parse(out.toString());
  return report;
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-test-'));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Whether ::1 can be bound here (IPv6 loopback). */
export function hasIPv6(): boolean {
  return Object.values(os.networkInterfaces()).flat().some((i) => i && i.family === 'IPv6' && i.address === '::1');
}

/** Ports by `SERVICE LISTEN`, as `serve --config --print-port` prints them. */
export type ConfigPorts = Record<string, number>;

/** A `tcpkit serve --config` started by `startConfigServer`. */
export type ConfigServer = SpawnedServer<ConfigPorts> & { ports: ConfigPorts };

/**
 * Start `tcpkit serve --config FILE --print-port` and resolve once it has printed
 * `count` bindings (`SERVICE LISTEN HOST:PORT`). Returns { ports: { 'SERVICE LISTEN': port },
 * proc, pid, log(), waitFor(re, { from }), stop(signal) }.
 */
export async function startConfigServer(
  file: string,
  count: number,
  { env, args = [], timeoutMs = 20_000 }: { env?: NodeJS.ProcessEnv; args?: string[]; timeoutMs?: number } = {},
): Promise<ConfigServer> {
  const server = await spawnServer<ConfigPorts>(
    ['serve', '--config', file, '--print-port', ...args],
    (stdout) => {
      const lines = stdout.split('\n').filter(Boolean);
      if (lines.length < count) return undefined;
      return Object.fromEntries(
        lines.map((l) => {
          const [service, listen, local] = l.split(' ');
          return [`${service} ${listen}`, Number(/:(\d+)$/.exec(local ?? '')?.[1])];
        }),
      );
    },
    { env, timeoutMs, what: 'its ports' },
  );
  return Object.assign(server, { ports: server.ready });
}

/**
 * Stop servers the way an operator does (SIGTERM), after checking that every
 * program and child they started is gone; the exit must be clean.
 */
export async function stopAll(servers: Iterable<SpawnedServer<unknown>>): Promise<void> {
  const problems: string[] = [];
  for (const s of servers) {
    if (s.proc.exitCode !== null || s.proc.signalCode !== null) continue;
    try {
      await eventually(() => childrenOf(s.pid).length === 0, { timeoutMs: 10_000, message: `children of server ${s.pid} to end` });
    } catch (err) {
      problems.push(err instanceof Error ? err.message : String(err));
    }
    const r = await s.stop('SIGTERM');
    if (r.code !== 0) problems.push(`server ${s.pid} exited ${r.code ?? r.signal}`);
  }
  if (problems.length) throw new Error(problems.join('\n'));
}
