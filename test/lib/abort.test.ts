// AbortSignal for the long operations (docs/architecture.md, "Long operations"): takeSnapshot,
// restore, check, prune and copy stop when their signal aborts, stop doing anything once they
// have returned, and leave what a crash there would leave: the next run completes and check is
// clean.
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import type { Backend } from "../../src/backend/backend.js";
import type { MemoryBackend } from "../../src/backend/memory.js";
import { check } from "../../src/ops/check/check.js";
import { copySnapshots } from "../../src/ops/copy/copy.js";
import { prune } from "../../src/ops/prune/prune.js";
import { restore } from "../../src/ops/restore/restore.js";
import { listPlans } from "../../src/repo/gc-plan.js";
import { Repository } from "../../src/repo/repository.js";
import type { SourceEntry, TreeSource } from "../../src/snapshot/source.js";
import { type SnapshotOptions, takeSnapshot } from "../../src/snapshot/take.js";
import {
  assertWhole,
  cloneBackend,
  file,
  type MemDir,
  memSource,
  newRepo,
  noise,
  objectsUnder,
  PW,
} from "./support.js";

const opts: SnapshotOptions = { host: "h", anomaly: false };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let tmp = "";
before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-abort-"));
});
after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

async function rejectsAborted(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (e: unknown) => (e as Error).name === "AbortError");
}

/** What storage holds, by name and size. */
const state = (be: MemoryBackend) => [...be.objects()].map(([n, d]) => `${n} ${d.length}`).join("\n");

/** Files below a folder with their sizes (-1: a folder). */
async function listing(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const e of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    const p = path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
    const st = await fs.lstat(p).catch(() => undefined); // (gone since the listing: a change too)
    out.set(path.relative(dir, p), st === undefined ? -2 : st.isFile() ? st.size : -1);
  }
  return out;
}

/** `folders` folders of `files` files each, of a few KiB. */
function tree(folders: number, files: number): MemDir {
  const spec: MemDir = {};
  for (let d = 0; d < folders; d++) {
    const dir: MemDir = {};
    for (let f = 0; f < files; f++) dir[`f${f}`] = file(noise(2000 + f));
    spec[`d${d}`] = dir;
  }
  return spec;
}

/** A source over `spec` that aborts `ac` when the `n`th file is read (and counts reads after it). */
function abortingSource(spec: MemDir, n: number, ac: AbortController, readsAfter = { count: 0 }): TreeSource {
  const inner = memSource(spec).source;
  let reads = 0;
  const wrap = (dir: TreeSource["root"]): TreeSource["root"] => ({
    path: dir.path,
    async entries() {
      return (await dir.entries()).map((e): SourceEntry => {
        if (e.kind === "dir") return { ...e, dir: wrap(e.dir) };
        if (e.kind !== "file" || e.content.kind !== "stream") return e;
        const read = e.content.read;
        return {
          ...e,
          content: {
            kind: "stream",
            read: async function* () {
              if (++reads === n) ac.abort();
              if (reads > n) readsAfter.count++;
              yield* read();
            },
          },
        };
      });
    },
  });
  return { ...inner, root: wrap(inner.root) };
}

