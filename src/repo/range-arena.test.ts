import assert from "node:assert/strict";
import { test } from "node:test";
import { RangeArena, returnArena, takeArena } from "./range-arena.js";

test("an arena hands out regions that do not overlap, lowest gap first, until full", () => {
  const a = new RangeArena(10);
  const r1 = a.take(4)!;
  const r2 = a.take(4)!;
  r2.fill(1);
  assert.deepEqual([r1.byteOffset, r2.byteOffset], [0, 4]);
  assert.equal(a.take(3), undefined, "only 2 bytes are left");
  a.release(r1);
  const r3 = a.take(3)!;
  assert.equal(r3.byteOffset, 0, "the freed gap at the start is reused");
  r3.fill(7);
  assert.ok(
    r2.every((b) => b !== 7),
    "writing one region leaves the others alone",
  );
  assert.equal(r3.buffer, a.memory);
  a.release(r2);
  a.release(r3);
  assert.ok(a.empty);
  assert.equal(a.take(10)!.byteOffset, 0, "an empty arena takes a region of its whole size");
});

test("an arena given back is reused by the next restore when large enough", () => {
  const a = takeArena(1024);
  returnArena(a);
  assert.equal(takeArena(512), a);
  returnArena(a);
  assert.notEqual(takeArena(4096), a, "too small: a new one");
});
