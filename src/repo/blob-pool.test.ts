import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import type { Worker } from "node:worker_threads";
import { DEFAULT_CHUNKER_PARAMS, gearTable } from "../core/chunker.js";
import { BlobPool } from "./blob-pool.js";

test("a worker that dies fails only its own jobs, and a fresh one takes its place", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-pool-"));
  const file = path.join(dir, "big.bin");
  await fs.writeFile(file, randomBytes(24 * 1024 * 1024));
  const pool = new BlobPool(randomBytes(32), 2);
  try {
    // Stores that take a while keep the chunking worker (worker 0: the first job) busy.
    const chunked = pool.chunkFile(file, DEFAULT_CHUNKER_PARAMS, gearTable(randomBytes(32)), async () => {
      await new Promise((r) => setTimeout(r, 200));
    });
    const other = pool.encode(randomBytes(64 * 1024)); // goes to worker 1
    const workers = (pool as unknown as { workers: Worker[] }).workers;
    const first = workers[0]!;
    await new Promise((r) => setTimeout(r, 100));
    await first.terminate();
    await assert.rejects(chunked, /stopped unexpectedly/);
    assert.equal((await other).id.length, 32, "a job on the other worker failed too");
    assert.notEqual(workers[0], first, "the dead worker was not replaced");
    // The pool still works, on both workers.
    const again = await Promise.all([pool.encode(randomBytes(8192)), pool.encode(randomBytes(8192))]);
    assert.equal(again.length, 2);
  } finally {
    await pool.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});
