/**
 * A set of 32-byte ids (blob and tree ids) in typed arrays: 32 bytes an id plus 4 or 8 bytes
 * of table, against about 100 for a hex string in a Set. `check` remembers every blob of
 * every snapshot it has seen: a million of them took ~100 MiB as strings.
 */
export class IdSet {
  private ids = new Uint8Array(32 * 1024);
  private slots = new Int32Array(2048);
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds an id; false when it was there already. */
  add(id: Uint8Array): boolean {
    if (id.length !== 32) throw new RangeError(`an id is 32 bytes, not ${id.length}`);
    const s = this.find(id);
    if (s < 0) return false;
    if ((this.count + 1) * 32 > this.ids.length) {
      const more = new Uint8Array(this.ids.length * 2);
      more.set(this.ids);
      this.ids = more;
    }
    const e = this.count++;
    this.ids.set(id, e * 32);
    this.slots[s] = e + 1;
    if (this.count * 4 > this.slots.length * 3) this.grow();
    return true;
  }

  has(id: Uint8Array): boolean {
    return id.length === 32 && this.find(id) < 0;
  }

  /** The free slot for `id`, or -1 - the entry's slot when it is present. */
  private find(id: Uint8Array): number {
    const mask = this.slots.length - 1;
    let s = ((id[0]! | (id[1]! << 8) | (id[2]! << 16) | (id[3]! << 24)) >>> 0) & mask;
    for (;;) {
      const e = this.slots[s]!;
      if (e === 0) return s;
      if (this.same(e - 1, id)) return -1 - s;
      s = (s + 1) & mask;
    }
  }

  private same(entry: number, id: Uint8Array): boolean {
    const base = entry * 32;
    for (let i = 0; i < 32; i++) if (this.ids[base + i] !== id[i]) return false;
    return true;
  }

  private grow(): void {
    this.slots = new Int32Array(this.slots.length * 2);
    const mask = this.slots.length - 1;
    const ids = this.ids;
    for (let e = 0; e < this.count; e++) {
      const b = e * 32;
      let s = ((ids[b]! | (ids[b + 1]! << 8) | (ids[b + 2]! << 16) | (ids[b + 3]! << 24)) >>> 0) & mask;
      while (this.slots[s] !== 0) s = (s + 1) & mask;
      this.slots[s] = e + 1;
    }
  }
}
