/**
 * echo (RFC 862, UNP's str_echo): every byte back, in order, until the peer's FIN,
 * then our FIN. Bytes are never decoded. `pipe` stops reading while the write side
 * is full, so a peer that sends and never reads fills the kernel's buffers and is
 * then held off by TCP flow control; the server buffers at most a highWaterMark.
 */
import type { ServiceContext } from './types.js';

export default function echo({ socket }: ServiceContext): Promise<void> {
  return new Promise((resolve) => {
    socket.once('close', () => resolve());
    socket.pipe(socket);
  });
}
