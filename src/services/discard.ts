/**
 * discard (RFC 863): read and throw away everything until the peer's FIN, then
 * close. Nothing is ever sent. Reading as fast as the data comes keeps the
 * peer's window open; nothing is kept, so memory does not grow.
 */
import type { ServiceContext } from './types.js';

export default function discard({ socket }: ServiceContext): void {
  // The peer's FIN: ours follows (the connection ends when the socket closes, not when a service returns).
  socket.once('end', () => socket.end());
  socket.on('data', () => {});
  socket.resume();
}