test("takeSnapshot: stops when aborted, writes no snapshot, keeps what it stored for the next run", async () => {
  const { be, repo } = await newRepo();
  const spec = tree(6, 10);
  const ac = new AbortController();
  const readsAfter = { count: 0 };
  await rejectsAborted(
    takeSnapshot(repo, abortingSource(spec, 20, ac, readsAfter), { ...opts, signal: ac.signal }),
  );
  assert.equal(readsAfter.count, 0, "no file is read once the backup was stopped");
  const right = state(be);
  await sleep(300);
  assert.equal(state(be), right, "nothing was written after takeSnapshot returned");
  assert.deepEqual(objectsUnder(be, "snapshots/"), []);
  assert.deepEqual(objectsUnder(be, "sessions/"), [], "its session is gone");
  await assertWhole(be);
  const stored = repo.writeStats.blobsAdded;
  assert.ok(stored > 0, "what was read before the abort was stored");
  // The next run completes, and does not store again what the aborted one stored: no blob is
  // in two packs.
  const fresh = await Repository.open(be, PW);
  const r = await takeSnapshot(fresh, memSource(spec).source, opts);
  assert.equal(r.summary.files, 60);
  assert.ok(r.summary.blobsAdded > 0);
  const entries: string[] = [];
  for (const name of objectsUnder(be, "index/"))
    for (const p of (await fresh.readIndexFile(name.slice("index/".length))).packs)
      for (const b of p.blobs) entries.push(b.id.toString("hex"));
  assert.equal(new Set(entries).size, entries.length, "a blob was stored twice");
  const report = await check(fresh, { readData: true });
  assert.deepEqual(report.problems, []);
  assert.deepEqual(report.unindexedPacks, []);
  await fresh.close();
  await repo.close();
});

test("restore: stops when aborted, leaves only whole files, and a second run completes", async () => {
  // Small packs: a restore reads pack ranges, and stops after the ranges already read.
  const { repo } = await newRepo({ packSize: 4 * 1024 });
  const spec = tree(10, 30);
  const snap = await takeSnapshot(repo, memSource(spec).source, opts);
  const target = path.join(tmp, "restore");
  const ac = new AbortController();
  await rejectsAborted(
    restore(repo, snap.snapshot, {
      target,
      signal: ac.signal,
      onProgress: () => ac.abort(),
    }),
  );
  const right = await listing(target);
  await sleep(300);
  assert.deepEqual(await listing(target), right, "nothing was written after restore returned");
  const files = [...right].filter(([, size]) => size >= 0);
  // Only the files of the ranges already read when it stopped are finished (a few packs).
  assert.ok(files.length <= 70, `${files.length} files restored after stopping at the first`);
  for (const [p] of files) {
    assert.ok(!path.basename(p).startsWith("."), `a temporary file was left: ${p}`);
    const [d, f] = p.split("/");
    const want = (spec[d!] as MemDir)[f!] as { data: Buffer };
    assert.deepEqual(await fs.readFile(path.join(target, p)), want.data, `${p} is whole`);
  }
  const again = await restore(repo, snap.snapshot, { target });
  assert.deepEqual(again.errors, []);
  assert.equal(again.files, 300);
  assert.equal(again.filesSkipped, files.length, "finished files are not written again");
  for (const [d, dir] of Object.entries(spec))
    for (const [f, v] of Object.entries(dir as MemDir))
      assert.deepEqual(await fs.readFile(path.join(target, d, f)), (v as { data: Buffer }).data);
  await repo.close();
});

test("check: stops when aborted and changes nothing; a second run is clean", async () => {
  const { be, repo } = await newRepo({ packSize: 4 * 1024 });
  await takeSnapshot(repo, memSource(tree(6, 10)).source, opts);
  assert.ok(objectsUnder(be, "data/").length > 20);
  await repo.close();
  const before = state(be);
  let packReads = 0;
  const counting: Backend = {
    ...be,
    get: (name, o) => {
      if (name.startsWith("data/")) packReads++;
      return be.get(name, o);
    },
  };
  const r = await Repository.open(counting, PW);
  const ac = new AbortController();
  await rejectsAborted(check(r, { readData: true, signal: ac.signal, onProgress: () => ac.abort() }));
  const reads = packReads;
  await sleep(200);
  assert.equal(packReads, reads, "no pack was read after check returned");
  assert.ok(reads <= 8, `${reads} packs read after the abort was asked for`);
  assert.equal(state(be), before, "check wrote nothing");
  const report = await check(r, { readData: true });
  assert.deepEqual(report.problems, []);
  assert.equal(report.packsRead, objectsUnder(be, "data/").length);
  await r.close();
});

