/**
 * Running a service on one connection, wherever it is served (the server process, a
 * pool worker, a fork child, a spare): the service gets the socket, its failure is
 * contained to that socket, and the idle and time limits are enforced on it.
 */
import type { ConnectionLimits } from '../admission/limits.js';
import type { Service, ServiceContext } from '../services/types.js';

/**
 * runService with a callback instead of a promise: `done` is called once, when the
 * service has finished (returned, resolved, thrown or rejected) and the socket is
 * closed. The connection path of the in-process models and the pools uses this form:
 * per connection it costs one 'close' and one 'error' listener, and a promise only if
 * the service itself returns one.
 */
export function serveSocket(
  service: Service,
  ctx: ServiceContext,
  onError: (err: unknown) => void,
  limits: ConnectionLimits | undefined,
  done: () => void,
): void {
  const { socket } = ctx;
  let timer: NodeJS.Timeout | undefined;
  /** Service finished and socket closed: both must happen before `done`. */
  let pending = 2;
  const settle = () => {
    if (--pending === 0) done();
  };
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
  }
  if (socket.destroyed) settle();
  else {
    socket.once('close', () => {
      if (timer) clearTimeout(timer);
      settle();
    });
  }
  // A reset peer is the peer's business; it must never become an uncaught exception.
  socket.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') onError(err);
  });
  const finished = () => {
    // The service is done: send what is queued, FIN, then close (as a process exit would).
    if (!socket.destroyed) {
      if (socket.writableFinished) socket.destroy();
      else socket.end(() => socket.destroy());
    }
    settle();
  };
  const failed = (err: unknown) => {
    onError(err);
    socket.destroy();
    settle();
  };
  let result: void | Promise<void>;
  try {
    result = service(ctx);
  } catch (err) {
    failed(err);
    return;
  }
  if (result && typeof (result as Promise<void>).then === 'function') (result as Promise<void>).then(finished, failed);
  else finished();
}

/**
 * Run a service on one connection and contain whatever it does: a throw or a
 * rejection destroys this socket only. Resolves when the socket is closed.
 * `onError` receives the failure for the log. `limits` (default none), for
 * models that serve in-process: a connection with no traffic for `idleMs` or
 * open longer than `maxMs` is destroyed and reported with ctx.log (code `idle`
 * or `time-limit`).
 */
export function runService(service: Service, ctx: ServiceContext, onError: (err: unknown) => void, limits?: ConnectionLimits): Promise<void> {
  return new Promise((resolve) => serveSocket(service, ctx, onError, limits, resolve));
}
