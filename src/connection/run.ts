/**
 * Running a service on one connection, wherever it is served (the server process, a
 * pool worker, a fork child, a spare). This is the one place every model passes
 * through, so the handler contract (docs/handlers.md) is kept here and only here:
 *
 * - the connection lives until its socket has closed (both directions ended, or
 *   destroyed), as with `net.createServer`: returning, or resolving, leaves an open
 *   socket open, and a promise still pending when the socket closes does not hold the
 *   connection (a promise waiting for an 'end' that a reset never brings would hold it
 *   forever). A service that says so (`holdsConnection`: exec, whose program keeps its
 *   own copy of the socket) holds it until its promise settles too;
 * - the socket is handed over in Node's initial state: not flowing, but flowing-capable
 *   (on('data'), pipe(), resume(), read(), 'readable', for await start it), whatever
 *   paused it on the way (pauseOnConnect, a pool or a spare holding it unread);
 * - `for await` over it ends cleanly at the peer's FIN: the loop does not destroy the
 *   socket (Node's default iterator would, with ABORT_ERR, before the handler's end());
 * - a throw, a rejection or an 'error' event is one service error, and the socket is
 *   destroyed; a peer's reset, a closing the handler did not cause (the peer, a limit,
 *   the server's shutdown), and a failure after the connection has ended (a fork child
 *   has exited by then, a pool has forgotten the id) are not service errors;
 * - the idle and time limits are enforced on it;
 * - once it has closed, its listeners are removed (what they hold would otherwise live as
 *   long as Node keeps the closed socket: see the 'close' listener below).
 */
import { Readable } from 'node:stream';
import net from 'node:net';
import type { ConnectionLimits } from '../admission/limits.js';
import type { Service, ServiceContext } from '../services/types.js';

/**
 * Error codes that say the connection went away under the handler, not that the
 * handler failed: the peer reset it or stopped reading (ECONNRESET, EPIPE), or a
 * stream helper (pipeline, finished) saw the socket close before its end
 * (ERR_STREAM_PREMATURE_CLOSE: the peer, a limit or the server's shutdown closed it).
 */
const GONE = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE']);

/** An 'error' after 'close' (no connection is left to report it on): ignored, one shared listener. */
function ignoreLateError(): void {}

/** Whether `err` only says the connection went away (see GONE). */
function isPeerGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && GONE.has(code);
}

/**
 * The socket's async iterator for handlers. Node's own (Readable.prototype.iterator)
 * destroys the stream when the loop ends, and with an AbortError when the writable side
 * is not finished yet, which on a socket is always so at the peer's FIN (the handler's
 * end() comes after the loop): that is the ABORT_ERR a plain `net` server shows too.
 * Here a loop that runs to the peer's FIN leaves the socket open for the handler's last
 * writes and end(); a loop left early (break, return, throw) destroys it, without an
 * error, as Node's does.
 */
async function* chunksOf(socket: net.Socket): AsyncGenerator<Buffer | string> {
  let completed = false;
  try {
    for await (const chunk of Readable.prototype.iterator.call(socket, { destroyOnReturn: false }) as AsyncIterable<Buffer | string>) yield chunk;
    completed = true;
  } finally {
    if (!completed) socket.destroy();
  }
}

/** What the runner puts on each socket it serves: an iterator that leaves the socket open at EOF (see chunksOf). */
function iterateToEnd(this: net.Socket): AsyncGenerator<Buffer | string> {
  return chunksOf(this);
}

/**
 * A net.Socket whose class already has the runner's iterator (iterateToEnd), for sockets
 * tcpkit builds itself (../net/acceptor.ts onNativeSockets): serveSocket then adds no
 * property to each one. A property added to a socket reallocates its out-of-object
 * property store, one more allocation per connection that lives as long as the socket.
 */
export class ServedSocket extends net.Socket {}
Object.defineProperty(ServedSocket.prototype, Symbol.asyncIterator, { value: iterateToEnd, configurable: true, writable: true });

