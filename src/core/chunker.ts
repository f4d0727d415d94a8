import { createHmac } from "node:crypto";
import { release } from "./buffers.js";

/**
 * FastCDC content-defined chunking with normalised chunking (level 2) and a 32-bit gear hash.
 *
 * The gear table is derived from a repository secret (`gearTable`), so chunk boundaries — and
 * therefore chunk sizes seen by whoever holds the storage — do not reveal file contents.
 * Cut-point skipping: nothing before `min` bytes is hashed, which halves the work on average.
 */
export interface ChunkerParams {
  min: number;
  avg: number;
  max: number;
}

export const DEFAULT_CHUNKER_PARAMS: ChunkerParams = {
  min: 512 * 1024,
  avg: 1024 * 1024,
  max: 8 * 1024 * 1024,
};

/** 256 32-bit words: word i = first 4 bytes (big-endian) of HMAC-SHA-256(seed, "lifeboat gear" || i). */
export function gearTable(seed: Buffer): Uint32Array {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    const h = createHmac("sha256", seed)
      .update("lifeboat gear")
      .update(Buffer.from([i]))
      .digest();
    table[i] = h.readUInt32BE(0);
  }
  return table;
}

/** Spreads `bits` one-bits evenly over the top 32 bits, the usual FastCDC mask shape. */
function spreadMask(bits: number): number {
  // Choose `bits` positions evenly between bit 31 and bit 8, so the mask tests high bits that
  // depend on the last 32 bytes of input (a 32-bit gear hash shifts left once per byte).
  let mask = 0;
  const span = 24;
  for (let i = 0; i < bits; i++) {
    const pos = 31 - Math.floor((i * span) / bits);
    mask |= 1 << pos;
  }
  return mask >>> 0;
}

export interface ChunkerMasks {
  maskS: number;
  maskL: number;
}

export function chunkerMasks(params: ChunkerParams): ChunkerMasks {
  const bits = Math.round(Math.log2(params.avg));
  return { maskS: spreadMask(bits + 2), maskL: spreadMask(bits - 2) };
}

/** Bytes hashed one by one between checks for a run of one byte value (see findCut). */
const RUN_CHECK = 4096;

/** Whether `buf[from, to)` holds one byte value throughout (memcmp of the range against itself
 * shifted by one byte: native speed, and it stops at the first difference). */
function constantRange(buf: Buffer, from: number, to: number): boolean {
  return buf.compare(buf, from + 1, to, from, to - 1) === 0;
}

/**
 * Finds the length of the first chunk in `buf[start, end)`. `end - start` may be shorter than
 * `max` only at the end of the stream (`eof`); otherwise the caller provides at least `max`
 * bytes so the answer never depends on how the stream was split into reads.
 *
 * Runs of one byte value (zeroes of a preallocated or sparse file) cost a memcmp, not a hash
 * step per byte, with the same answer: after 32 equal bytes `c` the gear hash is the constant
 * `-gear[c] mod 2^32` (`h = 2h + gear[c]` has that fixed point, and every older byte has been
 * shifted out of the 32 bits), so within the run a cut happens at its first byte or not at all
 * for as long as the mask stays the same.
 */
