/**
 * UNP ch. 30's client.c: each of `clients` concurrent clients makes `conns`
 * connections one after another; each sends `"K\n"` to the bench service, reads
 * exactly K bytes back, and closes (the client closes first, as in the book, so the
 * TIME_WAIT state stays on the client's side).
 */
import { performance } from 'node:perf_hooks';
import { Exchange, type LoadRun } from './load.js';

/** One connection of the requests mode. */
async function oneRequest(run: LoadRun): Promise<void> {
  const t0 = performance.now();
  const socket = await run.connect();
  try {
    const ex = new Exchange(run, socket);
    ex.write(`${run.options.bytes}\n`);
    await ex.read(run.options.bytes);
    run.exchanges++;
  } finally {
    socket.destroy();
  }
  run.latencies.push(performance.now() - t0);
}

/** Run the mode to the end (or to the run's cap); failures are counted, never thrown. */
export async function requests(run: LoadRun): Promise<void> {
  const client = async (): Promise<void> => {
    for (let i = 0; i < run.options.conns && run.running; i++) {
      try {
        await oneRequest(run);
        run.completed++;
      } catch (err) {
        run.fail(err);
      }
    }
  };
  await Promise.all(Array.from({ length: run.options.clients }, client));
}
