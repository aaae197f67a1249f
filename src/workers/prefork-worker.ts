/**
 * Entry point of a prefork worker process. The spec comes in TCPKIT_WORKER (JSON);
 * in shared mode the listening socket and the shared counts are in the stdio slots of
 * WORKER_SLOTS, which the worker moves to close-on-exec descriptors at once, so
 * nothing the service execs inherits them.
 */
import type net from 'node:net';
import { fdutil } from '../net/fdutil.js';
import { decodeToWorker, specFromEnv, WORKER_SLOTS, type FromWorker } from './messages.js';
import { runWorker } from './worker.js';

/** A descriptor inherited in a stdio slot, moved to a close-on-exec one. */
function keep(slot: number): number {
  const fd = fdutil.dup(slot);
  fdutil.close(slot);
  return fd;
}

const spec = specFromEnv('worker', 'tcpkit worker');
if (!process.send) {
  process.stderr.write('tcpkit worker: the IPC channel is missing; this program is started by tcpkit serve\n');
  process.exit(100);
}
if (spec.mode === 'shared') {
  spec.fd = keep(WORKER_SLOTS.listen);
  spec.ownsFd = true;
}
if (spec.counts) {
  spec.counts.table.fd = keep(spec.counts.table.fd);
  spec.counts.ledger.fd = keep(spec.counts.ledger.fd);
}
// ^C reaches the whole process group; the server decides when workers stop.
process.on('SIGINT', () => {});

let draining: (() => void) | undefined;
// The server is gone (its end of the channel closed): finish what we serve, then leave.
process.once('disconnect', () => draining?.());

await runWorker(spec, {
  send(msg: FromWorker, done?: () => void) {
    if (!process.connected) {
      done?.();
      return;
    }
    process.send!(msg, undefined, {}, () => done?.());
  },
  onExit(flush) {
    // A service's process.exit() or an uncaught error: the last batch of accepts and
    // ends still goes out (an IPC write on a pipe completes at once when it can).
    process.once('exit', flush);
    // SIGTERM (the server's stop after --grace, a service manager stopping the whole group): the last
    // batch first, then the signal's own end, as without this handler (the once-listener is gone by then).
    process.once('SIGTERM', () => {
      flush();
      process.kill(process.pid, 'SIGTERM');
    });
  },
  onMessage(handler) {
    draining = () => handler({ type: 'drain' }, undefined);
    process.on('message', (msg: unknown, socket?: net.Socket) => {
      try {
        handler(decodeToWorker(msg), socket);
      } catch (err) {
        // Not what this version of tcpkit sends: said on stderr, not acted on.
        process.stderr.write(`tcpkit worker ${process.pid}: ${(err as Error).message}\n`);
        socket?.destroy();
      }
    });
  },
  exit(code) {
    process.exit(code);
  },
});
// runWorker has mapped the shared counts before it resolves, and a mapping does not need its descriptor (native/shm.c).
if (spec.counts) {
  fdutil.close(spec.counts.table.fd);
  fdutil.close(spec.counts.ledger.fd);
}
