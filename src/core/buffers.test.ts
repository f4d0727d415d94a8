import assert from "node:assert/strict";
import { test } from "node:test";
import { MessageChannel } from "node:worker_threads";
import { ownsMemory, release, transferable } from "./buffers.js";

test("small buffers and views become copies of their own, which can be transferred", () => {
  const { port1, port2 } = new MessageChannel();
  try {
    const fromPool = Buffer.from("a few bytes from Node's shared 8 KiB pool");
    const view = Buffer.alloc(64 * 1024, 1).subarray(10, 5000);
    for (const b of [fromPool, view]) {
      assert.equal(ownsMemory(b), false);
      const t = transferable(b);
      assert.ok(ownsMemory(t));
      assert.ok(t.equals(b));
      // Node 21+ throws for the shared pool's memory; a copy of its own always transfers.
      port1.postMessage(t, [t.buffer as ArrayBuffer]);
      assert.equal(t.length, 0, "not transferred");
    }
    const own = Buffer.alloc(10_000);
    assert.equal(transferable(own), own, "a buffer that owns its memory is not copied");
  } finally {
    port1.close();
    port2.close();
  }
});

test("release frees a buffer that is the whole of its memory at once, and leaves anything else alone", () => {
  const before = process.memoryUsage().arrayBuffers;
  const owned = Array.from({ length: 32 }, (_, i) => Buffer.alloc(1024 * 1024, i));
  assert.ok(process.memoryUsage().arrayBuffers - before >= 32 * 1024 * 1024);
  for (const b of owned) release(b);
  for (const b of owned) assert.equal(b.length, 0, "detached");
  // Freed now, not at the next garbage collection (nothing here asks for one).
  assert.ok(process.memoryUsage().arrayBuffers - before < 4 * 1024 * 1024);

  const big = Buffer.alloc(256 * 1024, 1);
  const view = big.subarray(1);
  const small = Buffer.alloc(1000, 2); // not worth it: left to the allocator
  const shared = Buffer.from(new SharedArrayBuffer(64 * 1024));
  for (const b of [view, small, shared]) release(b);
  assert.equal(view.length, 256 * 1024 - 1);
  assert.equal(big.length, 256 * 1024, "a view releases nothing: others may use the memory");
  assert.equal(small.length, 1000);
  assert.equal(shared.length, 64 * 1024);
});
