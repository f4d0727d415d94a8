import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import { test } from "node:test";
import fc from "fast-check";
import { Chunker, type ChunkerParams, gearTable } from "../../src/core/chunker.js";
import { fuzz } from "./support.js";

/**
 * FastCDC properties of src/core/chunker.ts. Small parameters keep many chunks per input.
 *
 * The insertion property, exactly: a cut is decided from the bytes of the current chunk alone
 * (the gear hash starts at 0 for each chunk), so
 *   1. every chunk of the original that ends at or before the edit position, except a final
 *      chunk cut only by the end of the input, is also a chunk of the edited input;
 *   2. once a boundary of the edited input after the edit lies at the same place (shifted by
 *      the change in length) as a boundary of the original, every chunk after it is the same.
 */
const params: ChunkerParams = { min: 256, avg: 1024, max: 4096 };

function expand(seed: number, n: number): Buffer {
  const key = Buffer.alloc(16);
  key.writeUInt32LE(seed, 0);
  return createCipheriv("aes-128-ctr", key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

/** Random bytes, low-entropy runs (which hit the maximum chunk size) or a mix of both. */
const data: fc.Arbitrary<Buffer> = fc.oneof(
  fc.tuple(fc.nat(), fc.nat(40_000)).map(([s, n]) => expand(s, n)),
  fc
    .tuple(fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.nat(20_000))
    .map(([p, n]) => Buffer.alloc(n, Buffer.from(p))),
  fc
    .array(fc.tuple(fc.nat(), fc.nat(6000), fc.boolean()), { minLength: 1, maxLength: 8 })
    .map((parts) => Buffer.concat(parts.map(([s, n, z]) => (z ? Buffer.alloc(n, s & 0xff) : expand(s, n))))),
);

function chunks(buf: Buffer, gear: Uint32Array, pieces: number[] = [65536]): Buffer[] {
  const c = new Chunker(params, gear);
  const out: Buffer[] = [];
  let off = 0;
  for (let i = 0; off < buf.length; i++) {
    const n = Math.max(1, pieces[i % pieces.length]!);
    out.push(...c.push(buf.subarray(off, off + n)));
    off += n;
  }
  out.push(...c.finish());
  return out;
}

function boundaries(cs: Buffer[]): number[] {
  const out = [0];
  for (const c of cs) out.push(out.at(-1)! + c.length);
  return out;
}

const gears = new Map<number, Uint32Array>();
function gear(seed: number): Uint32Array {
  let g = gears.get(seed);
  if (!g) {
    g = gearTable(Buffer.alloc(32, seed));
    gears.set(seed, g);
  }
  return g;
}

test("fuzz chunker: chunks cover the input, sizes within min/max, independent of read sizes", () => {
  fuzz(
    "chunker cover",
    [data, fc.nat(7), fc.array(fc.integer({ min: 1, max: 10_000 }), { minLength: 1, maxLength: 5 })],
    (buf, g, pieces) => {
      const cs = chunks(buf, gear(g), pieces);
      assert.ok(Buffer.concat(cs).equals(buf), "concatenated chunks differ from the input");
      cs.forEach((c, i) => {
        assert.ok(c.length <= params.max, `chunk ${i} has ${c.length} bytes > max`);
        if (i < cs.length - 1) assert.ok(c.length >= params.min, `chunk ${i} has ${c.length} bytes < min`);
        else assert.ok(c.length > 0, "empty last chunk");
      });
      assert.deepEqual(
        cs.map((c) => c.length),
        chunks(buf, gear(g)).map((c) => c.length),
        "boundaries depend on read sizes",
      );
    },
  );
});

test("fuzz chunker: an insertion changes only the chunks near it (FastCDC resynchronisation)", () => {
  let tail = 0;
  let resynced = 0;
  fuzz(
    "chunker insertion",
    [data, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 3000 }), fc.nat(600), fc.nat(7)],
    (buf, at, inserted, replaced, g) => {
      // Insert `inserted` at `p`, replacing `replaced` bytes (0 most of the time: a pure insertion).
      const p = at % (buf.length + 1);
      const cut = at % 3 === 0 ? Math.min(replaced, buf.length - p) : 0;
      const edited = Buffer.concat([buf.subarray(0, p), inserted, buf.subarray(p + cut)]);
      const shift = inserted.length - cut;
      const a = chunks(buf, gear(g));
      const b = chunks(edited, gear(g));
      const ba = boundaries(a);
      const bb = boundaries(b);

      // 1. Chunks of the original ending at or before p (not the end-of-input chunk) are kept.
      for (let j = 0; j < a.length - 1 && ba[j + 1]! <= p; j++)
        assert.ok(b[j]?.equals(a[j]!), `chunk ${j} (ends at ${ba[j + 1]}, edit at ${p}) changed`);

      // 2. From the first boundary after the edit shared with the original, everything is equal.
      const inA = new Map(ba.map((x, j) => [x, j]));
      const k = bb.findIndex((x) => x >= p + inserted.length && inA.has(x - shift));
      assert.ok(k >= 0, "the ends of the inputs are not a shared boundary");
      const j = inA.get(bb[k]! - shift)!;
      assert.equal(b.length - k, a.length - j, `after the resync at ${bb[k]} the chunk counts differ`);
      for (let i = 0; k + i < b.length; i++)
        assert.ok(b[k + i]!.equals(a[j + i]!), `chunk ${k + i} after the resync at ${bb[k]} differs`);

      if (ba.filter((x) => x > p).length >= 8) {
        tail++;
        if (j < a.length - 4) resynced++;
      }
    },
  );
  // Content-defined, not just correct: with many chunks after the edit, boundaries come back.
  if (tail >= 10) assert.ok(resynced >= tail / 2, `only ${resynced} of ${tail} edits resynchronised early`);
});