export function findCut(
  buf: Uint8Array,
  start: number,
  end: number,
  params: ChunkerParams,
  gear: Uint32Array,
  masks: ChunkerMasks,
): number {
  const n = end - start;
  if (n <= params.min) return n;
  const limit = Math.min(n, params.max);
  const normal = Math.min(limit, params.avg);
  // Signed 32-bit arithmetic (`| 0`) keeps every value a small integer for V8; the masks test
  // the same bits as their unsigned forms.
  const maskS = masks.maskS | 0;
  const maskL = masks.maskL | 0;
  const g = new Int32Array(gear.buffer, gear.byteOffset, 256);
  const bytes = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let h = 0;
  let i = params.min;
  while (i < limit) {
    const mask = i < normal ? maskS : maskL;
    const stop = i < normal ? normal : limit;
    // A run: the 32 bytes hashed last and the next RUN_CHECK all equal (checked first on the
    // two ends, so that varied data pays two comparisons per RUN_CHECK bytes).
    const p = start + i;
    const ahead = Math.min(stop - i, RUN_CHECK);
    if (
      i - params.min >= 32 &&
      bytes[p] === bytes[p - 1] &&
      bytes[p + ahead - 1] === bytes[p - 1] &&
      constantRange(bytes, p - 32, p + ahead)
    ) {
      // Here h is the fixed point, and it stays so through the run.
      if ((h & mask) === 0) return i + 1;
      let to = i + ahead;
      for (let step = RUN_CHECK; to < stop; ) {
        const next = Math.min(stop, to + step);
        if (constantRange(bytes, start + to - 1, start + next)) {
          to = next;
          step *= 2;
        } else if (step > RUN_CHECK) step = RUN_CHECK;
        else break;
      }
      i = to;
      continue;
    }
    const blockEnd = Math.min(stop, i + RUN_CHECK);
    for (; i < blockEnd; i++) {
      h = ((h << 1) + g[bytes[start + i]!]!) | 0;
      if ((h & mask) === 0) return i + 1;
    }
  }
  return limit;
}

/** Zeroes that chunks of sparse regions are views of: allocated zero-filled and never written,
 * so their pages are the kernel's one zero page until something writes (nothing may). */
let zeroes = Buffer.alloc(0);
function sharedZeroes(n: number): Buffer {
  if (zeroes.length < n) zeroes = Buffer.alloc(Math.max(n, 1024 * 1024));
  return zeroes.subarray(0, n);
}

/** Whether `b` is a view of the shared zero buffer (a chunk of zeroes from `pushZeroes`). */
export function isSharedZeroes(b: Uint8Array): boolean {
  return b.buffer === zeroes.buffer;
}

/** Whether `b` is all one byte value: that value, or -1 (a memcmp, stopped by the first
 * difference). */
export function constantByte(b: Uint8Array): number {
  if (b.length === 0) return -1;
  if (isSharedZeroes(b)) return 0;
  const c = b[0]!;
  if (b[b.length - 1] !== c) return -1;
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return b.length === 1 || constantRange(buf, 0, b.length) ? c : -1;
}

/**
 * Streaming chunker: feed it the byte stream of one file in pieces of any size, get back whole
 * chunks (each a fresh Buffer the caller owns, or views with pushEach). Input is copied once into an arena of twice the
 * maximum chunk size, so memory stays at 2 x max whatever the read size.
 */
export class Chunker {
  private readonly params: ChunkerParams;
  private readonly gear: Uint32Array;
  private readonly masks: ChunkerMasks;
  private arena: Buffer;
  private start = 0;
  private end = 0;
  /** The length of a chunk that starts with at least `max` zeroes (see pushZeroes). */
  private zeroCut: number | undefined;

  constructor(params: ChunkerParams, gear: Uint32Array) {
    this.params = params;
    this.gear = gear;
    this.masks = chunkerMasks(params);
    this.arena = Buffer.allocUnsafe(0);
  }

  /** Adds data; returns the chunks that are now complete. */
  push(data: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    this.pushEach(data, (c) => out.push(Buffer.from(c)));
    return out;
  }

  /** Ends the stream; returns the remaining chunks. */
  finish(): Buffer[] {
    const out: Buffer[] = [];
    this.finishEach((c) => out.push(Buffer.from(c)));
    return out;
  }

  /**
   * Like `push`, but hands each complete chunk to `fn` as a view into the arena, valid only
   * during the call: for callers that hash and compress a chunk and keep only the result, so a
   * copy is made only when they need one.
   */
  pushEach(data: Uint8Array, fn: (chunk: Buffer) => void): void {
    const max = this.params.max;
    let off = 0;
    while (off < data.length) {
      if (this.end === this.arena.length) this.makeRoom(data.length - off);
      const n = Math.min(data.length - off, this.arena.length - this.end);
      this.arena.set(data.subarray(off, off + n), this.end);
      this.end += n;
      off += n;
      // Cut only with at least `max` bytes buffered, so boundaries never depend on read sizes.
      while (this.end - this.start >= max) fn(this.cut());
    }
  }

