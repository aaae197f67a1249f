/**
 * Entry point of a worker thread (the threads model). The spec is workerData; the
 * listening descriptor in it belongs to the main thread, which closes it after this
 * thread has exited; this thread listens only on its own duplicates of it, and maps
 * the shared counts from the pool's descriptors named in the spec (same process).
 * workerData is `{ spec, loading }`.
 *
 * `loading` (an Int32Array on shared memory, one per pool): the threadId of the thread
 * loading its modules now, or 0. One thread loads at a time, from here until it has sent
 * its first message (`ready`, or `fatal`): Node reads a thread's modules with many files
 * open at once, and threads starting together under a low `ulimit -n` (64) met EMFILE
 * there. A thread waits its turn at most LOAD_TURN_MS; the pool frees the turn of a
 * thread that exits holding it.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import type { FromWorker } from './messages.js';

/** The longest a thread waits for another to finish loading before it loads anyway. */
const LOAD_TURN_MS = 10_000;

const port = parentPort;
if (!port) throw new Error('tcpkit thread-worker: not running in a worker thread');

const data = (workerData ?? {}) as { spec?: unknown; loading?: Int32Array };
const loading = data.loading instanceof Int32Array ? data.loading : undefined;

/** Wait (blocking: this thread has nothing else to do yet) until no other thread is loading, then take the turn. */
function takeTurn(lock: Int32Array): void {
  const deadline = Date.now() + LOAD_TURN_MS;
  for (;;) {
    const holder = Atomics.compareExchange(lock, 0, 0, threadId);
    if (holder === 0 || holder === threadId) return;
    const left = deadline - Date.now();
    if (left <= 0) return;
    Atomics.wait(lock, 0, holder, left);
  }
}

/** Give the turn back (only ours) and wake a thread waiting for it. Idempotent. */
function endTurn(): void {
  if (loading && Atomics.compareExchange(loading, 0, threadId, 0) === threadId) Atomics.notify(loading, 0);
}

if (loading) takeTurn(loading);
let modules;
try {
  modules = await Promise.all([import('./messages.js'), import('./worker.js')]);
} catch (err) {
  endTurn();
  throw err;
}
const [{ decodeSpec, decodeToWorker }, { runWorker }] = modules;

// Checked as a process's spec is: a bad one throws here, and the pool logs the thread's error.
let spec;
try {
  spec = decodeSpec('worker', data.spec);
} catch (err) {
  endTurn();
  throw err;
}
await runWorker(spec, {
  send(msg: FromWorker, done?: () => void) {
    port.postMessage(msg);
    // Loaded and started (or failed for good): the next thread may load.
    endTurn();
    done?.();
  },
  onMessage(handler) {
    // A message that is not one of ToWorker throws here: an uncaught error the pool logs, as for a bad spec.
    port.on('message', (msg: unknown) => handler(decodeToWorker(msg), undefined));
  },
  exit() {
    // The main thread terminates us when it reads `drained` (or `fatal`): a message
    // posted just before process.exit() in a thread could be lost.
  },
});
