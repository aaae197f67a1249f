/**
 * echo (RFC 862, UNP's str_echo): every byte back, in order, until the peer's FIN,
 * then our FIN. Bytes are never decoded.
 *
 * Two gears. A connection starts on 'data' events (Node allocates each read): a
 * request/response peer never costs more than that, and an idle one holds no buffer.
 * Once a read fills Node's whole read size (BULK_READ: the peer is streaming), the
 * socket switches to reading into buffers of its own (UserBufferEcho below): no
 * allocation and no stream machinery per read, and most writes go to the kernel at
 * once. Either way reading stops while the write side is full, so a peer that sends
 * and never reads fills the kernel's buffers and is then held off by TCP flow
 * control; the server holds at most two read buffers (or a highWaterMark) per connection.
 */
import type net from 'node:net';
import { readIntoUserBuffer } from '../net/internals.js';
import type { ServiceContext } from './types.js';

/** libuv's read size for a stream (64 KiB): a 'data' chunk this big means more was probably waiting. */
export const BULK_READ = 64 * 1024;
/** Size of each of a bulk connection's two read buffers: 256 KiB (fewer reads per byte than libuv's 64 KiB). */
export const ECHO_BUFFER = 256 * 1024;

/**
 * Echo on Node's `onread` mode with two buffers. A read's bytes are written at once;
 * a write the kernel takes whole (the usual case on a reader that keeps up) leaves
 * its buffer free for the next read. A write that stays queued keeps referring to its
 * buffer, so the next read goes into the other one; if that one may still be queued
 * too (or write() asked us to wait), reading stops until every write has gone out.
 * A buffer is never read into while a queued write refers to it: byte-exact.
 */
export class UserBufferEcho {
  readonly #socket: net.Socket;
  #current: Buffer;
  #other: Buffer | undefined;
  /** Since the write side was last seen empty, reads have gone into both buffers. */
  #swapped = false;
  /** Reading stopped until the write side is empty. */
  #waiting = false;

  constructor(socket: net.Socket, size = ECHO_BUFFER) {
    this.#socket = socket;
    this.#current = Buffer.allocUnsafe(size);
  }

  /** Switch the socket to this reader; false when this Node cannot (see readIntoUserBuffer). */
  start(): boolean {
    return readIntoUserBuffer(this.#socket, this.#current, this.#read, this.#next);
  }

  /** Node's onread callback: echo the bytes just read. */
  readonly #read = (n: number, buffer: Buffer): boolean => {
    const socket = this.#socket;
    // The write's callback is where a wait ends; it is one function per connection, not per write.
    if (!socket.write(buffer.subarray(0, n), this.#written) && socket.writableLength > 0) this.#wait();
    return !this.#waiting;
  };

  /** Node asks, after each read, which buffer the next read goes into. */
  readonly #next = (): Buffer => {
    if (this.#socket.writableLength === 0) {
      this.#swapped = false;
      return this.#current;
    }
    if (!this.#swapped) {
      // The current buffer may be queued; the other one is not (nothing was read into it since the queue was empty).
      this.#swapped = true;
      const other = this.#other ?? Buffer.allocUnsafe(this.#current.length);
      this.#other = this.#current;
      this.#current = other;
      return other;
    }
    this.#wait();
    return this.#current;
  };

  #wait(): void {
    if (this.#waiting) return;
    this.#waiting = true;
    this.#socket.pause();
  }

  /** After each write: once nothing is queued, every buffer is free again. */
  readonly #written = (): void => {
    if (!this.#waiting || this.#socket.writableLength > 0 || this.#socket.destroyed) return;
    this.#waiting = false;
    this.#swapped = false;
    this.#socket.resume();
  };
}

/** The echo service (no options). */
export default function echo({ socket }: ServiceContext): void {
  const onData = (chunk: Buffer) => {
    if (!socket.write(chunk)) socket.pause();
    if (chunk.length >= BULK_READ && !socket.isPaused() && new UserBufferEcho(socket).start()) socket.off('data', onData);
  };
  socket.on('data', onData);
  socket.on('drain', () => socket.resume());
  // The peer's FIN: ours follows every byte queued before it (allowHalfOpen keeps our side open until then).
  socket.once('end', () => socket.end());
  socket.resume();
}
