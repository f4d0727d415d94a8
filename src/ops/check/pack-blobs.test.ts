import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { BlobType } from "../../repo/blob.js";
import { PackBlobs } from "./pack-blobs.js";

test("a pack's blobs come back as the index listed them, with the pack's id", () => {
  const blobs = Array.from({ length: 5 }, (_, i) => ({
    type: i === 2 ? BlobType.tree : BlobType.data,
    compression: i % 2,
    id: randomBytes(32),
    offset: i * 1000 + 7,
    length: 999 - i,
    rawLength: i === 4 ? 0xffffffff : 5000 + i,
  }));
  const p = new PackBlobs();
  p.set("aa", blobs);
  p.set("bb", []);
  assert.deepEqual(
    p.get("aa"),
    blobs.map((b) => ({ ...b, packId: "aa" })),
  );
  assert.deepEqual(
    [...p.ids("aa")].map((b) => [Buffer.from(b.id), b.type]),
    blobs.map((b) => [b.id, b.type]),
  );
  assert.deepEqual(p.get("bb"), []);
  assert.deepEqual(p.get("cc"), [], "a pack the index does not list has no blobs");
  assert.equal(p.has("bb"), true);
  assert.equal(p.has("cc"), false);
  assert.deepEqual([...p.keys()], ["aa", "bb"]);
});
