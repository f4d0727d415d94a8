// copy beside `forget --prune`: a snapshot listed for copying and then forgotten and pruned in the
// source is skipped as forgotten, not reported as damage (found by the soak at 100 rounds: copy
// exited 14, "referenced but not in the index", or 1, "pack does not exist"); the others copy.
import assert from "node:assert/strict";
import { test } from "node:test";
import { copySnapshots } from "../../src/ops/copy/copy.js";
import { prune } from "../../src/ops/prune/prune.js";
import { type SnapshotOptions, takeSnapshot } from "../../src/snapshot/take.js";
import { assertWhole, file, memSource, newRepo, noise } from "./support.js";

const opts: SnapshotOptions = { host: "h", anomaly: false };

test("a snapshot forgotten and pruned in the source while copy runs is skipped as forgotten", async () => {
  const { repo: src } = await newRepo();
  const { be: dstBe, repo: dst } = await newRepo();
  const kept = await takeSnapshot(src, memSource({ k: file(noise(40_000)) }, ["/k"]).source, opts);
  const gone = await takeSnapshot(src, memSource({ g: file(noise(40_000)) }, ["/g"]).source, opts);
  const listed = await src.listSnapshots();
  assert.equal(listed.length, 2);
  // What `forget --prune` in another process does between copy's listing and its reads.
  await src.deleteSnapshot(gone.snapshotId);
  await prune(src);
  const r = await copySnapshots(src, dst, { snapshots: listed });
  assert.deepEqual(r.forgotten, [gone.snapshotId]);
  assert.deepEqual(
    r.copied.map((c) => c.from),
    [kept.snapshotId],
  );
  await dst.close();
  await src.close();
  assert.equal((await assertWhole(dstBe)).snapshots, 1, "the destination is whole and holds the kept one");
});
