/**
 * prefork: a fixed pool of worker processes started ahead of need (UNP ch. 30).
 *
 *   --accept shared (serv02): every worker accepts on its own descriptor of the one
 *     listening socket (given in the worker's stdio slot 4); the kernel hands each
 *     new connection to one of them. The server process never touches a connection.
 *   --accept pass (serv05): the server accepts, picks the worker serving the fewest
 *     connections, sends it the descriptor over the IPC channel (SCM_RIGHTS), and
 *     closes its own copy once sent.
 *
 * Workers report the connections they take and end over IPC (../workers/messages.ts),
 * in batches when nothing configured needs a round trip (no --per-source, no --rate),
 * so counting, logging and --max-conns work as in every model; in shared mode each
 * worker keeps to its share of --max-conns, and the server tells workers to pause and
 * resume when the service's budget (shared by several addresses) is full. Supervision (restart with backoff, recycle after
 * --max-conns-per-worker) is in ./pool.ts.
 *
 * Isolation: a crash or process.exit in a worker ends that worker's connections
 * only; the server restarts it.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type net from 'node:net';
import { DEFAULT_WORKERS, OPTIONS, TERM_TO_KILL_MS } from '../options.js';
import { entryArgs } from '../workers/entries.js';
import { WORKER_SLOTS, type WorkerSpec } from '../workers/messages.js';
import { PoolModel, type Member, type MemberEvents } from './pool.js';
import type { Model, ModelHost } from './types.js';

const WORKER_ENTRY = entryArgs('prefork-worker');


/** The prefork model: `workers` (default: the number of CPUs, os.availableParallelism()), `accept` (default `shared`), `maxConnsPerWorker` (default 0, never). */
export class PreforkModel extends PoolModel {
  constructor(host: ModelHost) {
    const o = host.options;
    // Checked once, by the option table (src/options.ts), when the server was created.
    const accept = o.accept ?? OPTIONS.accept.default;
    super(host, {
      name: 'prefork',
      role: 'worker',
      workers: o.workers ?? DEFAULT_WORKERS,
      accept,
      maxConnsPerWorker: o.maxConnsPerWorker ?? OPTIONS.maxConnsPerWorker.default,
    });
  }

  protected spawn(spec: WorkerSpec, events: MemberEvents): Member {
    const shared = spec.mode === 'shared';
    // Shared mode: the listening socket and the shared counts (the per-source table, the ledger) in
    // the stdio slots of WORKER_SLOTS; libuv dup2()s them into the child only, and the spec names them there.
    const counts = spec.counts;
    const childSpec: WorkerSpec = counts ? { ...spec, counts: { ...counts, table: { ...counts.table, fd: WORKER_SLOTS.table }, ledger: { ...counts.ledger, fd: WORKER_SLOTS.ledger } } } : spec;
    const child = spawn(process.execPath, [...WORKER_ENTRY, spec.service.name], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...(shared ? [this.host.listener.fd] : []), ...(counts ? [counts.table.fd, counts.ledger.fd] : [])],
      env: { ...process.env, TCPKIT_WORKER: JSON.stringify(childSpec) },
      serialization: 'json',
    });
    const pid = child.pid;
    if (pid === undefined) {
      // spawn reports ENOENT/EAGAIN on 'error' later; the pool backs off and retries.
      child.once('error', () => {});
      throw Object.assign(new Error('spawn failed: no pid'), { code: 'EAGAIN' });
    }
    child.on('error', () => {}); // send() on a dead worker; 'exit' is what counts
    child.on('message', (msg: unknown) => events.message(msg));
    // 'close', not 'exit': after the IPC channel is closed too, so every message the worker sent has arrived.
    child.once('close', (code, signal) => events.exit(code, signal));
    let killTimer: NodeJS.Timeout | undefined;
    child.once('exit', () => clearTimeout(killTimer));
    return {
      pid,
      threadId: 0,
      send(msg, socket?: net.Socket, done?: (err: Error | null) => void) {
        if (!child.connected) {
          done?.(Object.assign(new Error('worker channel closed'), { code: 'EPIPE' }));
          return;
        }
        child.send(msg, socket, { keepOpen: true }, (err) => done?.(err ?? null));
      },
      stop() {
        child.kill('SIGTERM');
        killTimer ??= setTimeout(() => child.kill('SIGKILL'), TERM_TO_KILL_MS);
      },
      kill() {
        child.kill('SIGKILL');
      },
    };
  }

  protected released(): void {
    // A worker process's descriptors close with the process.
  }
}

export default (host: ModelHost): Model => new PreforkModel(host);
