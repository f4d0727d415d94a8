import assert from "node:assert/strict";
import { test } from "node:test";
import { type PackWindow, planWindows } from "./pack-windows.js";

/** Every window follows the last, from 0 to `size`, and each blob lies inside its window. */
function assertCovers(
  blobs: { offset: number; length: number }[],
  size: number,
  plan: { windows: PackWindow[]; stray: number[] },
): void {
  let at = 0;
  for (const w of plan.windows) {
    assert.equal(w.start, at);
    assert.ok(w.end >= w.start);
    for (const i of w.blobs)
      assert.ok(blobs[i]!.offset >= w.start && blobs[i]!.offset + blobs[i]!.length <= w.end);
    at = w.end;
  }
  assert.equal(at, size);
  const placed = [...plan.windows.flatMap((w) => w.blobs), ...plan.stray].sort((a, b) => a - b);
  assert.deepEqual(
    placed,
    blobs.map((_, i) => i),
  );
}

test("a pack is cut into windows at blob ends, the header in the last one", () => {
  // 40-byte prefix, ten 300-byte blobs, a 100-byte header: windows of about 1,000 bytes.
  const blobs = Array.from({ length: 10 }, (_, i) => ({ offset: 40 + i * 300, length: 300 }));
  const size = 40 + 3000 + 100;
  const plan = planWindows(blobs, size, 1000);
  assertCovers(blobs, size, plan);
  assert.deepEqual(plan.stray, []);
  assert.ok(plan.windows.every((w) => w.end - w.start <= 1000));
  assert.deepEqual(plan.windows.at(-1)!.blobs.length > 0, true);
});

test("a blob larger than a window gets a window of its own size; a long tail is cut in windows", () => {
  const blobs = [
    { offset: 40, length: 100 },
    { offset: 140, length: 5000 },
    { offset: 5140, length: 100 },
  ];
  const size = 5240 + 2500;
  const plan = planWindows(blobs, size, 1000);
  assertCovers(blobs, size, plan);
  assert.ok(plan.windows.some((w) => w.blobs.includes(1) && w.end - w.start === 5000));
  assert.ok(plan.windows.slice(-2).every((w) => w.blobs.length === 0));
});

test("blobs past the end or across a window boundary are stray; no blobs or an empty pack is one window", () => {
  const blobs = [
    { offset: 40, length: 900 },
    { offset: 500, length: 900 }, // overlaps the first, past the window
    { offset: 9000, length: 10 }, // past the end
  ];
  const plan = planWindows(blobs, 2000, 1000);
  assertCovers(blobs, 2000, plan);
  assert.deepEqual(plan.stray.sort(), [1, 2]);
  assert.deepEqual(planWindows([], 0, 1000).windows, [{ start: 0, end: 0, blobs: [] }]);
  assert.equal(planWindows([], 3500, 1000).windows.length, 4);
});
