/**
 * The service's table of sources: an open-addressed table of source address →
 * connections open now, plus a token bucket for --rate, and the counts of refusals,
 * that the server and every pool worker of the service keep in the same memory, so
 * that admission decides with every connection of the service counted and no message
 * goes per connection. Every take and release runs under one spin lock in the header
 * (a handful of instructions: a hash, at most PROBE_LIMIT probes, two stores).
 *
 * The table works on any ArrayBuffer: this process's memory for models that serve
 * here; a segment both sides map (a memfd, native/shm.c, made and mapped through
 * ../net/shared-counts.ts by the pool and its workers) once share() moves it there.
 *
 * Layout (32-bit words): a 16-word header (lock, capacity, refused
 * per-source, refused rate, sources with a connection open, next lock token), then
 * `capacity` entries of 12 words: used, the address as 4 words (IPv4 as its
 * IPv4-mapped IPv6 form), open connections, 2 words unused, then two float64 (the
 * bucket's tokens and when it was last filled, in ms). An entry is never emptied: one
 * with nothing open and a full bucket holds nothing a new entry would not, and is
 * reused for another address found at the same hash.
 */
import { ipBytes } from './access.js';

/** Why a place was not given: the per-source limit, or the rate. */
export type PlaceRefusal = 'per-source' | 'rate';

/** Where a segment is, for another process or thread to map it. */
export interface SegmentRef {
  fd: number;
  /** Entries (SourceTable) or slots (WorkerLedger). */
  size: number;
  /** WorkerLedger: places each slot can record. */
  cells?: number;
}

/** Memory two processes can map: made and mapped by the native helper (../net/shared-counts.ts sharedMemory). */
export interface SharedMemory {
  /** A new segment of `bytes`, mapped here. */
  create(bytes: number): { fd: number; buffer: ArrayBuffer };
  /** The segment of `fd`, mapped here. */
  map(fd: number, bytes: number): ArrayBuffer;
  close(fd: number): void;
}

/** Words of header in each segment. */
const HEADER = 16;
const H_LOCK = 0;
const H_CAPACITY = 1;
const H_REFUSED_PER_SOURCE = 2;
const H_REFUSED_RATE = 3;
const H_SOURCES = 4;
const H_NEXT_TOKEN = 5;
/** Words per table entry. */
const ENTRY = 12;
const E_USED = 0;
const E_KEY = 1;
const E_OPEN = 5;
/** Float64 index of an entry's tokens is (entry word + E_TOKENS) / 2; its time follows. */
const E_TOKENS = 8;
/** Probes for an address before the table counts as full for it (a flood of addresses: refused as per-source). */
export const PROBE_LIMIT = 64;
/**
 * A lock held longer than this is taken over: its holder died inside it (SIGKILL, a terminated
 * thread). Far above any live holder's time in it (a few instructions, even descheduled).
 */
const LOCK_STALE_MS = 1000;
/** Entries in a service's table: enough for every source of a busy service within a second (bounded memory: 768 KiB). */
export const TABLE_CAPACITY = 16384;

/** Spin until the segment's lock is ours. One holder keeping it past LOCK_STALE_MS loses it. */
function lock(words: Int32Array, token: number): void {
  if (Atomics.compareExchange(words, H_LOCK, 0, token) === 0) return;
  let holder = 0;
  let since = 0;
  for (let spins = 1; ; spins++) {
    const now = Atomics.load(words, H_LOCK);
    if (now === 0) {
      if (Atomics.compareExchange(words, H_LOCK, 0, token) === 0) return;
      continue;
    }
    if (now !== holder) {
      // Another holder: the lock moves, nobody is stuck in it.
      holder = now;
      since = 0;
    }
    if ((spins & 1023) === 0) {
      const t = Date.now();
      if (since === 0) since = t;
      else if (t - since > LOCK_STALE_MS && Atomics.compareExchange(words, H_LOCK, holder, token) === holder) return;
    }
  }
}

function unlock(words: Int32Array): void {
  Atomics.store(words, H_LOCK, 0);
}

/**
 * An address as 4 words: IPv4 (and `::ffff:a.b.c.d`) as the IPv4-mapped form, so both count as one source;
 * IPv6 as access.ts's ipBytes reads it (a zone is not part of the source).
 */
