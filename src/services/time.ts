/**
 * time (RFC 868): send the time as a 32-bit unsigned big-endian number of seconds
 * since 1900-01-01 00:00 UTC, then close. Anything the peer sends is ignored.
 * The 32-bit count wraps in February 2036; tcpkit sends it modulo 2^32, as the RFC's
 * field allows nothing else.
 */
import type { ServiceContext } from './types.js';

/** Seconds from 1900-01-01 to 1970-01-01 (RFC 868's 2,208,988,800). */
export const EPOCH_OFFSET = 2_208_988_800;

/** The 4 bytes for `date` (default now). */
export function timeBytes(date = new Date()): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE((Math.floor(date.getTime() / 1000) + EPOCH_OFFSET) % 2 ** 32);
  return b;
}

export default function time({ socket }: ServiceContext): void {
  socket.on('data', () => {});
  socket.resume();
  // Closed once the 4 bytes are sent, as the RFC says, whether or not the peer has closed its side.
  socket.end(timeBytes(), () => socket.destroy());
}
