/**
 * Memory for the pack ranges a restore has in flight: one SharedArrayBuffer, carved into
 * regions (lowest free gap first) and handed back when a range is written. Workers read a
 * region where it is, without a transfer; nothing is allocated per read, so the bytes in
 * flight are the arena, not the reads made so far that the garbage collectors of two or three
 * isolates have not freed yet (a fresh buffer per 4 MiB read kept ~60 MiB of them on the mail
 * profile).
 */
export class RangeArena {
  readonly memory: SharedArrayBuffer;
  /** Regions in use, by start. */
  private used: { start: number; end: number }[] = [];

  constructor(size: number) {
    this.memory = new SharedArrayBuffer(size);
  }

  get size(): number {
    return this.memory.byteLength;
  }

  /** A region of `length` bytes, or undefined while none is free (then one in use must be
   * released first); `length` must not exceed the arena's size. */
  take(length: number): Buffer | undefined {
    let at = 0;
    let i = 0;
    for (; i < this.used.length; i++) {
      const u = this.used[i]!;
      if (u.start - at >= length) break;
      at = u.end;
    }
    if (at + length > this.size) return undefined;
    this.used.splice(i, 0, { start: at, end: at + length });
    return Buffer.from(this.memory, at, length);
  }

  /** Gives back a region from `take`. */
  release(region: Buffer): void {
    const i = this.used.findIndex((u) => u.start === region.byteOffset);
    if (i >= 0) this.used.splice(i, 1);
  }

  get empty(): boolean {
    return this.used.length === 0;
  }
}

/** One arena kept between the batches of a restore (and restores): its pages are already
 * touched, and a new one per batch would be garbage to two isolates. Concurrent restores take
 * arenas of their own. */
let spare: RangeArena | undefined;

export function takeArena(size: number): RangeArena {
  const a = spare;
  spare = undefined;
  return a && a.size >= size ? a : new RangeArena(size);
}

export function returnArena(a: RangeArena): void {
  if (a.empty && (!spare || spare.size < a.size)) spare = a;
}
