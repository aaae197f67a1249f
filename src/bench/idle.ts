/**
 * Idle connections: open `idle` connections (`clients` connects in flight at once),
 * spread in turn over the `sources` addresses so that more than one source address's
 * ~28,000 ephemeral ports can be used (the seed's 65535 point: a connection is a
 * 4-tuple, and the client's address is one of its parts). Hold them `hold` seconds
 * without sending a byte, then close them all.
 */
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { PrematureCloseError } from '../errors.js';
import type { LoadRun } from './load.js';

/** What idle mode reports. */
export interface IdleResult {
  /** Connections asked for. */
  requested: number;
  /** Connections that completed the handshake. */
  opened: number;
  /** Connections still open at the end of the hold. */
  held: number;
  /** The most open at once. */
  peakHeld: number;
  /** Opened connections by local (source) address. */
  bySource: Record<string, number>;
  /** Seconds the connections were held once all were open. */
  holdSeconds: number;
}

/**
 * Run the mode to the end (or to the run's cap); failures are counted, never thrown.
 * `whileHeld` runs once all connections are open and the hold is over, before they are
 * closed (the caller samples the server's memory there).
 */
export async function idle(run: LoadRun, whileHeld: () => void = () => {}): Promise<IdleResult> {
  const { idle: requested, clients, hold } = run.options;
  const held = new Set<net.Socket>();
  const bySource: Record<string, number> = {};
  let next = 0;
  let peakHeld = 0;
  let releasing = false;

  const opener = async (): Promise<void> => {
    while (next < requested && run.running && !run.interrupted) {
      next++;
      const t0 = performance.now();
      let socket: net.Socket;
      try {
        socket = await run.connect();
      } catch (err) {
        run.fail(err);
        continue;
      }
      run.latencies.push(performance.now() - t0);
      // Idle is the point: no idle timeout, and no reading that could hide a close.
      socket.setTimeout(0);
      const source = socket.localAddress ?? 'unknown';
      bySource[source] = (bySource[source] ?? 0) + 1;
      held.add(socket);
      peakHeld = Math.max(peakHeld, held.size);
      let error: unknown;
      socket.on('error', (err) => {
        error = err;
      });
      socket.on('data', (chunk: Buffer) => {
        run.bytesReceived += chunk.length;
      });
      // The server's FIN ends the connection for us too (it is half-open otherwise).
      socket.on('end', () => {
        error ??= new PrematureCloseError('EOF while idle');
        socket.destroy();
      });
      socket.on('close', () => {
        held.delete(socket);
        // A close we did not ask for is the server dropping a connection it accepted.
        if (!releasing && run.running) run.fail(error ?? new PrematureCloseError('closed while idle'));
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(clients, requested) }, opener));
  const opened = Object.values(bySource).reduce((a, b) => a + b, 0);

  const t0 = performance.now();
  if (run.running && !run.interrupted && hold > 0) {
    // One timer checks both the hold's end and the run's cap, and is cleared on either.
    const end = performance.now() + hold * 1000;
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (!run.running || run.interrupted || performance.now() >= end) {
          clearInterval(poll);
          resolve();
        }
      }, Math.min(100, hold * 1000));
    });
  }
  const holdSeconds = (performance.now() - t0) / 1000;
  const stillHeld = held.size;
  whileHeld();
  releasing = true;
  run.completed += stillHeld;
  run.exchanges += stillHeld;
  for (const s of held) s.destroy();
  return { requested, opened, held: stillHeld, peakHeld, bySource, holdSeconds };
}