/**
 * runService with a callback instead of a promise: `done` is called once, when the
 * socket has closed (and, for a service with `holdsConnection`, its promise has settled). The
 * connection path of the in-process models and the pools uses this form: per
 * connection it costs a few listeners, and a promise only if the service returns one.
 * `onError` is called at most once per connection.
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
  /** Socket closed, and the service settled if it holds the connection: all must happen before `done`. */
  const holds = service.holdsConnection === true;
  /** At 0 the connection has ended (done called): a failure after that has no connection to be reported on. */
  let pending = holds ? 2 : 1;
  const settle = () => {
    if (--pending === 0) done();
  };
  /** The runner closed it (a limit): what the handler sees after that is not its failure. */
  let closedByUs = false;
  /** One error per connection: a handler that rejects with its socket's error is not counted twice. */
  let reported = false;
  const fail = (err: unknown) => {
    if (!reported && pending > 0 && !closedByUs && !isPeerGone(err)) {
      reported = true;
      onError(err);
    }
    socket.destroy();
  };
  if (limits?.idleMs) {
    socket.setTimeout(limits.idleMs);
    // A handler listening for 'timeout' itself (Node's idiom) decides what an idle socket means.
    socket.on('timeout', () => {
      if (socket.listenerCount('timeout') > 1) return;
      closedByUs = true;
      ctx.log(`no traffic for ${limits.idleMs} ms`, 'idle');
      socket.destroy();
    });
  }
  if (limits?.maxMs && !socket.destroyed) {
    timer = setTimeout(() => {
      closedByUs = true;
      ctx.log(`open longer than ${limits.maxMs} ms`, 'time-limit');
      socket.destroy();
    }, limits.maxMs);
  }
  if (socket.destroyed) settle();
  else {
    // on, not once: 'close' comes once, and once() wraps the listener (two more objects per connection).
    socket.on('close', () => {
      if (timer) clearTimeout(timer);
      // 'close' is a socket's last event. Its listeners (ours, the service's) hold the connection's objects,
      // and Node keeps a closed socket until a garbage collection after its handle's: every one of them
      // would survive a scavenge with it, be copied and promoted. Let go of them now (the listeners of this
      // very emit still run: Node calls a copy of the list).
      socket.removeAllListeners();
      // Should anything still emit 'error' on the dead socket, it must not become an uncaught exception.
      socket.on('error', ignoreLateError);
      settle();
    });
  }
  socket.on('error', fail);
  // Paused on the way here (pauseOnConnect, a pool, a spare): back to Node's initial state, so that
  // on('data') and pipe() start the flow as they do on a net.createServer socket. Nothing is read until then.
  // (Readable's readableFlowing setter; Node's types mark it read-only. The handle starts reading on the first read().)
  if (socket.readableFlowing === false) (socket as { readableFlowing: boolean | null }).readableFlowing = null;
  if (socket[Symbol.asyncIterator] !== iterateToEnd) Object.defineProperty(socket, Symbol.asyncIterator, { value: iterateToEnd, configurable: true, writable: true });
  let result: void | Promise<void>;
  const settled = holds ? settle : undefined;
  try {
    result = service(ctx);
  } catch (err) {
    fail(err);
    settled?.();
    return;
  }
  if (result && typeof (result as Promise<void>).then === 'function') {
    (result as Promise<void>).then(settled, (err: unknown) => {
      fail(err);
      settled?.();
    });
  } else settled?.();
}

/**
 * Run a service on one connection and contain whatever it does: a throw, a rejection
 * or an 'error' event destroys this socket only. Resolves when the socket is closed
 * (see serveSocket for `holdsConnection`). `onError` receives the failure for
 * the log (once at most). `limits` (default none): a connection with no traffic for
 * `idleMs` or open longer than `maxMs` is destroyed and reported with ctx.log (code
 * `idle` or `time-limit`).
 */
export function runService(service: Service, ctx: ServiceContext, onError: (err: unknown) => void, limits?: ConnectionLimits): Promise<void> {
  return new Promise((resolve) => serveSocket(service, ctx, onError, limits, resolve));
}
