import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
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
