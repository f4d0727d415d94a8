import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { memoryBackend } from "../../backend/memory.js";
import { Repository } from "../../repo/repository.js";
import { walFetch, walPush } from "../../sources/pg-pitr/wal-archive.js";
import { check } from "../check/check.js";
import { prune } from "./prune.js";
import { MIN_SMALL_PACKS } from "./small-packs.js";

process.env.LIFEBOAT_KDF_N = "1024";

const params = { chunker: { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 }, packSize: 512 * 1024 };
const walName = (i: number) => `0000000100000000000000${i.toString(16).toUpperCase().padStart(2, "0")}`;
const packs = (be: ReturnType<typeof memoryBackend>) =>
  [...be.objects().keys()].filter((n) => n.startsWith("data/"));

test("prune merges the small packs of wal-push into full-size ones; every WAL file still fetches", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-small-packs-"));
  try {
    const be = memoryBackend();
    const repo = await Repository.init(be, "pw", params);
    const files = new Map<string, Buffer>();
    // Each push writes one pack of about 40 KiB (random bytes do not compress).
    const n = MIN_SMALL_PACKS + 4;
    for (let i = 1; i <= n; i++) {
      const bytes = randomBytes(40 * 1024);
      const file = path.join(dir, walName(i));
      await fs.writeFile(file, bytes);
      await walPush(repo, file);
      files.set(walName(i), bytes);
    }
    assert.equal(packs(be).length, n);
    const r = await prune(repo);
    assert.equal(r.mark.smallPacks.length, n, JSON.stringify(r.mark));
    assert.equal(r.swept.length, 1, "no backup runs: the plan is carried out at once");
    // 14 × 40 KiB in packs of 512 KiB: two packs (the second one small, waiting for more).
    assert.equal(packs(be).length, 2);
    assert.equal([...be.objects().keys()].filter((k) => k.startsWith("index/")).length, 1);
    assert.deepEqual((await check(repo, { readData: true })).problems, []);
    await repo.close();

    // A fresh process: the locations the WAL records remember are stale, the index is not.
    const again = await Repository.open(be, "pw");
    for (const [name, bytes] of files) {
      const out = path.join(dir, `fetched-${name}`);
      assert.equal((await walFetch(again, name, out)).found, true);
      assert.ok((await fs.readFile(out)).equals(bytes), `${name} differs`);
    }
    // Below the threshold nothing is merged.
    const r2 = await prune(again);
    assert.deepEqual(r2.mark.smallPacks, []);
    assert.equal(r2.mark.plan, undefined);
    await again.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
