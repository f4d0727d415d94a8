/**
 * restore and check --read-data hold no session: a prune may repack and delete the packs they
 * read at any moment (issue 18, item 5). Here a prune runs, to its end, at the very moment a
 * reader asks for its first pack, so everything that reader planned from its index is gone;
 * it must follow the blobs to where they moved and succeed. (test/cli/prune-readers.test.ts
 * runs the same beside real processes.)
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import type { Backend } from "../../src/backend/backend.js";
import type { MemoryBackend } from "../../src/backend/memory.js";
import { check } from "../../src/ops/check/check.js";
import { forgetIds } from "../../src/ops/forget/forget.js";
import { prune } from "../../src/ops/prune/prune.js";
import { restore } from "../../src/ops/restore/restore.js";
import { findSnapshot } from "../../src/repo/find-snapshot.js";
import { Repository } from "../../src/repo/repository.js";
import type { SnapshotWithId } from "../../src/repo/snapshot.js";
import { type SnapshotOptions, takeSnapshot } from "../../src/snapshot/take.js";
import { walkTree } from "../../src/snapshot/walker.js";
import { file, type MemDir, memSource, newRepo, noise, PW } from "./support.js";

let tmp = "";
before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-prune-readers-"));
});
after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const opts: SnapshotOptions = { host: "h", anomaly: false };

function folder(files: number, seed: number): MemDir {
  const d: MemDir = {};
  for (let i = 0; i < files; i++) d[`f${i}`] = file(noise(3000 + ((i * 7919 + seed) % 40_000)));
  return d;
}

/**
 * A repository with snapshot `whole` (keep/ and gone/) and snapshot `kept` (keep/ alone, its
 * blobs in `whole`'s packs): forgetting `whole` leaves those packs partly used, and a prune
 * with no unused space allowed repacks them, moving `kept`'s blobs.
 */
async function setup() {
  const { be, repo } = await newRepo();
  const keep = { a: folder(12, 1), b: folder(12, 2) };
  const whole = await takeSnapshot(repo, memSource({ keep, gone: folder(24, 3) }, ["/m"]).source, opts);
  const kept = await takeSnapshot(repo, memSource(keep, ["/k"]).source, opts);
  await repo.close();
  return { be, keep, wholeId: whole.snapshotId, keptId: kept.snapshotId };
}

/** A backend over `be` that runs `beforeFirst` (once) when the first pack is read, if armed. */
function pruningOnFirstRead(be: MemoryBackend, beforeFirst: () => Promise<void>) {
  const state = { armed: false, fired: false };
  const backend: Backend = {
    ...be,
    get: async (name, o) => {
      if (state.armed && !state.fired && name.startsWith("data/")) {
        state.fired = true;
        await beforeFirst();
      }
      return be.get(name, o);
    },
  };
  return { backend, state };
}

async function pruneAway(be: MemoryBackend, id: string): Promise<void> {
  const pruner = await Repository.open(be, PW);
  await forgetIds(pruner, [id]);
  const r = await prune(pruner, { maxUnusedPercent: 0 });
  assert.ok(r.mark.repackPacks.length > 0, "the prune repacks the packs the reader needs");
  assert.ok(r.swept.length > 0, "and deletes them at once");
  await pruner.close();
}

async function assertRestored(target: string, keep: MemDir): Promise<void> {
  for (const [d, files] of Object.entries(keep))
    for (const [f, v] of Object.entries(files as MemDir))
      assert.deepEqual(await fs.readFile(path.join(target, d, f)), (v as { data: Buffer }).data, `${d}/${f}`);
}

