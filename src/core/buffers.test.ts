import assert from "node:assert/strict";
import { test } from "node:test";
import { MessageChannel } from "node:worker_threads";
import { ownsMemory, transferable } from "./buffers.js";

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
