import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Compression, maybeCompress } from "../../src/core/compress.js";
import { deriveKey, seal } from "../../src/core/crypto.js";
import { ObjectKind, openObject, sealObject } from "../../src/repo/sealed-object.js";
import { plaintexts, roots } from "./fixtures.js";
import { hostileBytes } from "./mutate.js";
import { expectDecodes, fuzz } from "./support.js";
import { RLE_BLOCK_MAX, rleBomb } from "./zstd.js";

/** Sealed objects (src/repo/sealed-object.ts): the envelope, and hostile plaintext inside a valid one. */
const docs = [
  Buffer.from(JSON.stringify({ version: 1, hello: "world".repeat(100) })),
  Buffer.from("{}"),
  ...plaintexts.map((p) => p.plain),
];
const sealed = docs.flatMap((d) => [
  sealObject(roots.meta, ObjectKind.snapshot, d),
  sealObject(roots.meta, ObjectKind.snapshot, d, false),
]);

/** The documented envelope (docs/format.md), sealed by hand so that any body can be inside. */
function envelope(kind: number, compression: number, body: Buffer): Buffer {
  const header = Buffer.alloc(24);
  header.write("LBO1", 0, "latin1");
  header[4] = kind;
  header[5] = compression;
  const key = deriveKey(roots.meta, header.subarray(8, 24), "lifeboat object v1");
  return Buffer.concat([header, seal(key, body, header)]);
}

const compressed = docs.map((d) => maybeCompress(d)).filter((c) => c.compression === Compression.zstd);

test("fuzz sealed object: damaged envelopes open to a buffer or a LifeboatError", () => {
  fuzz("openObject (damaged)", [hostileBytes(sealed)], (buf) => {
    expectDecodes("openObject", buf, () =>
      openObject(roots.meta, ObjectKind.snapshot, buf, "snapshots/fuzz"),
    );
  });
});

test("fuzz sealed object: authentic envelopes around hostile zstd", () => {
  const body = fc.oneof(
    hostileBytes(compressed.map((c) => c.data)),
    // Small bombs, and large ones that say so in their frame header.
    fc
      .integer({ min: 1, max: 256 })
      .map((blocks) => rleBomb(blocks, RLE_BLOCK_MAX)),
    fc
      .integer({ min: 4097, max: 2 ** 20 })
      .map((blocks) => rleBomb(64, RLE_BLOCK_MAX, blocks * RLE_BLOCK_MAX)),
  );
  fuzz("openObject (hostile zstd)", [body, fc.nat(255)], (data, compression) => {
    const buf = envelope(ObjectKind.snapshot, compression % 3 === 2 ? compression : compression % 2, data);
    // Sealed objects are JSON documents read as one string: nothing may inflate past 512 MiB.
    expectDecodes("openObject", data, () =>
      openObject(roots.meta, ObjectKind.snapshot, buf, "snapshots/fuzz"),
    );
  });
});

test("sealed object: an authentic 1 GiB zstd bomb is refused at 512 MiB", () => {
  const buf = envelope(ObjectKind.snapshot, Compression.zstd, rleBomb(8192));
  expectDecodes(
    "openObject",
    buf,
    () => openObject(roots.meta, ObjectKind.snapshot, buf, "snapshots/bomb"),
    () => assert.fail("a 1 GiB object was inflated"),
    512 * 1024 * 1024,
  );
});
