/**
 * Entry point of a worker thread (the threads model). The spec is workerData; the
 * listening descriptor in it belongs to the main thread, which closes it after this
 * thread has exited; this thread listens only on its own duplicates of it.
 * workerData is `{ spec, counters }`: counters, a SharedArrayBuffer of Int32 (slot 0:
 * connections accepted), outlive the thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { decodeSpec, type FromWorker, type ToWorker } from './messages.js';
import { runWorker } from './worker.js';

const port = parentPort;
if (!port) throw new Error('tcpkit thread-worker: not running in a worker thread');

const data = (workerData ?? {}) as { spec?: unknown; counters?: unknown };
// Shared with the main thread, which reads them after this thread is gone (see ../models/threads.ts).
const counters = data.counters instanceof SharedArrayBuffer ? new Int32Array(data.counters) : undefined;

// Checked as a process's spec is: a bad one throws here, and the pool logs the thread's error.
await runWorker(decodeSpec('worker', data.spec), {
  ...(counters && { counters }),
  send(msg: FromWorker, done?: () => void) {
    port.postMessage(msg);
    done?.();
  },
  onMessage(handler) {
    port.on('message', (msg: ToWorker) => handler(msg, undefined));
  },
  exit() {
    // The main thread terminates us when it reads `drained` (or `fatal`): a message
    // posted just before process.exit() in a thread could be lost.
  },
});
