/**
 * The connections open in one place, as a table of slots with a free list: add() gives an
 * entry a slot, remove(slot) frees it for the next. Why not a Map keyed by id: with
 * connections coming and going, a Map's hash table is rebuilt every few deletions (V8
 * rehashes an OrderedHashMap once its deleted entries fill it), a new table each time that
 * the long-lived Map holds, so it survives the next scavenge and is promoted: garbage for
 * the old generation on every few connections. Slots are reused in place, allocating
 * nothing once the table has grown to the most connections open at once (it keeps that
 * size: one pointer per connection at the peak).
 */
export class Slots<T> {
  readonly #items: Array<T | undefined> = [];
  readonly #free: number[] = [];
  #size = 0;

  /** Entries held now. */
  get size(): number {
    return this.#size;
  }

  /** Hold `item`; returns its slot (for remove). */
  add(item: T): number {
    const slot = this.#free.length > 0 ? this.#free.pop()! : this.#items.length;
    this.#items[slot] = item;
    this.#size++;
    return slot;
  }

  /** Let go of the entry in `slot` (a slot already free is left alone). */
  remove(slot: number): void {
    if (this.#items[slot] === undefined) return;
    this.#items[slot] = undefined;
    this.#free.push(slot);
    this.#size--;
  }

  /** The entries held now, in slot order (not the order they came in). */
  values(): T[] {
    const out: T[] = [];
    for (const item of this.#items) if (item !== undefined) out.push(item);
    return out;
  }
}
