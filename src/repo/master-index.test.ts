import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { BLOB_ENTRY, type BlobLocation, type BlobTypeValue, writeBlobEntry } from "./blob.js";
import { MasterIndex } from "./master-index.js";

test("finds every added blob, keeps the first location, and misses unknown ids", () => {
  const idx = new MasterIndex();
  const ids: Buffer[] = [];
  for (let i = 0; i < 50_000; i++) {
    const id = randomBytes(32);
    ids.push(id);
    idx.add(
      {
        type: i % 2 === 0 ? 0 : 1,
        compression: i % 3 === 0 ? 1 : 0,
        id,
        offset: i,
        length: i + 1,
        rawLength: i + 2,
      },
      `p${i % 7}`,
    );
  }
  assert.equal(idx.size, 50_000);
  for (let i = 0; i < ids.length; i += 997) {
    const e = idx.get(ids[i]!)!;
    assert.equal(e.offset, i);
    assert.equal(e.length, i + 1);
    assert.equal(e.rawLength, i + 2);
    assert.equal(e.type, i % 2 === 0 ? 0 : 1);
    assert.equal(e.compression, i % 3 === 0 ? 1 : 0);
    assert.equal(e.packId, `p${i % 7}`);
  }
  idx.add({ type: 0, compression: 0, id: ids[0]!, offset: 999, length: 1, rawLength: 1 }, "other");
  assert.equal(idx.get(ids[0]!)!.offset, 0);
  assert.equal(idx.size, 50_000);
  assert.equal(idx.get(randomBytes(32)), undefined);
  assert.equal(idx.packCount, 7);
  assert.equal([...idx.entries()].length, 50_000);
});

test("entries added as stored bytes index exactly as the same locations added one by one", () => {
  const locs: BlobLocation[] = [];
  for (let i = 0; i < 20_000; i++)
    locs.push({
      type: (i % 2) as BlobTypeValue,
      compression: i % 3 === 0 ? 1 : 0,
      id: randomBytes(32),
      offset: i * 7,
      length: 40 + i,
      rawLength: 12 + i,
    });
  locs.push({ ...locs[5]!, offset: 123_456 }); // a duplicate: the first location stays
  const entries = Buffer.alloc(locs.length * BLOB_ENTRY);
  locs.forEach((l, i) => {
    writeBlobEntry(entries, i * BLOB_ENTRY, l);
  });
  const one = new MasterIndex();
  for (const l of locs) one.add(l, "pack-a");
  const raw = new MasterIndex(); // no reserve: it grows while adding
  raw.addEntries(entries.subarray(0, 10 * BLOB_ENTRY), 10, "pack-b");
  raw.addEntries(entries.subarray(10 * BLOB_ENTRY), locs.length - 10, "pack-a");
  assert.equal(raw.size, 20_000);
  const byId = (ix: MasterIndex) =>
    new Map([...ix.entries()].map((e) => [e.id.toString("hex"), { ...e, packId: "" }]));
  assert.deepEqual(byId(raw), byId(one));
  assert.equal(raw.get(locs[3]!.id)!.packId, "pack-b");
  assert.equal(raw.get(locs[5]!.id)!.offset, locs[5]!.offset);
  assert.equal(raw.get(locs[15_000]!.id)!.packId, "pack-a");
});
