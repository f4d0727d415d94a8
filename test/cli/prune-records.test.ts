/**
 * Prune keeps data that records need even though no snapshot references it: archived
 * PostgreSQL WAL (`wal/`) and SQLite replication segments (`sqlite-wal/`).
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { localBackend } from "../../src/backend/local.js";
import { check } from "../../src/ops/check/check.js";
import { prune } from "../../src/ops/prune/prune.js";
import { Repository } from "../../src/repo/repository.js";
import { walFetch, walPush } from "../../src/sources/pg-pitr/wal-archive.js";
import {
  listSegments,
  segmentPages,
  storePages,
  writeSegment,
} from "../../src/sources/sqlite-replicate/segments.js";
import { prng } from "../support/cli.js";

process.env.LIFEBOAT_KDF_N = "1024";

test("prune keeps archived WAL and replication segments; both still read back", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-prune-records-"));
  try {
    const repo = await Repository.init(localBackend({ path: path.join(dir, "repo"), fsync: false }), "pw");
    // A WAL file (any content: the archive stores bytes) and a replication segment.
    const wal = path.join(dir, "000000010000000000000003");
    await fs.writeFile(wal, prng(3 * 1024 * 1024, 5));
    assert.equal((await walPush(repo, wal)).status, "stored");
    const pages = new Map([
      [1, prng(4096, 6)],
      [2, prng(4096, 7)],
    ]);
    const stored = await repo.withWriter((w) => storePages(w, pages, 2));
    const now = new Date().toISOString();
    await writeSegment(repo, {
      version: 1,
      source: "sqlite:/tmp/x.db",
      hostname: "h",
      generation: "abcd",
      index: 0,
      wal: { salt1: 1, salt2: 2, checkpointSeq: 0, start: 32, end: 100 },
      walRestarted: false,
      pageSize: 4096,
      dbPages: 2,
      frames: 2,
      commits: 1,
      pages: stored.count,
      commitsAfter: now,
      commitsBefore: now,
      storedAt: now,
      size: stored.size,
      content: stored.content,
    });

    const r = await prune(repo, { maxUnusedPercent: 0 });
    assert.equal(r.mark.unusedPacks.length, 0, "nothing looks unused");
    assert.equal(r.mark.plan, undefined);
    assert.deepEqual((await check(repo, { readData: true })).problems, []);

    const back = path.join(dir, "fetched");
    assert.equal((await walFetch(repo, "000000010000000000000003", back)).found, true);
    assert.ok((await fs.readFile(back)).equals(await fs.readFile(wal)));
    const [seg] = await listSegments(repo, undefined);
    const got = new Map<number, Buffer>();
    for await (const { pgno, page } of segmentPages(repo, seg!.doc, seg!.id))
      got.set(pgno, Buffer.from(page));
    assert.ok(got.get(1)!.equals(pages.get(1)!) && got.get(2)!.equals(pages.get(2)!));
    await repo.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