export function sourceKey(address: string): [number, number, number, number] {
  // A UNIX peer (`uid:1000`, admission.ts sourceOf): a key no IPv4 peer has and no real IPv6 one would.
  if (address.startsWith('uid:')) return [-1, -1, -2, Number(address.slice(4)) | 0];
  const v4 = address.startsWith('::ffff:') || address.startsWith('::FFFF:') ? address.slice(7) : address;
  // The usual peer, without ipBytes's copies (or a split's): its dotted quad read in place.
  const quad = ipv4Word(v4);
  if (quad !== undefined) return [0, 0, 0xffff, quad];
  const bytes = ipBytes(address) ?? new Uint8Array(16);
  const w = (i: number) => ((bytes[4 * i]! << 24) | (bytes[4 * i + 1]! << 16) | (bytes[4 * i + 2]! << 8) | bytes[4 * i + 3]!) | 0;
  return [w(0), w(1), w(2), w(3)];
}

/**
 * A dotted-quad IPv4 address (as accept and getpeername give it: four decimal numbers 0-255,
 * no leading zeros) as one 32-bit word; undefined for anything else, which sourceKey then
 * reads as IPv6 (the same addresses net.isIPv4 accepts are read here).
 */
function ipv4Word(text: string): number | undefined {
  let word = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2e) {
      if (digits === 0 || dots === 3) return undefined;
      word = (word << 8) | part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && part === 0) return undefined; // a leading zero: not how an address is printed
      part = part * 10 + (c - 0x30);
      if (++digits > 3 || part > 255) return undefined;
    } else return undefined;
  }
  if (dots !== 3 || digits === 0) return undefined;
  return ((word << 8) | part) | 0;
}

/** See the file comment. */
export class SourceTable {
  #words: Int32Array;
  #floats: Float64Array;
  readonly #capacity: number;
  readonly #token: number;
  /** The segment, once shared, while this process may still pass it on (the creator's). */
  #shared: { fd: number; memory: SharedMemory } | undefined;
  /** Whether this is the creator's table (which share() may move into a segment). */
  readonly #own: boolean;

  private constructor(buffer: ArrayBuffer, capacity: number, own: boolean) {
    this.#words = new Int32Array(buffer);
    this.#floats = new Float64Array(buffer);
    this.#capacity = capacity;
    this.#own = own;
    // A token per mapping, never 0 (0 is the free lock).
    this.#token = Atomics.add(this.#words, H_NEXT_TOKEN, 1) + 1;
  }

  /** The bytes a table of `capacity` entries takes. */
  static bytes(capacity: number): number {
    return (HEADER + capacity * ENTRY) * 4;
  }

