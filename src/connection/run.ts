/**
 * Running a service on one connection, wherever it is served (the server process, a
 * pool worker, a fork child, a spare): the service gets the socket, its failure is
 * contained to that socket, and the idle and time limits are enforced on it.
 */
import type { ConnectionLimits } from '../admission/limits.js';
import type { Service, ServiceContext } from '../services/types.js';

/**
 * Run a service on one connection and contain whatever it does: a throw or a
 * rejection destroys this socket only. Resolves when the socket is closed.
 * `onError` receives the failure for the log. `limits` (default none), for
 * models that serve in-process: a connection with no traffic for `idleMs` or
 * open longer than `maxMs` is destroyed and reported with ctx.log (code `idle`
 * or `time-limit`).
 */
export async function runService(
  service: Service,
  ctx: ServiceContext,
  onError: (err: unknown) => void,
  limits?: ConnectionLimits,
): Promise<void> {
  const { socket } = ctx;
  let timer: NodeJS.Timeout | undefined;
  if (limits?.idleMs) {
    socket.setTimeout(limits.idleMs, () => {
      ctx.log(`no traffic for ${limits.idleMs} ms`, 'idle');
      socket.destroy();
    });
  }
  if (limits?.maxMs) {
    timer = setTimeout(() => {
      ctx.log(`open longer than ${limits.maxMs} ms`, 'time-limit');
      socket.destroy();
    }, limits.maxMs);
    socket.once('close', () => clearTimeout(timer));
  }
  const closed = new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
  // A reset peer is the peer's business; it must never become an uncaught exception.
  socket.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') onError(err);
  });
  try {
    await service(ctx);
    // The service is done: send what is queued, FIN, then close (as a process exit would).
    if (!socket.destroyed) {
      if (socket.writableFinished) socket.destroy();
      else socket.end(() => socket.destroy());
    }
  } catch (err) {
    onError(err);
    socket.destroy();
  }
  await closed;
}
