import { BLOB_ENTRY, type BlobLocation, type BlobTypeValue } from "./blob.js";

export interface IndexedBlob extends BlobLocation {
  packId: string;
}

/**
 * The in-memory index of every blob in the repository, built for millions of entries: ids and
 * fields live in typed arrays (no object per blob) and an open-addressing table of int32 slots
 * finds them. Per blob: 32 (id) + 4 (pack) + 4 (offset) + 4 (length) + 4 (raw length) + 1
 * (type/compression) = 49 bytes, plus 4 bytes per table slot (load factor at most 3/4) and spare
 * capacity while growing; `reserve` sizes it exactly when the count is known. See
 * docs/format.md ("In-memory index") and `npm run bench:index` for the measured figure.
 */
export class MasterIndex {
  private ids = new Uint8Array(32 * 1024);
  private pack = new Uint32Array(1024);
  private offset = new Uint32Array(1024);
  private length = new Uint32Array(1024);
  private raw = new Uint32Array(1024);
  private flags = new Uint8Array(1024);
  private slots = new Int32Array(2048);
  private count = 0;
  private readonly packIds: string[] = [];
  private readonly packNumbers = new Map<string, number>();

  get size(): number {
    return this.count;
  }

  get packCount(): number {
    return this.packIds.length;
  }

  packs(): string[] {
    return [...this.packIds];
  }

  hasPack(id: string): boolean {
    return this.packNumbers.has(id);
  }

  private packNumber(id: string): number {
    let n = this.packNumbers.get(id);
    if (n === undefined) {
      n = this.packIds.length;
      this.packIds.push(id);
      this.packNumbers.set(id, n);
    }
    return n;
  }

  /** The entry of the id at `id[at..at+32)`, or -1 - the free slot where it would go. */
  private find(id: Uint8Array, at = 0): number {
    const mask = this.slots.length - 1;
    let s = ((id[at]! | (id[at + 1]! << 8) | (id[at + 2]! << 16) | (id[at + 3]! << 24)) >>> 0) & mask;
    for (;;) {
      const e = this.slots[s]!;
      if (e === 0) return -1 - s;
      if (this.sameId(e - 1, id, at)) return e - 1;
      s = (s + 1) & mask;
    }
  }

  private sameId(entry: number, id: Uint8Array, at: number): boolean {
    const base = entry * 32;
    for (let i = 0; i < 32; i++) if (this.ids[base + i] !== id[at + i]) return false;
    return true;
  }

  has(id: Uint8Array): boolean {
    return this.find(id) >= 0;
  }

  /** Adds a blob location; a blob already indexed keeps its first location. */
  add(loc: BlobLocation, packId: string): void {
    const slot = this.find(loc.id);
    if (slot < 0)
      this.insert(
        slot,
        loc.id,
        0,
        this.packNumber(packId),
        loc.offset,
        loc.length,
        loc.rawLength,
        loc.type | (loc.compression << 1),
      );
  }

  /**
   * Adds `count` blob locations stored in `entries` as pack headers and index files hold them
   * (BLOB_ENTRY bytes each, see blob.ts), without an object per blob; a blob already indexed
   * keeps its first location, as with `add`.
   */
  addEntries(entries: Buffer, count: number, packId: string): void {
    let pack: number | undefined; // numbered at its first new blob, as `add` does
    for (let o = 0; o < count * BLOB_ENTRY; o += BLOB_ENTRY) {
      const slot = this.find(entries, o + 2);
      if (slot >= 0) continue;
      const offset = entries.readUInt32LE(o + 34);
      const length = entries.readUInt32LE(o + 38);
      const raw = entries.readUInt32LE(o + 42);
      pack ??= this.packNumber(packId);
      this.insert(slot, entries, o + 2, pack, offset, length, raw, entries[o]! | (entries[o + 1]! << 1));
    }
  }

  /** Appends the blob whose id is `id[at..at+32)`; `slot`: what `find` said (not indexed). */
  private insert(
    slot: number,
    id: Uint8Array,
    at: number,
    pack: number,
    offset: number,
    length: number,
    raw: number,
    flags: number,
  ): void {
    if (this.count + 1 > this.pack.length) this.growEntries();
    if ((this.count + 1) * 4 > this.slots.length * 3) {
      this.growSlots();
      slot = this.find(id, at);
    }
    const e = this.count++;
    for (let i = 0; i < 32; i++) this.ids[e * 32 + i] = id[at + i]!;
    this.pack[e] = pack;
    this.offset[e] = offset;
    this.length[e] = length;
    this.raw[e] = raw;
    this.flags[e] = flags;
    this.slots[-1 - slot] = e + 1;
  }

  /** Moves an indexed blob to another location (adds it when it is not indexed). */
  relocate(loc: BlobLocation, packId: string): void {
    const e = this.find(loc.id);
    if (e < 0) {
      this.add(loc, packId);
      return;
    }
    this.pack[e] = this.packNumber(packId);
    this.offset[e] = loc.offset;
    this.length[e] = loc.length;
    this.raw[e] = loc.rawLength;
    this.flags[e] = loc.type | (loc.compression << 1);
  }

  get(id: Uint8Array): IndexedBlob | undefined {
    const e = this.find(id);
    return e < 0 ? undefined : this.entry(e);
  }

  private entry(e: number): IndexedBlob {
    const f = this.flags[e]!;
    return {
      type: (f & 1) as BlobTypeValue,
      compression: f >> 1,
      id: Buffer.from(this.ids.subarray(e * 32, e * 32 + 32)),
      offset: this.offset[e]!,
      length: this.length[e]!,
      rawLength: this.raw[e]!,
      packId: this.packIds[this.pack[e]!]!,
    };
  }

  *entries(): IterableIterator<IndexedBlob> {
    for (let e = 0; e < this.count; e++) yield this.entry(e);
  }

  /** Makes room for `n` more blobs at once (avoids growth slack when loading known counts). */
  reserve(n: number): void {
    const want = this.count + n;
    if (want > this.pack.length) this.growEntries(want);
    while (want * 4 > this.slots.length * 3) this.growSlots();
  }

  private growEntries(min = 0): void {
    const cap = Math.max(min, Math.ceil(this.pack.length * 1.5));
    const grow = <T extends Uint8Array | Uint32Array>(a: T, n: number): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a);
      return b;
    };
    this.ids = grow(this.ids, cap * 32);
    this.pack = grow(this.pack, cap);
    this.offset = grow(this.offset, cap);
    this.length = grow(this.length, cap);
    this.raw = grow(this.raw, cap);
    this.flags = grow(this.flags, cap);
  }

  private growSlots(): void {
    this.slots = new Int32Array(this.slots.length * 2);
    const mask = this.slots.length - 1;
    for (let e = 0; e < this.count; e++) {
      const b = e * 32;
      let s =
        ((this.ids[b]! | (this.ids[b + 1]! << 8) | (this.ids[b + 2]! << 16) | (this.ids[b + 3]! << 24)) >>>
          0) &
        mask;
      while (this.slots[s] !== 0) s = (s + 1) & mask;
      this.slots[s] = e + 1;
    }
  }
}
