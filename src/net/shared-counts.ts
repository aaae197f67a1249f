/**
 * Memory shared by the server and its pool workers (native/shm.c maps it; see there
 * why it must be native), and what the pool keeps in it:
 *
 *   sharedMemory  segments (a memfd) the server makes and a worker process or thread
 *                 maps: the service's table of sources (../admission/source-table.ts)
 *                 is moved into one when a pool starts, and the ledger below lives in one.
 *   WorkerLedger  one per pool: a slot per live worker holding what the server must
 *                 know should the worker die without reporting: how many connections
 *                 it accepted (counted before it serves one), and the table places it
 *                 holds now (given back by the server for a dead worker). A worker
 *                 records a place just after taking it and clears it just after giving
 *                 it back: killed between the two, it leaves one place counted once too
 *                 many or too few, never more.
 */
import { fdutil } from './fdutil.js';
import type { SegmentRef, SharedMemory } from '../admission/source-table.js';

/** Segments by the native helper: memfd_create + mmap MAP_SHARED. */
export const sharedMemory: SharedMemory = {
  create(bytes) {
    const fd = fdutil.shmCreate(bytes);
    try {
      return { fd, buffer: fdutil.shmMap(fd, bytes) };
    } catch (err) {
      fdutil.close(fd);
      throw err;
    }
  },
  map: (fd, bytes) => fdutil.shmMap(fd, bytes),
  close: (fd) => fdutil.close(fd),
};

/** Words per ledger slot before its cells: in use, connections accepted. */
const SLOT_HEAD = 2;

/** See the file comment. One slot per live worker; the pool assigns them. */
export class WorkerLedger {
  readonly #words: Int32Array;
  readonly #slots: number;
  readonly #cells: number;
  #fd: number | undefined;

  private constructor(buffer: ArrayBuffer, slots: number, cells: number, fd: number | undefined) {
    this.#words = new Int32Array(buffer);
    this.#slots = slots;
    this.#cells = cells;
    this.#fd = fd;
  }

  /** The first word of `slot`. */
  #base(slot: number): number {
    return slot * (SLOT_HEAD + this.#cells);
  }

  static #bytes(slots: number, cells: number): number {
    return slots * (SLOT_HEAD + cells) * 4;
  }

  /** A ledger of `slots` slots, each recording up to `cells` places held. */
  static create(slots: number, cells: number): WorkerLedger {
    const { fd, buffer } = sharedMemory.create(WorkerLedger.#bytes(slots, cells));
    return new WorkerLedger(buffer, slots, cells, fd);
  }

  static attach(ref: SegmentRef): WorkerLedger {
    const cells = ref.cells ?? 0;
    return new WorkerLedger(sharedMemory.map(ref.fd, WorkerLedger.#bytes(ref.size, cells)), ref.size, cells, undefined);
  }

  get ref(): SegmentRef | undefined {
    return this.#fd === undefined ? undefined : { fd: this.#fd, size: this.#slots, cells: this.#cells };
  }

  /** Server: a free slot, cleared and marked in use; undefined when all are taken. */
  claim(): number | undefined {
    const per = SLOT_HEAD + this.#cells;
    for (let s = 0; s < this.#slots; s++) {
      const base = s * per;
      if (this.#words[base] !== 0) continue;
      this.#words.fill(0, base, base + per);
      Atomics.store(this.#words, base, 1);
      return s;
    }
    return undefined;
  }

  /** Server, once the slot's worker is gone: what it accepted, the places it still held; the slot is free again. */
  settle(slot: number): { accepted: number; places: number[] } {
    const base = this.#base(slot);
    const places: number[] = [];
    for (let c = 0; c < this.#cells; c++) {
      const v = Atomics.load(this.#words, base + SLOT_HEAD + c);
      if (v !== 0) places.push(v - 1);
    }
    const accepted = Atomics.load(this.#words, base + 1);
    Atomics.store(this.#words, base, 0);
    return { accepted, places };
  }

  /** Worker: count a connection accepted, before it is served. */
  accepted(slot: number): void {
    Atomics.add(this.#words, this.#base(slot) + 1, 1);
  }

  /** Worker: record a place held in `cell` (0..cells-1; the worker keeps which are free). */
  hold(slot: number, cell: number, place: number): void {
    if (cell < this.#cells) Atomics.store(this.#words, this.#base(slot) + SLOT_HEAD + cell, place + 1);
  }

  /** Worker: the place in `cell` was given back. */
  unhold(slot: number, cell: number): void {
    if (cell < this.#cells) Atomics.store(this.#words, this.#base(slot) + SLOT_HEAD + cell, 0);
  }

  get cells(): number {
    return this.#cells;
  }

  close(): void {
    if (this.#fd === undefined) return;
    fdutil.close(this.#fd);
    this.#fd = undefined;
  }
}
