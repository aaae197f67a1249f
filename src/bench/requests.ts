/**
 * UNP ch. 30's client.c: each of `clients` concurrent clients makes `conns`
 * connections one after another; each sends `"K\n"` to the bench service, reads
 * exactly K bytes back, and closes (the client closes first, as in the book, so the
 * TIME_WAIT state stays on the client's side).
 */
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { ProtocolError } from '../errors.js';
import { Exchange, type LoadRun } from './load.js';

/**
 * Fail the connection at once when the server sends the request line back: it is an echo server (the
 * default `tcpkit serve`), which would never send the K bytes asked for, so every connection used to wait
 * for --timeout (10 s) and fail ETIMEDOUT with no word of why. The bench service replies with `x` bytes only.
 */
function failOnEcho(run: LoadRun, socket: net.Socket, request: Buffer): void {
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]).subarray(0, request.length);
    if (head.length < request.length) return;
    socket.off('data', onData);
    if (!head.equals(request)) return;
    socket.destroy(
      new ProtocolError(
        `${run.address} sent the request line ${JSON.stringify(request.toString())} back: it is an echo server. ` +
          '--mode requests (the default) needs the bench service (tcpkit serve bench); for an echo server use --mode echo',
        'TCPKIT_BENCH_MISMATCH',
      ),
    );
  };
  socket.on('data', onData);
}

/** One connection of the requests mode. */
async function oneRequest(run: LoadRun): Promise<void> {
  const t0 = performance.now();
  const socket = await run.connect();
  try {
    const request = Buffer.from(`${run.options.bytes}\n`);
    failOnEcho(run, socket, request);
    const ex = new Exchange(run, socket);
    ex.write(request);
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
