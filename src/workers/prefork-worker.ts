/**
 * Entry point of a prefork worker process. The spec comes in TCPKIT_WORKER (JSON);
 * in shared mode the listening socket is descriptor 4 (stdio slot 4 of the spawn),
 * which the worker moves to a close-on-exec descriptor at once, so nothing the
 * service execs inherits the listening socket.
 */
import type net from 'node:net';
import { fdutil } from '../net/fdutil.js';
import { specFromEnv, type FromWorker, type ToWorker } from './messages.js';
import { runWorker } from './worker.js';

/** The stdio slot the server puts the listening socket in. */
export const LISTEN_SLOT = 4;

const spec = specFromEnv('worker', 'tcpkit worker');
if (!process.send) {
  process.stderr.write('tcpkit worker: the IPC channel is missing; this program is started by tcpkit serve\n');
  process.exit(100);
}
if (spec.mode === 'shared') {
  spec.fd = fdutil.dup(LISTEN_SLOT);
  spec.ownsFd = true;
  fdutil.close(LISTEN_SLOT);
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
    process.on('message', (msg: ToWorker, socket?: net.Socket) => handler(msg, socket));
  },
  exit(code) {
    process.exit(code);
  },
});
