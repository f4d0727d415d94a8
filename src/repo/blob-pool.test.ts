import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fs, readdirSync, readlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import type { Worker } from "node:worker_threads";
import { Chunker, DEFAULT_CHUNKER_PARAMS, gearTable } from "../core/chunker.js";
import { decompressBlob } from "../core/compress.js";
import { blobId } from "../core/crypto.js";
import { BlobPool, shouldGrow } from "./blob-pool.js";

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

test("a sparse file is chunked as the bytes it reads as: holes skipped, zeroes stored once", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-pool-"));
  const file = path.join(dir, "sparse.img");
  const MiB = 1024 * 1024;
  const fh = await fs.open(file, "w");
  await fh.truncate(60 * MiB); // ends in a hole
  await fh.write(randomBytes(4097), 0, 4097, 3 * MiB + 123);
  await fh.write(randomBytes(2 * MiB), 0, 2 * MiB, 20 * MiB + 1);
  await fh.write(Buffer.alloc(9 * MiB), 0, 9 * MiB, 30 * MiB); // zeroes written, not a hole
  await fh.write(Buffer.alloc(5000, 7), 0, 5000, 45 * MiB);
  await fh.close();
  const idKey = randomBytes(32);
  const gear = gearTable(randomBytes(32));
  const pool = new BlobPool(idKey, 1);
  try {
    const got: { id: Buffer; plain: Buffer }[] = [];
    const read = await pool.chunkFile(file, DEFAULT_CHUNKER_PARAMS, gear, async (b) => {
      got.push({ id: b.id, plain: Buffer.from(decompressBlob(b.data, b.compression, b.rawLength)) });
    });
    assert.equal(read.kind === "read" && read.length, 60 * MiB);
    const bytes = await fs.readFile(file);
    const expected: Buffer[] = [];
    const c = new Chunker(DEFAULT_CHUNKER_PARAMS, gear);
    expected.push(...c.push(bytes), ...c.finish());
    assert.deepEqual(
      got.map((g) => g.plain.length),
      expected.map((e) => e.length),
    );
    got.forEach((g, i) => {
      assert.ok(g.plain.equals(expected[i]!), `chunk ${i} differs`);
      assert.ok(g.id.equals(blobId(idKey, expected[i]!)), `chunk ${i}: wrong id`);
    });
  } finally {
    await pool.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test("small files are read in batches: each gets its own blob, metadata or outcome", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-pool-"));
  const idKey = randomBytes(32);
  const pool = new BlobPool(idKey, 2);
  // A batch's files are all opened before the first is read (see encodeFiles): none may stay
  // open. Only descriptors of this test's folder count: others of the process come and go.
  const openInDir = () =>
    readdirSync("/proc/self/fd").filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${dir}/`);
      } catch {
        return false; // closed meanwhile
      }
    }).length;
  try {
    const files: { name: string; data: Buffer; size: number }[] = [];
    for (let i = 0; i < 40; i++) {
      const data = i % 3 === 0 ? randomBytes(i * 300) : Buffer.alloc(i * 700, `line ${i}\n`);
      files.push({ name: `f${i}`, data, size: data.length });
    }
    files.push({ name: "grew", data: Buffer.alloc(5000, 1), size: 4000 });
    for (const f of files) await fs.writeFile(path.join(dir, f.name), f.data);
    await fs.mkdir(path.join(dir, "now-a-folder"));
    await fs.symlink(path.join(dir, "f1"), path.join(dir, "now-a-link"));
    execFileSync("mkfifo", [path.join(dir, "now-a-fifo")]);
    const results = await Promise.allSettled([
      ...files.map((f) => pool.encodeFile(path.join(dir, f.name), f.size)),
      pool.encodeFile(path.join(dir, "missing"), 10),
      pool.encodeFile(path.join(dir, "now-a-folder"), 10),
      pool.encodeFile(path.join(dir, "now-a-link"), 10),
      pool.encodeFile(path.join(dir, "now-a-fifo"), 10),
    ]);
    files.forEach((f, i) => {
      const r = results[i]!;
      assert.equal(r.status, "fulfilled");
      if (r.status !== "fulfilled") return;
      if (f.name === "grew") {
        assert.equal(r.value.read.kind, "grew");
        return;
      }
      assert.equal(r.value.read.kind, "read", f.name);
      if (r.value.read.kind !== "read") return;
      assert.equal(r.value.read.length, f.size);
      assert.equal(r.value.read.after.size, BigInt(f.size));
      if (f.size === 0) {
        assert.equal(r.value.blob, undefined);
        return;
      }
      const b = r.value.blob!;
      assert.ok(b.id.equals(blobId(idKey, f.data)), `${f.name}: wrong id`);
      assert.ok(decompressBlob(b.data, b.compression, f.size).equals(f.data), `${f.name}: wrong data`);
    });
    const missing = results[files.length]!;
    assert.equal(missing.status, "rejected");
    assert.equal((missing as PromiseRejectedResult).reason.code, "ENOENT");
    const folder = results[files.length + 1]!;
    assert.ok(folder.status === "rejected" || folder.value.read.kind === "notFile");
    // Swapped for a symlink since it was listed: never followed.
    const link = results[files.length + 2]!;
    assert.equal(link.status, "rejected");
    assert.equal((link as PromiseRejectedResult).reason.code, "ELOOP");
    // Swapped for a FIFO: opened without blocking, and not read.
    const fifo = results[files.length + 3]!;
    assert.ok(fifo.status === "fulfilled" && fifo.value.read.kind === "notFile");
    assert.equal(openInDir(), 0, "a file of the batch was left open");

    // A batch's memory is freed once every blob in it is done with, not before.
    const blobs = results.flatMap((r) => (r.status === "fulfilled" && r.value.blob ? [r.value.blob] : []));
    const big = files.filter((f) => f.size > 0 && f.name !== "grew").length;
    assert.equal(blobs.length, big);
    const last = blobs.pop()!;
    for (const b of blobs) b.done?.();
    assert.ok(last.data.length > 0, "a blob of an unfinished batch keeps its bytes");
    last.done?.();
    assert.ok(
      [...blobs, last].every((b) => b.data.length === 0),
      "every batch freed once all its blobs are done",
    );
  } finally {
    await pool.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test("a lazy pool starts one worker, and another at once for a large file while the first is busy", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-pool-"));
  const file = path.join(dir, "big.bin");
  await fs.writeFile(file, randomBytes(4 * 1024 * 1024));
  const eager = new BlobPool(randomBytes(32), 2);
  const lazy = new BlobPool(randomBytes(32), 2, true);
  try {
    assert.equal(eager.running, 2);
    assert.equal(lazy.running, 1);
    // Small jobs one after the other, with the worker idle between them: still one.
    for (let i = 0; i < 5; i++) await lazy.encode(randomBytes(1000));
    assert.equal(lazy.running, 1);
    // A large file while the worker has work: a second starts for it, and both jobs finish.
    const small = lazy.encode(randomBytes(1024 * 1024));
    let chunks = 0;
    const large = lazy.chunkFile(file, DEFAULT_CHUNKER_PARAMS, gearTable(randomBytes(32)), async () => {
      chunks++;
    });
    assert.equal(lazy.running, 2);
    await small;
    const read = await large;
    assert.equal(read.kind === "read" && read.length, 4 * 1024 * 1024);
    assert.ok(chunks > 0);
    // Never more than its size.
    const more = [
      lazy.encode(randomBytes(1000)),
      lazy.chunkFile(file, DEFAULT_CHUNKER_PARAMS, gearTable(randomBytes(32)), async () => {}),
    ];
    assert.equal(lazy.running, 2);
    await Promise.all(more);
  } finally {
    await Promise.all([eager.close(), lazy.close()]);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test("a lazy pool grows only when every worker has been busy a while and this thread mostly waited", () => {
  const now = 10_000;
  const grow = (busySince: (number | undefined)[], loopBusy: number, large = false) =>
    shouldGrow({ busySince, now, loopBusy, large });
  // Busy for 150 ms while the main thread idled: the workers hold it up.
  assert.equal(grow([now - 150], 0.1), true);
  assert.equal(grow([now - 150, now - 120], 0.2), true);
  // The main thread was the busy one (a backup of many small files): no.
  assert.equal(grow([now - 150], 0.6), false);
  // Not busy long enough, or one worker idle: no.
  assert.equal(grow([now - 50], 0.1), false);
  assert.equal(grow([now - 150, now - 50], 0.1), false);
  assert.equal(grow([now - 150, undefined], 0.1), false);
  // A large file grows a pool whose workers are all busy at once, but not past an idle one.
  assert.equal(grow([now - 1], 0.9, true), true);
  assert.equal(grow([now - 1, undefined], 0.9, true), false);
});