  /**
   * A new table of `capacity` entries (a power of two), in this process's memory until
   * share() moves it into a segment (models that serve in this process never need one).
   */
  static create(capacity = TABLE_CAPACITY): SourceTable {
    if (!Number.isInteger(Math.log2(capacity))) throw new RangeError(`SourceTable capacity: expected a power of two, got ${capacity}`);
    const t = new SourceTable(new ArrayBuffer(SourceTable.bytes(capacity)), capacity, true);
    Atomics.store(t.#words, H_CAPACITY, capacity);
    return t;
  }

  /**
   * Where the table is for a worker to attach: moved into a shared segment on first
   * call (what it counted so far comes along), which stays until close().
   */
  share(memory: SharedMemory): SegmentRef {
    if (!this.#own) throw new Error('SourceTable.share: only the process that created the table can share it');
    if (this.#shared === undefined) {
      const { fd, buffer } = memory.create(SourceTable.bytes(this.#capacity));
      const words = new Int32Array(buffer);
      words.set(this.#words);
      Atomics.store(words, H_LOCK, 0);
      this.#words = words;
      this.#floats = new Float64Array(buffer);
      this.#shared = { fd, memory };
    }
    return { fd: this.#shared.fd, size: this.#capacity };
  }

  /** The table another process or thread shared (`ref` from its share()), mapped from `memory`. */
  static attach(ref: SegmentRef, memory: Pick<SharedMemory, 'map'>): SourceTable {
    const buffer = memory.map(ref.fd, SourceTable.bytes(ref.size));
    const t = new SourceTable(buffer, ref.size, false);
    if (Atomics.load(t.#words, H_CAPACITY) !== ref.size) throw new RangeError(`SourceTable.attach: the segment holds ${Atomics.load(t.#words, H_CAPACITY)} entries, expected ${ref.size}`);
    return t;
  }

  /**
   * Take a place for a connection from `address`: refused when `perSource` (0: no
   * limit) places are taken, or its bucket of `rate` a second (0: no limit) is empty.
   * Returns the place (give it back with release()) and the source's count with it.
   */
  take(address: string, perSource: number, rate: number, now: number): { ok: true; count: number; place: number } | { ok: false; reason: PlaceRefusal } {
    const key = sourceKey(address);
    const w = this.#words;
    // Only numbers under the lock: the answer is allocated after it is released (a GC there would hold every taker).
    let e = -1;
    let open = 0;
    let refused: PlaceRefusal | undefined;
    lock(w, this.#token);
    try {
      e = this.#find(key, rate, now);
      if (e >= 0) open = w[e + E_OPEN]!;
      if (e < 0 || (perSource > 0 && open >= perSource)) {
        w[H_REFUSED_PER_SOURCE]!++;
        refused = 'per-source';
      } else if (rate > 0) {
        const f = (e + E_TOKENS) / 2;
        const tokens = Math.min(rate, this.#refilled(f, rate, now));
        this.#floats[f + 1] = now;
        if (tokens < 1) {
          this.#floats[f] = tokens;
          w[H_REFUSED_RATE]!++;
          refused = 'rate';
        } else this.#floats[f] = tokens - 1;
      }
      if (refused === undefined) {
        w[e + E_OPEN] = open + 1;
        if (open === 0) w[H_SOURCES]!++;
      }
    } finally {
      unlock(w);
    }
    return refused === undefined ? { ok: true, count: open + 1, place: (e - HEADER) / ENTRY } : { ok: false, reason: refused };
  }

  /** Give back a place from take(). */
  release(place: number): void {
    if (!(place >= 0 && place < this.#capacity)) return;
    const w = this.#words;
    const e = HEADER + place * ENTRY;
    lock(w, this.#token);
    const open = w[e + E_OPEN]!;
    if (open > 0) {
      w[e + E_OPEN] = open - 1;
      if (open === 1) w[H_SOURCES] = Math.max(0, w[H_SOURCES]! - 1);
    }
    unlock(w);
  }

  /** Connections open now from `address`. */
  count(address: string): number {
    const key = sourceKey(address);
    const w = this.#words;
    lock(w, this.#token);
    try {
      for (let i = 0, e = this.#slot(key); i < PROBE_LIMIT; i++, e = this.#next(e)) {
        if (w[e + E_USED] === 0) return 0;
        if (this.#is(e, key)) return w[e + E_OPEN]!;
      }
      return 0;
    } finally {
      unlock(w);
    }
  }

  /** Refusals so far, by every process, and sources with a connection open now. */
  stats(): { refused: Record<PlaceRefusal, number>; sources: number } {
    const w = this.#words;
    return { refused: { 'per-source': Atomics.load(w, H_REFUSED_PER_SOURCE), rate: Atomics.load(w, H_REFUSED_RATE) }, sources: Atomics.load(w, H_SOURCES) };
  }

  /** Close the creator's descriptor once no worker will attach again (the mapping stays; share() makes a new one). Idempotent. */
  close(): void {
    if (this.#shared === undefined) return;
    this.#shared.memory.close(this.#shared.fd);
    this.#shared = undefined;
  }

  #slot(key: readonly number[]): number {
    // FNV-1a over the 4 words, as integers.
    let h = 0x811c9dc5;
    for (const k of key) h = Math.imul(h ^ k, 0x01000193);
    h ^= h >>> 15;
    return HEADER + ((h >>> 0) & (this.#capacity - 1)) * ENTRY;
  }

  #next(e: number): number {
    const n = e + ENTRY;
    return n >= HEADER + this.#capacity * ENTRY ? HEADER : n;
  }

  #is(e: number, key: readonly number[]): boolean {
    const w = this.#words;
    return w[e + E_KEY] === key[0] && w[e + E_KEY + 1] === key[1] && w[e + E_KEY + 2] === key[2] && w[e + E_KEY + 3] === key[3];
  }

  /** The tokens of the bucket at float64 index `f` by `now`, `rate` a second since it was last filled (uncapped). */
  #refilled(f: number, rate: number, now: number): number {
    return this.#floats[f]! + ((now - this.#floats[f + 1]!) / 1000) * rate;
  }

  /** The entry of `key` (under the lock), made or reused if absent; -1 when none is free within PROBE_LIMIT. */
  #find(key: readonly number[], rate: number, now: number): number {
    const w = this.#words;
    let reusable = -1;
    let e = this.#slot(key);
    for (let i = 0; i < PROBE_LIMIT; i++, e = this.#next(e)) {
      if (w[e + E_USED] === 0) {
        if (reusable < 0) reusable = e;
        break;
      }
      if (this.#is(e, key)) return e;
      if (reusable < 0 && w[e + E_OPEN] === 0 && (rate === 0 || this.#refilled((e + E_TOKENS) / 2, rate, now) >= rate)) reusable = e;
    }
    if (reusable < 0) return -1;
    w[reusable + E_USED] = 1;
    for (let k = 0; k < 4; k++) w[reusable + E_KEY + k] = key[k]!;
    w[reusable + E_OPEN] = 0;
    const f = (reusable + E_TOKENS) / 2;
    this.#floats[f] = rate;
    this.#floats[f + 1] = now;
    return reusable;
  }
}