  /**
   * Like `pushEach` for `n` zero bytes (a hole of a sparse file, blocks read as all zeroes), with
   * the same chunks: a chunk that lies wholly within the zeroes is handed over as a view of a
   * shared zero buffer (see `isSharedZeroes`), without copying or scanning a byte; only the
   * zeroes that share a chunk with other data go through the arena.
   */
  pushZeroes(n: number, fn: (chunk: Buffer) => void): void {
    const max = this.params.max;
    while (n > 0) {
      const pending = this.end - this.start;
      if (pending === 0 && n >= max) {
        // A chunk that starts here sees at least `max` zeroes: its length is always the same.
        this.zeroCut ??= findCut(sharedZeroes(max), 0, max, this.params, this.gear, this.masks);
        fn(sharedZeroes(this.zeroCut));
        n -= this.zeroCut;
        continue;
      }
      // Zeroes go in until the pending data is cut (`pending` < max here, so some do); once a
      // chunk has taken all of that data, whatever is left pending is zeroes again.
      const take = Math.min(n, max - pending);
      this.pushEach(sharedZeroes(take), fn);
      n -= take;
      const cut = pending + take - (this.end - this.start);
      if (cut > 0 && cut >= pending && this.end > this.start) {
        n += this.end - this.start;
        this.end = this.start;
      }
    }
  }

  /** Frees the arena now (a chunker that read a large file holds up to 2 x max): for callers
   * done with this chunker whose thread collects garbage rarely (workers). */
  dispose(): void {
    release(this.arena);
    this.arena = Buffer.allocUnsafe(0);
    this.start = 0;
    this.end = 0;
  }

  /** Like `finish`, with views (see `pushEach`). */
  finishEach(fn: (chunk: Buffer) => void): void {
    while (this.end > this.start) fn(this.cut());
    this.start = 0;
    this.end = 0;
  }

  private cut(): Buffer {
    const len = findCut(this.arena, this.start, this.end, this.params, this.gear, this.masks);
    const chunk = this.arena.subarray(this.start, this.start + len);
    this.start += len;
    return chunk;
  }

  /** Compacts, or grows the arena (small files never pay for a 2 x max buffer). */
  private makeRoom(wanted: number): void {
    const live = this.end - this.start;
    const cap = 2 * this.params.max;
    if (this.arena.length < cap && live + wanted > this.arena.length - this.start) {
      const size = Math.min(cap, Math.max(64 * 1024, 2 * this.arena.length, live + wanted));
      const next = Buffer.allocUnsafe(size);
      this.arena.copy(next, 0, this.start, this.end);
      release(this.arena); // no view of it outlives a pushEach call: freed now, not at some GC
      this.arena = next;
    } else {
      this.arena.copy(this.arena, 0, this.start, this.end);
    }
    this.end = live;
    this.start = 0;
  }
}

/**
 * Fixed-size pieces aligned to the stream's start, with the same push/finish interface as
 * Chunker: for files changed in place page by page (SQLite databases), where a content-defined
 * chunk of about 1 MiB would be stored again for every touched page. Boundaries depend on the
 * offset alone, so they reveal nothing about the content.
 */
export class FixedChunker {
  private pending: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly size: number) {}

  push(data: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    let off = 0;
    while (off < data.length) {
      const n = Math.min(this.size - this.buffered, data.length - off);
      this.pending.push(Buffer.from(data.subarray(off, off + n)));
      this.buffered += n;
      off += n;
      if (this.buffered === this.size) out.push(this.take());
    }
    return out;
  }

  finish(): Buffer[] {
    return this.buffered > 0 ? [this.take()] : [];
  }

  private take(): Buffer {
    const piece = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.buffered);
    this.pending = [];
    this.buffered = 0;
    return piece;
  }
}
