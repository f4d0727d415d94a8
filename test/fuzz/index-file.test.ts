import assert from "node:assert/strict";
import { test } from "node:test";
import { blobId } from "../../src/core/crypto.js";
import type { BlobLocation } from "../../src/repo/blob.js";
import { decodeIndex, encodeIndex } from "../../src/repo/index-file.js";
import { PackBuilder } from "../../src/repo/pack.js";
import { blobOf, idKey, plaintexts, plausibleEntry, prng, roots } from "./fixtures.js";
import { hostileBytes } from "./mutate.js";
import { expectDecodes, fuzz } from "./support.js";

/** Index files as a backup writes them: the entries of real packs. */
function packEntries(count: number): BlobLocation[] {
  const b = new PackBuilder(0, roots.data);
  for (const p of plaintexts.slice(0, count)) {
    const { id, stored, compression } = blobOf(p.plain);
    b.add(id, stored, compression, p.plain.length);
  }
  return b.finish().entries;
}

const samples = [
  encodeIndex({ supersedes: [], packs: [] }),
  encodeIndex({ supersedes: [], packs: [{ id: "ab".repeat(32), blobs: packEntries(5) }] }),
  encodeIndex({
    supersedes: [prng(32, 1).toString("hex"), prng(32, 2).toString("hex")],
    packs: [
      { id: "01".repeat(32), blobs: packEntries(2) },
      { id: "02".repeat(32), blobs: [] },
      { id: blobId(idKey, Buffer.from("x")).toString("hex"), blobs: packEntries(1) },
    ],
  }),
];

test("fuzz index file: a valid index or a LifeboatError", () => {
  fuzz("decodeIndex", [hostileBytes(samples)], (buf) => {
    expectDecodes(
      "decodeIndex",
      buf,
      () => decodeIndex(buf, "index/fuzz"),
      (file) => {
        for (const s of file.supersedes) assert.match(s, /^[0-9a-f]{64}$/);
        for (const p of file.packs) {
          assert.match(p.id, /^[0-9a-f]{64}$/);
          for (const e of p.blobs) plausibleEntry(e);
        }
      },
    );
  });
});