test("prune: aborted at each of its steps, it leaves every snapshot readable and the next prune finishes", async () => {
  // Forgotten snapshots and partly used packs: prune marks, repacks, plans and sweeps.
  const { be: base, repo } = await newRepo({ packSize: 12 * 1024 });
  const shared = noise(3000);
  const ids = [];
  for (let i = 0; i < 4; i++)
    ids.push(
      (
        await takeSnapshot(
          repo,
          memSource({ s: file(shared), own: file(noise(4000)) }, [`/p${i}`]).source,
          opts,
        )
      ).snapshotId,
    );
  await repo.deleteSnapshot(ids[0]!);
  await repo.deleteSnapshot(ids[2]!);
  await repo.close();

  const steps: string[] = [];
  const dry = await Repository.open(cloneBackend(base), PW);
  await prune(dry, { maxUnusedPercent: 0, onStep: (m) => steps.push(m) });
  await dry.close();
  assert.ok(steps.length >= 4, steps.join("; "));
  for (let k = 1; k < steps.length; k++) {
    const be = cloneBackend(base);
    const r = await Repository.open(be, PW);
    const ac = new AbortController();
    let seen = 0;
    await rejectsAborted(
      prune(r, {
        maxUnusedPercent: 0,
        signal: ac.signal,
        onStep: () => {
          if (++seen === k) ac.abort();
        },
      }),
    );
    const right = state(be);
    await sleep(50);
    assert.equal(state(be), right, `after step ${k}: nothing written after prune returned`);
    await r.close();
    assert.deepEqual(objectsUnder(be, "sessions/"), [], `after step ${k}: its session is gone`);
    assert.equal((await assertWhole(be, `stopped after step ${k} (${steps[k - 1]})`)).snapshots, 2);
    const again = await Repository.open(be, PW);
    await prune(again, { maxUnusedPercent: 0 });
    const report = await check(again, { readData: true });
    assert.deepEqual(report.problems, []);
    assert.deepEqual(report.unindexedPacks, []);
    assert.deepEqual(await listPlans(again), []);
    await again.close();
    assert.equal((await assertWhole(be)).snapshots, 2);
  }
});

test("copy: stops when aborted between snapshots or inside one; the next copy completes and skips what was copied", async () => {
  const { be: srcBe, repo: src } = await newRepo();
  for (let i = 0; i < 4; i++) await takeSnapshot(src, memSource(tree(3, 5), [`/s${i}`]).source, opts);
  const { be: dstBe, repo: dst } = await newRepo();

  // Between snapshots: after the second one is copied.
  const ac = new AbortController();
  let copied = 0;
  await rejectsAborted(
    copySnapshots(src, dst, {
      signal: ac.signal,
      onCopied: () => {
        if (++copied === 2) ac.abort();
      },
    }),
  );
  const right = state(dstBe);
  await sleep(100);
  assert.equal(state(dstBe), right, "nothing was written after copy returned");
  assert.equal(objectsUnder(dstBe, "snapshots/").length, 2);
  assert.deepEqual(objectsUnder(dstBe, "sessions/"), []);
  assert.equal((await assertWhole(dstBe)).snapshots, 2);

  // Inside a snapshot: as soon as bytes flow.
  const ac2 = new AbortController();
  await rejectsAborted(copySnapshots(src, dst, { signal: ac2.signal, onProgress: () => ac2.abort() }));
  assert.equal(objectsUnder(dstBe, "snapshots/").length, 2);
  await assertWhole(dstBe);

  const rest = await copySnapshots(src, dst);
  assert.equal(rest.copied.length, 2);
  assert.equal(rest.skipped.length, 2);
  assert.equal(objectsUnder(dstBe, "snapshots/").length, 4);
  const report = await check(dst, { readData: true });
  assert.deepEqual(report.problems, []);
  assert.deepEqual(report.unindexedPacks, []);
  assert.equal((await assertWhole(dstBe)).snapshots, 4);
  assert.equal((await assertWhole(srcBe)).snapshots, 4);
  await src.close();
  await dst.close();
});
