import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { IdSet } from "./id-set.js";

const id = (n: number) => createHash("sha256").update(String(n)).digest();

test("an id set holds each id once, through growth, and tells them apart", () => {
  const s = new IdSet();
  for (let i = 0; i < 50_000; i++) assert.equal(s.add(id(i)), true);
  assert.equal(s.size, 50_000);
  for (let i = 0; i < 50_000; i += 7) assert.equal(s.add(id(i)), false, "added twice");
  assert.equal(s.size, 50_000);
  for (let i = 0; i < 50_000; i += 13) assert.equal(s.has(id(i)), true);
  for (let i = 50_000; i < 51_000; i++) assert.equal(s.has(id(i)), false);
  // Ids that share their first four bytes (the table's hash) are still told apart.
  const a = Buffer.alloc(32, 1);
  const b = Buffer.alloc(32, 1);
  b[31] = 2;
  assert.equal(s.add(a), true);
  assert.equal(s.has(b), false);
  assert.equal(s.add(b), true);
  assert.equal(s.has(a) && s.has(b), true);
  assert.throws(() => s.add(Buffer.alloc(31)), /32 bytes/);
});
