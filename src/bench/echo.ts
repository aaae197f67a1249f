/**
 * Echo lines: each of `clients` concurrent clients makes `conns` connections one after
 * another; each sends `lines` lines of `bytes` bytes (newline included), one at a time,
 * waits for each to come back unchanged, and closes. Works against any echo server
 * (tcpkit's echo, `cat` behind tcpserver, socat, xinetd, ncat).
 */
import { performance } from 'node:perf_hooks';
import { EchoMismatchError } from '../errors.js';
import { Exchange, type LoadRun } from './load.js';

/** A line of `n` bytes: printable text, then a newline. */
export function makeLine(n: number, seed: number): Buffer {
  const line = Buffer.alloc(n);
  for (let i = 0; i < n - 1; i++) line[i] = 0x21 + ((i * 7 + seed) % 94);
  line[n - 1] = 0x0a;
  return line;
}

async function oneConnection(run: LoadRun, lines: Buffer[]): Promise<void> {
  const t0 = performance.now();
  const socket = await run.connect();
  try {
    const ex = new Exchange(run, socket);
    for (let i = 0; i < run.options.lines; i++) {
      const line = lines[i % lines.length]!;
      ex.write(line);
      const back = (await ex.read(line.length, true))!;
      if (!back.equals(line)) throw new EchoMismatchError(run.address, i * line.length);
      run.exchanges++;
    }
  } finally {
    socket.destroy();
  }
  run.latencies.push(performance.now() - t0);
}

/** Run the mode to the end (or to the run's cap); failures are counted, never thrown. */
export async function echo(run: LoadRun): Promise<void> {
  // Two different lines in turn, so an echo that repeats the previous line is caught.
  const lines = [makeLine(run.options.bytes, 0), makeLine(run.options.bytes, 1)];
  const client = async (): Promise<void> => {
    for (let i = 0; i < run.options.conns && run.running; i++) {
      try {
        await oneConnection(run, lines);
        run.completed++;
      } catch (err) {
        run.fail(err);
      }
    }
  };
  await Promise.all(Array.from({ length: run.options.clients }, client));
}
