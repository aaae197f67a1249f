/**
 * Entry point of a worker thread (the threads model). The spec is workerData; the
 * listening descriptor in it belongs to the main thread, which closes it after this
 * thread has exited; this thread listens only on its own duplicates of it, and maps
 * the shared counts from the pool's descriptors named in the spec (same process).
 * workerData is `{ spec }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { decodeSpec, decodeToWorker, type FromWorker } from './messages.js';
import { runWorker } from './worker.js';

const port = parentPort;
if (!port) throw new Error('tcpkit thread-worker: not running in a worker thread');

const data = (workerData ?? {}) as { spec?: unknown };

// Checked as a process's spec is: a bad one throws here, and the pool logs the thread's error.
await runWorker(decodeSpec('worker', data.spec), {
  send(msg: FromWorker, done?: () => void) {
    port.postMessage(msg);
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
