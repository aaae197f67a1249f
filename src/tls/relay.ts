/**
 * The TLS relay: a TLS connection served by another process (a fork child or spare,
 * a prefork worker in pass mode) or by a program (--exec) gets a plaintext socket
 * instead, one end of an AF_UNIX socketpair (native/fdutil.c), while the process that
 * holds the TLS session copies between the session and the other end:
 *
 *   peer ══TLS══ TLSSocket ─┐ relay (this process) ┌─ end A ═ socketpair ═ end B ─► child / program fds 0, 1
 *
 * Half-close both ways: the peer's close_notify or FIN becomes shutdown(SHUT_WR) on
 * A (the program reads EOF on fd 0 and may still write), the program's EOF on B
 * ends the TLS stream (close_notify, FIN). Backpressure both ways: stream.pipe pauses
 * the reading side while the writing side's buffer is above its high-water mark, so
 * a slow reader on either side stops the other and nothing buffers without bound.
 * Byte-exact: nothing is added or taken. Either side failing destroys both.
 */
import type net from 'node:net';
import type tls from 'node:tls';
import { fdutil } from '../net/fdutil.js';
import { pausedSocketOfFd } from '../net/internals.js';

/**
 * Start relaying `secure` (a completed, paused TLSSocket) to a new socketpair; returns
 * the other end as a paused net.Socket to hand on in place of the accepted socket
 * (its descriptor goes to the child or program; closing it here after handing it on
 * is what the models do already). Throws (EMFILE) when no pair can be made: the
 * caller closes the connection.
 */
export function relayThroughPair(secure: tls.TLSSocket): net.Socket {
  const [a, b] = fdutil.socketpair();
  let near: net.Socket;
  let far: net.Socket;
  try {
    near = pausedSocketOfFd(a);
  } catch (err) {
    fdutil.close(a);
    fdutil.close(b);
    throw err;
  }
  try {
    far = pausedSocketOfFd(b);
  } catch (err) {
    near.destroy();
    fdutil.close(b);
    throw err;
  }
  const destroyBoth = () => {
    secure.destroy();
    near.destroy();
  };
  secure.on('error', destroyBoth);
  near.on('error', destroyBoth);
  // Both directions over: each socket closes itself (allowHalfOpen, then autoDestroy once
  // read to the end and written to the end). Either side gone for good (reset, destroyed): the other goes too.
  secure.once('close', () => near.destroy());
  near.once('close', () => secure.destroy());
  secure.pipe(near);
  near.pipe(secure);
  secure.resume();
  near.resume();
  return far;
}
