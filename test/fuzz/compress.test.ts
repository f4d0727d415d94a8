import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Compression, decompressBlob, maybeCompress } from "../../src/core/compress.js";
import { LifeboatError } from "../../src/core/errors.js";
import { plaintexts, prng } from "./fixtures.js";
import { hostileBytes } from "./mutate.js";
import { expectDecodes, fuzz } from "./support.js";
import { RLE_BLOCK_MAX, rleBomb } from "./zstd.js";

/**
 * zstd decompression of hostile input (src/core/compress.ts). With a known raw length (a blob:
 * the index records it) the output may never exceed it; without one (a sealed object) it may
 * never exceed the limit. Either way a small frame that inflates hugely is refused with a
 * LifeboatError at the bound, having allocated no more than the bound.
 */
const frames = [...plaintexts.map((p) => p.plain), Buffer.concat([Buffer.alloc(5000, 0x78), prng(100, 9)])]
  .map((plain) => maybeCompress(plain))
  .filter((c) => c.compression === Compression.zstd)
  .map((c) => c.data);

/** Frames of up to 128 RLE blocks (16 MiB of output), declaring their size truly, falsely or not at all. */
const bomb = fc
  .tuple(
    fc.integer({ min: 1, max: 128 }),
    fc.integer({ min: 1, max: RLE_BLOCK_MAX }),
    fc.oneof(
      fc.constant(undefined),
      fc.constant("true" as const),
      fc.constantFrom(0, 1, 2 ** 31, 2 ** 32 - 1, 2 ** 40),
    ),
  )
  .map(([blocks, size, decl]) => rleBomb(blocks, size, decl === "true" ? blocks * size : decl));

const input = fc.oneof(hostileBytes(frames), bomb);
const rawLength = fc.oneof(
  fc.constant(-1),
  fc.constantFrom(0, 1, 100, 4096, 100_000, 1 << 20, 0x7fffffff, 0xffffffff),
  fc.nat({ max: 0xffffffff }),
);

/** What the tests allow a call with no known size to produce (the production limit is larger). */
const LIMIT = 8 * 1024 * 1024;

test("fuzz zstd: hostile frames decompress within the expected length or fail with a LifeboatError", () => {
  fuzz("decompressBlob", [input, rawLength, fc.boolean()], (data, raw, useScratch) => {
    const scratch = useScratch && raw >= 0 && raw <= 1 << 20 ? Buffer.alloc(raw) : undefined;
    expectDecodes(
      "decompressBlob",
      data,
      () => decompressBlob(data, Compression.zstd, raw, scratch, LIMIT),
      (out) => {
        if (raw >= 0) assert.equal(out.length, raw);
        else assert.ok(out.length <= LIMIT, `${out.length} bytes out, limit ${LIMIT}`);
      },
      // One output buffer, never more than the expected size (a few KiB of slack for small cases).
      Math.max(raw >= 0 ? raw : LIMIT, 256 * 1024),
    );
  });
});

test("zstd: real frames still decompress, with and without a known length", () => {
  for (const p of plaintexts) {
    const c = maybeCompress(p.plain);
    if (c.compression !== Compression.zstd) continue;
    assert.ok(decompressBlob(c.data, c.compression, p.plain.length).equals(p.plain));
    assert.ok(decompressBlob(c.data, c.compression, -1).equals(p.plain));
    const scratch = Buffer.alloc(p.plain.length + 10);
    assert.ok(decompressBlob(c.data, c.compression, p.plain.length, scratch).equals(p.plain));
  }
});

test("zstd: a 4 GiB bomb is refused at the expected length without inflating", () => {
  // 32768 RLE blocks of 128 KiB: 128 KiB of input that inflates to 4 GiB.
  const big = rleBomb(32768);
  for (const declared of [undefined, 2 ** 32]) {
    const data = declared === undefined ? big : rleBomb(32768, RLE_BLOCK_MAX, declared);
    assert.throws(() => decompressBlob(data, Compression.zstd, 1000), LifeboatError);
    assert.throws(() => decompressBlob(data, Compression.zstd, -1, undefined, LIMIT), LifeboatError);
  }
  // Without a limit of its own a sealed object stops at the default (512 MiB); a frame that
  // says it is larger is refused before anything is inflated.
  assert.throws(() => decompressBlob(rleBomb(1, 10, 2 ** 32), Compression.zstd, -1), LifeboatError);
});