for (const treesFirst of [true, false]) {
  test(`restore follows blobs a prune moved after it read the index (${treesFirst ? "file data" : "trees and file data"})`, async () => {
    const { be, keep, wholeId, keptId } = await setup();
    const w = pruningOnFirstRead(be, () => pruneAway(be, wholeId));
    const repo = await Repository.open(w.backend, PW);
    const snap = (await repo.listSnapshots()).find((s) => s.id === keptId) as SnapshotWithId;
    // Trees read before the prune: only the file ranges find their packs gone. Otherwise the
    // first tree read does.
    if (treesFirst) await walkTree(repo, snap.tree, {});
    w.state.armed = true;
    const target = path.join(tmp, `restore-${treesFirst}`);
    const r = await restore(repo, snap, { target });
    assert.ok(w.state.fired, "the prune ran while the restore read");
    assert.deepEqual(r.errors, []);
    assert.equal(r.files, 24);
    await assertRestored(target, keep);
    await repo.close();
  });
}

test("check --read-data started before a prune's sweep checks again against the new index", async () => {
  const { be, wholeId, keptId } = await setup();
  const w = pruningOnFirstRead(be, () => pruneAway(be, wholeId));
  const repo = await Repository.open(w.backend, PW);
  const snap = (await repo.listSnapshots()).find((s) => s.id === keptId) as SnapshotWithId;
  await walkTree(repo, snap.tree, {});
  w.state.armed = true;
  const report = await check(repo, { readData: true });
  assert.ok(w.state.fired, "the prune ran while check read");
  assert.deepEqual(report.problems, []);
  assert.equal(report.snapshots, 1);
  await repo.close();
});

test("a blob whose pack a prune deletes between reading the blob and reading the pack's key is followed (copy, dump and mount read blobs one by one)", async () => {
  const { be, keep, wholeId, keptId } = await setup();
  // The prune runs right after the first read of a blob's bytes, before its pack's prefix
  // (the key) is read: the soak saw a copy fail so ("data/... does not exist").
  const state = { armed: false, fired: false };
  const backend: Backend = {
    ...be,
    get: async (name, o) => {
      const bytes = await be.get(name, o);
      // A read of a blob (not of the 40-byte prefix the key comes from): the first one of a
      // pack always comes before its key's.
      const blobRead = o?.length !== undefined && o.length > 64;
      if (state.armed && !state.fired && name.startsWith("data/") && blobRead) {
        state.fired = true;
        await pruneAway(be, wholeId);
      }
      return bytes;
    },
  };
  const repo = await Repository.open(backend, PW);
  const snap = (await repo.listSnapshots()).find((s) => s.id === keptId) as SnapshotWithId;
  const files = new Map<string, string[]>();
  await walkTree(repo, snap.tree, {
    node: (n, p) => {
      if (n.type === "file") files.set(p, n.content ?? []);
      return undefined;
    },
  });
  assert.equal(files.size, 24);
  state.armed = true;
  for (const [p, ids] of files) {
    const parts: Buffer[] = [];
    for (const id of ids) parts.push(await repo.loadBlob(Buffer.from(id, "hex")));
    const [d, f] = p.split("/").slice(-2) as [string, string];
    assert.deepEqual(
      Buffer.concat(parts),
      ((keep as Record<string, MemDir>)[d]![f] as { data: Buffer }).data,
      p,
    );
  }
  assert.ok(state.fired, "the prune ran between a blob's read and its key's");
  await repo.close();
});

test("a snapshot stored after a reader read the index restores and lists (restore latest right after a backup)", async () => {
  const { be, repo } = await newRepo();
  await takeSnapshot(repo, memSource({ old: folder(4, 7) }, ["/m"]).source, opts);
  await repo.close();
  const reader = await Repository.open(be, PW);
  // Another process backs up now: its index files come after the reader's.
  const fresh = { a: folder(6, 8), b: folder(6, 9) };
  const writer = await Repository.open(be, PW);
  await takeSnapshot(writer, memSource(fresh, ["/m"]).source, opts);
  await writer.close();
  const snap = await findSnapshot(reader, "latest");
  let files = 0;
  await walkTree(reader, snap.tree, {
    node: (n) => {
      if (n.type === "file") files++;
      return undefined;
    },
  });
  assert.equal(files, 12);
  const target = path.join(tmp, "restore-after-index");
  const r = await restore(reader, snap, { target });
  assert.deepEqual(r.errors, []);
  await assertRestored(target, fresh);
  await reader.close();
});
