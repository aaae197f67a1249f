/**
 * threads: a pool of worker threads in the server process, each accepting on its
 * own descriptor of the listening socket; bytes never pass through the main thread.
 *
 * How a socket reaches a thread, and who closes what:
 *   1. For each thread the main thread makes a duplicate of the listening socket
 *      (listener.dup(), close-on-exec) and gives its number in workerData.
 *   2. The thread never closes that descriptor; it listens on a duplicate of its
 *      own (to pause, it closes that duplicate; to resume, it makes another).
 *   3. The kernel hands each new connection to one of the accepting threads; the
 *      connected socket is created, read, written and closed in that thread.
 *   4. When the thread has exited (drained, terminated, or crashed, in which case
 *      its event loop's teardown closed its own duplicate), the main thread closes
 *      the descriptor of step 1.
 * With a program service the thread accepts natively (../net/fast-path.ts): its accept
 * watch (native/accept.c) holds that duplicate, and closes with the thread however it ends.
 * One descriptor number per thread matters: when threads share one number, a
 * thread's exit closes it for the whole process and libuv aborts in the others.
 *
 * Isolation: a throw in a service ends its connection; an uncaught error ends that
 * thread and every connection it serves (the pool restarts it); process.exit() in a
 * service ends only its thread. Memory corruption or an abort ends the process.
 */
import { Worker } from 'node:worker_threads';
import { describeError, InvalidOptionError } from '../errors.js';
import { fdutil } from '../net/fdutil.js';
import { DEFAULT_WORKERS, OPTIONS } from '../options.js';
import { threadEntry } from '../workers/entries.js';
import type { SegmentRef } from '../admission/source-table.js';
import type { WorkerSpec } from '../workers/messages.js';
import { PoolModel, type Member, type MemberEvents } from './pool.js';
import type { Model, ModelHost } from './types.js';

const THREAD_ENTRY = threadEntry('thread-worker');


/** The threads model: `workers` (default: the number of CPUs, os.availableParallelism()), `maxConnsPerWorker` (default 0, never); `accept` must be `shared`. */
export class ThreadsModel extends PoolModel {
  /** Each thread's duplicates of the shared segments (spawn makes them, released closes them). */
  readonly #segments = new WeakMap<WorkerSpec, number[]>();
  /**
   * The threadId of the thread loading its modules now, or 0: one thread loads at a time
   * (workers/thread-worker.ts says why). A thread that exits holding the turn gives it back here.
   */
  readonly #loading = new Int32Array(new SharedArrayBuffer(4));

  constructor(host: ModelHost) {
    const o = host.options;
    if (o.accept === 'pass') {
      throw new InvalidOptionError('accept', 'threads accept on their own descriptors; only "shared" applies (Node cannot move an accepted socket to a thread)');
    }
    super(host, {
      name: 'threads',
      role: 'thread',
      workers: o.workers ?? DEFAULT_WORKERS,
      accept: 'shared',
      maxConnsPerWorker: o.maxConnsPerWorker ?? OPTIONS.maxConnsPerWorker.default,
    });
  }

  protected spawn(spec: WorkerSpec, events: MemberEvents): Member {
    spec.fd = this.host.listener.dup();
    let worker: Worker;
    try {
      // The shared counts' segments, as the listening socket: the thread maps its own duplicates, which
      // released() closes once it has exited. The pool's descriptors would not do: the server closes the
      // table's when it stops (ServiceBudget.leave), while a thread may still be starting and mapping it,
      // which then fails with EBADF or maps whatever segment took the number since.
      if (spec.counts) {
        const dups: number[] = [];
        this.#segments.set(spec, dups);
        const own = (ref: SegmentRef): SegmentRef => {
          const fd = fdutil.dup(ref.fd);
          dups.push(fd);
          return { ...ref, fd };
        };
        spec.counts = { ...spec.counts, table: own(spec.counts.table), ledger: own(spec.counts.ledger) };
      }
      worker = new Worker(THREAD_ENTRY, { workerData: { spec, loading: this.#loading }, stdout: false, stderr: false });
    } catch (err) {
      this.released(spec);
      throw err;
    }
    // terminate() after `drained` is the normal end of a thread; it exits with 1 all the same.
    let drained = false;
    worker.on('message', (msg: unknown) => {
      if ((msg as { type?: unknown } | null)?.type === 'drained') drained = true;
      events.message(msg);
    });
    let error: Error | undefined;
    worker.on('error', (err) => {
      // An uncaught error in the thread: it is ending; 'exit' follows.
      error = err;
      this.host.emit({ type: 'error', where: 'thread', ...describeError(err, 'TCPKIT_HANDLER'), pid: process.pid });
    });
    const threadId = worker.threadId;
    worker.once('exit', (code) => {
      // Ended while loading (a crash, terminate()): the next thread may load now.
      if (Atomics.compareExchange(this.#loading, 0, threadId, 0) === threadId) Atomics.notify(this.#loading, 0);
      events.exit(error ? (code || 1) : drained ? 0 : code, null);
    });
    return {
      pid: process.pid,
      threadId: worker.threadId,
      send(msg) {
        worker.postMessage(msg);
      },
      stop() {
        void worker.terminate();
      },
      kill() {
        void worker.terminate();
      },
    };
  }

  /** Close what spawn() made for this thread: its listening descriptor and its segments' duplicates. Idempotent. */
  protected released(spec: WorkerSpec): void {
    if (spec.fd !== undefined) fdutil.close(spec.fd);
    spec.fd = undefined;
    for (const fd of this.#segments.get(spec) ?? []) fdutil.close(fd);
    this.#segments.delete(spec);
  }
}

export default (host: ModelHost): Model => new ThreadsModel(host);
