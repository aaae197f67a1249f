// Helpers shared by the super-server tests.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connectTo, exchange } from './helpers.js';

/** Connect, send nothing (half-close), read everything to EOF, parse one JSON line. */
export async function ask(port, opts) {
  const s = await connectTo(port, opts);
  const out = await exchange(s, Buffer.alloc(0));
  return JSON.parse(out.toString());
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-test-'));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Whether ::1 can be bound here (IPv6 loopback). */
export function hasIPv6() {
  return Object.values(os.networkInterfaces()).flat().some((i) => i && i.family === 'IPv6' && i.address === '::1');
}
