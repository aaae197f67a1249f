/**
 * The native helper (native/fdutil.c, built by `npm ci`): the descriptor calls
 * Node does not expose. See the C file for why each exists.
 */
import { createRequire } from 'node:module';

/** native/fdutil.c; each call throws an Error with the errno's `code` on failure. */
export interface FdUtil {
  /** dup(2) to a new close-on-exec descriptor. */
  dup(fd: number): number;
  close(fd: number): void;
  /** Non-blocking recv(2) of at most `length` bytes (1..65551), MSG_PEEK if `peek`: null when nothing is queued, an empty Buffer at EOF. */
  recv(fd: number, length: number, peek: boolean): Buffer | null;
  /** Whether the peer has shut down its side (poll POLLRDHUP), without reading. */
  rdhup(fd: number): boolean;
  /**
   * A disarmed readiness watcher on a private duplicate of `fd` (a uv_poll in Node's
   * loop). `callback(status)` runs once per watchArm; status is 0 or a negative libuv error.
   */
  watch(fd: number, callback: (status: number) => void): WatchHandle;
  /** Wake once when at least `lowat` bytes (1..65551) are queued, or at EOF or error (sets SO_RCVLOWAT). */
  watchArm(handle: WatchHandle, lowat: number): void;
  /** Stop, reset SO_RCVLOWAT to 1 and close the duplicate. Idempotent; every watch must end here. */
  watchClose(handle: WatchHandle): void;
  /** Set FD_CLOEXEC on an inherited descriptor. */
  cloexec(fd: number): void;
  /** What a descriptor is: its socket type, whether it listens, its address family. Throws ENOTSOCK. */
  socketInfo(fd: number): { type: 'stream' | 'dgram' | 'other'; listening: boolean; family: 'IPv4' | 'IPv6' | 'unix' | 'other' };
}

/** An opaque watcher made by fdutil.watch. */
export type WatchHandle = { readonly __watch: unique symbol };

const require = createRequire(import.meta.url);
/** The loaded addon. */
export const fdutil: FdUtil = require('../../build/Release/fdutil.node') as FdUtil;
