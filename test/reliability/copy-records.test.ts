/**
 * `copy` carries the records point-in-time recovery needs besides snapshots: archived
 * PostgreSQL WAL (found in the destination by cluster and name, under its own keys) and SQLite
 * replication segments, each stored once, deduplicated against what the destination holds, and
 * never copied twice. Library level on memory storage; test/db/pitr.test.ts and
 * test/db/replicate.test.ts restore real databases from a copy alone.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { memoryBackend } from "../../src/backend/memory.js";
import { copySnapshots } from "../../src/ops/copy/copy.js";
import { segmentKind } from "../../src/repo/records-segment.js";
import { walKind } from "../../src/repo/records-wal.js";
import { Repository } from "../../src/repo/repository.js";
import { findWal, walFetch, walPush } from "../../src/sources/pg-pitr/wal-archive.js";
import {
  listSegments,
  segmentPages,
  storePages,
  writeSegment,
} from "../../src/sources/sqlite-replicate/segments.js";
import { prng, removeTempDir, tempDir } from "../support/cli.js";

process.env.LIFEBOAT_KDF_N = "1024";

const params = { chunker: { min: 4096, avg: 16384, max: 65536 }, packSize: 256 * 1024 };
let dir: string;
before(async () => {
  dir = await tempDir("lifeboat-copy-records-");
});
after(async () => {
  if (dir) await removeTempDir(dir);
});

const WAL = ["000000010000000000000001", "000000010000000000000002", "00000002.history"];

test("copy carries WAL and segments, under the destination's keys, once", async () => {
  const src = await Repository.init(memoryBackend(), "one", params);
  const dst = await Repository.init(memoryBackend(), "two", params);
  const files = new Map<string, Buffer>();
  for (const [i, name] of WAL.entries()) {
    const f = path.join(dir, name);
    const bytes = name.endsWith(".history")
      ? Buffer.from("1\t0/3000000\tno recovery target\n")
      : prng(300_000, i + 1);
    await fs.writeFile(f, bytes);
    files.set(name, bytes);
    assert.equal((await walPush(src, f, { cluster: "main" })).status, "stored");
  }
  // Two segments of one replication generation (pages of 4096 bytes).
  const pages = new Map([1, 2, 3].map((p) => [p, prng(4096, `page-${p}`)] as const));
  for (const index of [0, 1]) {
    const stored = await src.withWriter((w) => storePages(w, pages, 3));
    await writeSegment(src, {
      version: 1,
      source: "sqlite:/data/app.db",
      hostname: "h",
      generation: "g1",
      index,
      wal: { salt1: 1, salt2: 2, checkpointSeq: 0, start: 32, end: 100 },
      walRestarted: false,
      pageSize: 4096,
      dbPages: 3,
      frames: 3,
      commits: 1,
      pages: 3,
      commitsAfter: "2026-12-01T00:00:00.000Z",
      commitsBefore: "2026-12-01T00:00:01.000Z",
      storedAt: "2026-12-01T00:00:01.000Z",
      size: stored.size,
      content: stored.content,
    });
  }

  // The destination archived the first segment itself (same cluster, same bytes): not copied.
  await walPush(dst, path.join(dir, WAL[0]!), { cluster: "main" });
  const dry = await copySnapshots(src, dst, { dryRun: true });
  assert.deepEqual(dry.records, { wal: { copied: 2, skipped: 1 }, segments: { copied: 2, skipped: 0 } });
  assert.equal((await dst.records.list(segmentKind)).length, 0, "a dry run copies nothing");

  const before = dst.writeStats.bytesAdded;
  const r = await copySnapshots(src, dst);
  assert.deepEqual(r.records, { wal: { copied: 2, skipped: 1 }, segments: { copied: 2, skipped: 0 } });
  // Both segments hold the same pages: stored once in the destination.
  const added = dst.writeStats.bytesAdded - before;
  assert.ok(added < 300_000 + 3 * 4100 + 2000, `copy added ${added} bytes`);

  for (const name of WAL) {
    const found = await findWal(dst, "main", name);
    assert.equal(found.length, 1, `${name} found by its label in the destination`);
    const out = path.join(dir, `fetched-${name}`);
    assert.equal((await walFetch(dst, name, out)).found, true);
    assert.deepEqual(await fs.readFile(out), files.get(name));
  }
  const copied = (await dst.records.list(walKind)).filter((x) => x.record.copiedFrom);
  assert.equal(copied.length, 2);
  for (const c of copied) assert.match(c.record.copiedFrom!, new RegExp(`^${src.config.id}:[0-9a-f]{64}$`));
  const segs = await listSegments(dst, "sqlite:/data/app.db");
  assert.deepEqual(
    segs.map((s) => s.doc.index),
    [0, 1],
  );
  for (const s of segs) {
    const got = new Map<number, Buffer>();
    for await (const p of segmentPages(dst, s.doc, s.id)) got.set(p.pgno, Buffer.from(p.page));
    assert.deepEqual(got, pages);
  }

  const again = await copySnapshots(src, dst);
  assert.deepEqual(again.records, { wal: { copied: 0, skipped: 3 }, segments: { copied: 0, skipped: 2 } });
  assert.equal(again.bytesAdded, 0);
  // A third repository copying from the copy gets each record once as well.
  const third = await Repository.init(memoryBackend(), "three", params);
  await copySnapshots(dst, third);
  await copySnapshots(src, third);
  assert.equal((await third.records.list(walKind)).length, 3);
  assert.equal((await third.records.list(segmentKind)).length, 2);
  await Promise.all([src.close(), dst.close(), third.close()]);
});
