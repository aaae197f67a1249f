/**
 * The native helper (native/fdutil.c, built by `npm ci`): the descriptor calls
 * Node does not expose. See the C file for why each exists.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

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
  /** socketpair(2): a connected AF_UNIX stream pair, both close-on-exec and blocking (the TLS relay, src/tls/relay.ts). */
  socketpair(): [number, number];
  /** Set FD_CLOEXEC on an inherited descriptor. */
  cloexec(fd: number): void;
  /** What a descriptor is: its socket type, whether it listens, its address family. Throws ENOTSOCK. */
  socketInfo(fd: number): { type: 'stream' | 'dgram' | 'other'; listening: boolean; family: 'IPv4' | 'IPv6' | 'unix' | 'other' };
  /** A close-on-exec memfd of `bytes` (1..256 MiB), zero-filled (native/shm.c). */
  shmCreate(bytes: number): number;
  /** An ArrayBuffer over `bytes` of `fd` mapped MAP_SHARED; unmapped when collected. The descriptor may be closed after. */
  shmMap(fd: number, bytes: number): ArrayBuffer;
  /**
   * A close-on-exec UNIX stream socket bound to `path` (`@name`: abstract), given `uid`/`gid` (-1: unchanged)
   * and `mode` (-1: the umask's) before it listens, so nobody connects under looser permissions (native/unix.c).
   * `dev`/`ino`: the socket file's (0 for an abstract name).
   */
  unixListen(path: string, backlog: number, mode: number, uid: number, gid: number): { fd: number; dev: number; ino: number };
  /** What is at a UNIX socket path: nothing, not a socket, a socket nobody listens on, or a live one. */
  unixProbe(path: string): 'absent' | 'other' | 'stale' | 'live';
  /** SO_PEERCRED of a connected UNIX socket, and its own address (`/path`, `@name`, or '' unnamed). */
  unixPeer(fd: number): { pid: number; uid: number; gid: number; path: string };
}

/** An opaque watcher made by fdutil.watch. */
export type WatchHandle = { readonly __watch: unique symbol };

const require = createRequire(import.meta.url);
/**
 * The addon's file, as node-gyp-build picks it from the package root: build/Release when it was compiled here (a
 * clone, or an install with no matching prebuilt), else the N-API prebuilt packed in prebuilds/<platform>-<arch>/.
 */
export const fdutilPath: string = (require('node-gyp-build') as { resolve(dir: string): string }).resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** The loaded addon. */
export const fdutil: FdUtil = require(fdutilPath) as FdUtil;

/**
 * Mark every descriptor above 2 close-on-exec. Node's and tcpkit's own already
 * are; this catches those the process inherited from whoever started it (a shell's
 * or supervisor's pipes), so that no child or exec'd program holds any descriptor
 * but its own 0, 1 and 2. The process itself keeps using them. Returns how many
 * descriptors it marked (fcntl is idempotent).
 *
 * A process-wide change: the library never calls it; `tcpkit serve` does, at start,
 * for its own process. An embedding program that spawns children calls it itself if
 * it wants the same.
 */
export function closeOnExecInherited(): number {
  let n = 0;
  let names: string[];
  try {
    names = fs.readdirSync('/proc/self/fd');
  } catch {
    return 0; // no /proc: nothing to look at
  }
  for (const name of names) {
    const fd = Number(name);
    if (!(fd > 2)) continue;
    try {
      fdutil.cloexec(fd);
      n++;
    } catch {
      // The directory's own descriptor, closed by now.
    }
  }
  return n;
}
