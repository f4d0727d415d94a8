// The gc protocol of docs/gc.md, below the CLI: sessions, plans that wait for them, backups that
// never deduplicate against doomed packs, sweeps that keep what a newer snapshot needs, index
// files superseded by a rewrite, a crash at every step of a prune, stale sessions, one prune at
// a time.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import os from "node:os";
import { test } from "node:test";
import type { Backend } from "../../src/backend/backend.js";
import type { MemoryBackend } from "../../src/backend/memory.js";
import { LifeboatError } from "../../src/core/errors.js";
import { processIdentity } from "../../src/core/process-identity.js";
import { check } from "../../src/ops/check/check.js";
import { prune } from "../../src/ops/prune/prune.js";
import { names } from "../../src/repo/config.js";
import {
  endSession,
  listPlans,
  liveSessions,
  SESSION_STALE_MS,
  startSession,
} from "../../src/repo/gc-plan.js";
import { planKind, sessionKind } from "../../src/repo/records-gc.js";
import { Repository } from "../../src/repo/repository.js";
import type { TreeSource } from "../../src/snapshot/source.js";
import { type SnapshotOptions, takeSnapshot } from "../../src/snapshot/take.js";
import { walkTree } from "../../src/snapshot/walker.js";
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
  rejectsWith,
} from "./support.js";

const opts: SnapshotOptions = { host: "h", anomaly: false };

const snap = (repo: Repository, spec: MemDir, at: string) =>
  takeSnapshot(repo, memSource(spec, [at]).source, opts);
const packIds = (be: MemoryBackend) => objectsUnder(be, "data/").map((n) => n.split("/")[2]!);

/** Every pack an index file in storage says holds the blob (whatever is in force). */
async function packsHolding(repo: Repository, be: MemoryBackend, id: Buffer): Promise<string[]> {
  const out: string[] = [];
  for (const name of objectsUnder(be, "index/"))
    for (const p of (await repo.readIndexFile(name.slice("index/".length))).packs)
      if (p.blobs.some((b) => b.id.equals(id))) out.push(p.id);
  return out;
}

/** Reads every blob of a snapshot through `repo` (its own in-memory index, as it is now). */
async function readSnapshot(repo: Repository, tree: string): Promise<number> {
  let n = 0;
  await walkTree(repo, tree, {
    node: async (node) => {
      for (const c of node.content ?? []) {
        await repo.loadBlob(Buffer.from(c, "hex"));
        n++;
      }
      return undefined;
    },
  });
  return n;
}

/** A pid that belonged to a process of this host that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", ""]);
  assert.equal(r.status, 0);
  return r.pid!;
}

test("a plan waits for the backup sessions alive when it was stored, and only for those", async () => {
  const { be, repo } = await newRepo();
  await snap(repo, { k: file(noise(5000)) }, "/keep");
  const gone = await snap(repo, { g: file(noise(5000)) }, "/gone");
  await repo.deleteSnapshot(gone.snapshotId);
  const before = packIds(be);
  const running = await startSession(repo, "backup");
  const r1 = await prune(repo);
  assert.deepEqual(r1.swept, []);
  assert.equal(r1.waiting.length, 1);
  assert.match(r1.waiting[0]!.reason, /waiting for 1 backup/);
  const [plan] = await listPlans(repo);
  assert.ok(plan);
  assert.deepEqual(plan.waitFor, [running.id]);
  assert.equal(plan.packs.length, 2, "the forgotten snapshot's data and tree packs");
  assert.deepEqual(packIds(be), before, "nothing deleted while the backup runs");
  // A backup that starts once the plan is stored reads it; the plan does not wait for it.
  const later = await startSession(repo, "backup");
  await endSession(repo, running);
  const r2 = await prune(repo);
  assert.equal(r2.swept.length, 1);
  assert.equal(r2.swept[0]!.plan, plan.id);
  assert.equal(r2.swept[0]!.deletedPacks, 2);
  assert.deepEqual(packIds(be).sort(), before.filter((p) => !plan.packs.includes(p)).sort());
  assert.deepEqual(await listPlans(repo), []);
  await endSession(repo, later);
  await repo.close();
  assert.equal((await assertWhole(be)).snapshots, 1);
});

test("a backup started after a plan never deduplicates against its packs, and reads its own copies after the sweep", async () => {
  const { be, repo } = await newRepo();
  const X = noise(900); // below the chunker's minimum: one blob
  const first = await snap(repo, { x: file(X) }, "/one");
  // Another process that loaded the index before the plan existed.
  const other = await Repository.open(be, PW);
  await repo.deleteSnapshot(first.snapshotId);
  const running = await startSession(repo, "backup");
  await prune(repo);
  const [plan] = await listPlans(repo);
  assert.ok(plan);
  const xid = other.blobId(X);
  const doomed = await packsHolding(repo, be, xid);
  assert.equal(doomed.length, 1);
  assert.ok(plan.packs.includes(doomed[0]!));

  const second = await snap(other, { x: file(X) }, "/two");
  assert.ok(second.summary.blobsAdded >= 2, "X and its tree were stored again");
  const holders = await packsHolding(repo, be, xid);
  assert.equal(holders.length, 2);
  assert.ok(
    holders.some((p) => !plan.packs.includes(p)),
    "a copy outside the plan",
  );

  await endSession(repo, running);
  const r = await prune(repo);
  assert.equal(r.swept[0]?.keptPacks, 0, "the new snapshot has copies of its own");
  assert.ok(!(await be.stat(names.pack(doomed[0]!))), "the planned pack is gone");
  await repo.close();
  await assertWhole(be);
  // The process that wrote the snapshot reads it back through its own index, which knew the
  // doomed copy first.
  assert.equal(await readSnapshot(other, second.snapshot.tree), 1);
  await other.close();
});

test("a sweep keeps a planned pack that a snapshot written meanwhile needs", async () => {
  const { be, repo } = await newRepo();
  const X = noise(6000);
  const first = await snap(repo, { x: file(X) }, "/one");
  await repo.deleteSnapshot(first.snapshotId);
  // A backup on another host, started before the plan: paused while it lists its files.
  const other = await Repository.open(be, PW);
  let release = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let listed = () => {};
  const inside = new Promise<void>((r) => {
    listed = r;
  });
  const src: TreeSource = {
    paths: ["/two"],
    root: {
      path: "/",
      async entries() {
        listed();
        await gate;
        return memSource({ x: file(X) }).source.root.entries();
      },
    },
  };
  const pending = takeSnapshot(other, src, opts);
  await inside;
  const [session] = await liveSessions(repo);
  assert.equal(session?.kind, "backup", "the backup announced itself before listing anything");
  const r1 = await prune(repo);
  assert.equal(r1.mark.unusedPacks.length, 2);
  assert.deepEqual(r1.swept, []);
  const [plan] = await listPlans(repo);
  assert.deepEqual(plan?.waitFor, [session.id]);
  release();
  const second = await pending;
  assert.deepEqual(objectsUnder(be, "sessions/"), [], "and removed its session when done");
  assert.equal(second.summary.blobsAdded, 0, "it deduplicated against the packs now planned");
  const r2 = await prune(repo);
  assert.equal(r2.swept.length, 1);
  assert.equal(r2.swept[0]!.keptPacks, 2);
  assert.equal(r2.swept[0]!.deletedPacks, 0);
  for (const p of plan!.packs) assert.ok(await be.stat(names.pack(p)), `planned pack ${p} kept`);
  assert.deepEqual(await listPlans(repo), []);
  await repo.close();
  await other.close();
  assert.equal((await assertWhole(be)).snapshots, 1);
});

test("index files superseded by a rewrite are ignored, and the next prune deletes them", async () => {
  const { be, repo } = await newRepo();
  const A = noise(900); // one blob each
  const B = noise(900);
  const a = await snap(repo, { a: file(A) }, "/a");
  await snap(repo, { b: file(B) }, "/b");
  await repo.close();
  const early = await Repository.open(be, PW); // loaded before the rewrite
  const loaded = early.indexFiles().loaded;
  assert.equal(loaded.length, 2);
  // A prune that stopped after its first sweep step: the new index lists only b's packs and
  // supersedes both files, which are still stored.
  await early.deleteSnapshot(a.snapshotId);
  // Each backup wrote one index file (its data and tree packs): keep the one without A.
  const files = await Promise.all(loaded.map((f) => early.readIndexFile(f)));
  const hasA = (f: (typeof files)[number]) =>
    f.packs.some((p) => p.blobs.some((x) => x.id.equals(early.blobId(A))));
  const bPacks = files.filter((f) => !hasA(f)).flatMap((f) => f.packs);
  assert.equal(bPacks.length, 2);
  const rewritten = await early.writeIndexFile({ supersedes: [...loaded], packs: bPacks });
  const fresh = await Repository.open(be, PW);
  assert.deepEqual(fresh.indexFiles().loaded, [rewritten]);
  assert.deepEqual([...fresh.indexFiles().superseded].sort(), [...loaded].sort());
  assert.equal(fresh.isIndexed(fresh.blobId(A)), false, "a's packs are listed only by superseded files");
  assert.equal(fresh.isIndexed(fresh.blobId(B)), true);
  // The process that loaded the old files reads the index again at its next catch-up.
  assert.equal(early.isIndexed(early.blobId(A)), true);
  await early.catchUpIndex();
  assert.equal(early.isIndexed(early.blobId(A)), false);
  await early.close();
  // The next prune removes a's packs (now unindexed) and supersedes and deletes the old files.
  const r = await prune(fresh);
  assert.deepEqual(r.mark.unindexedPacks.length, 2);
  assert.equal(r.swept[0]?.deletedPacks, 2);
  const left = objectsUnder(be, "index/").map((n) => n.slice("index/".length));
  assert.equal(left.length, 1);
  assert.ok(!loaded.some((f) => left.includes(f)));
  await fresh.close();
  assert.equal((await assertWhole(be)).snapshots, 1);
});

/** Storage that takes `n` more writes (puts and deletes) and then refuses all, as if its
 * writer had died there; reads keep working. */
function dyingAfter(inner: MemoryBackend, n: number): Backend & { writes: number } {
  const state = { writes: 0 };
  const die = (name: string) => new LifeboatError("UNREACHABLE", `process died before ${name}`);
  return Object.assign(state, {
    ...inner,
    async put(name: string, data: Buffer, o?: Parameters<Backend["put"]>[2]) {
      if (state.writes >= n) throw die(`writing ${name}`);
      state.writes++;
      return inner.put(name, data, o);
    },
    async delete(name: string) {
      if (state.writes >= n) throw die(`deleting ${name}`);
      state.writes++;
      return inner.delete(name);
    },
  });
}

test("a prune that dies after its Nth write, for every N, leaves every snapshot readable; the next prune finishes", async () => {
  // Snapshots sharing data, two of them forgotten, packs of several blobs (some partly used, so
  // prune repacks): mark, repack, plan and every sweep step write something.
  const { be: base, repo } = await newRepo({ packSize: 12 * 1024 });
  const shared = noise(4000);
  const snaps = [];
  for (let i = 0; i < 5; i++)
    snaps.push(
      await snap(
        repo,
        { s: file(shared), own: file(noise(3000 + i)), more: { m: file(noise(2000)) } },
        `/p${i}`,
      ),
    );
  await repo.deleteSnapshot(snaps[1]!.snapshotId);
  await repo.deleteSnapshot(snaps[3]!.snapshotId);
  await repo.close();
  const kept = (await assertWhole(base)).snapshots;
  assert.equal(kept, 3);

  let finished = false;
  let n = 0;
  for (; !finished && n < 300; n++) {
    const be = cloneBackend(base);
    const dying = dyingAfter(be, n);
    const r = await Repository.open(dying, PW);
    try {
      await prune(r, { maxUnusedPercent: 0 });
      finished = true;
    } catch (e) {
      assert.ok(e instanceof LifeboatError && e.code === "UNREACHABLE", String(e));
    }
    await r.close();
    // The dead process's sessions stop counting (tested below); here they are simply gone.
    for (const s of objectsUnder(be, "sessions/")) await be.delete(s);
    assert.equal((await assertWhole(be, `after ${n} writes`)).snapshots, kept);
    // The next prune completes and leaves a clean repository.
    const again = await Repository.open(be, PW);
    await prune(again, { maxUnusedPercent: 0 });
    const report = await check(again, { readData: true });
    assert.deepEqual(report.problems, [], `after ${n} writes`);
    assert.deepEqual(report.unindexedPacks, [], `after ${n} writes`);
    assert.deepEqual(await listPlans(again), [], `after ${n} writes`);
    assert.deepEqual(again.indexFiles().superseded, [], `after ${n} writes`);
    await again.close();
    assert.equal((await assertWhole(be)).snapshots, kept);
  }
  assert.ok(finished, "prune never finished");
  assert.ok(n > 10, `prune wrote only ${n} objects: the scenario does not exercise the sweep`);
});

test("stale sessions stop counting: older than 24 hours, or a dead process of this host", async () => {
  const { be, repo } = await newRepo();
  const now = Date.now();
  const at = (ms: number) => new Date(ms).toISOString();
  const write = async (started: number, host: string, pid: number, proc?: string) =>
    (
      await repo.records.write(sessionKind, {
        started: at(started),
        host,
        pid,
        kind: "backup",
        ...(proc ? { proc } : {}),
      })
    ).id;
  const me = os.hostname();
  const old = await write(now - SESSION_STALE_MS - 60_000, me, process.pid);
  const oldElsewhere = await write(now - SESSION_STALE_MS - 60_000, "elsewhere", 1);
  const dead = await write(now - 1000, me, deadPid());
  const elsewhere = await write(now - 1000, "elsewhere", 1);
  // A pid reused after a kill -9: the process with that pid runs, but it is not the one that
  // stored the session (found by the torture campaign: a killed prune's session blocked the
  // next prune, its pid taken by another process on a busy machine).
  const parent = processIdentity(process.ppid);
  const reused = parent ? await write(now - 1000, me, process.ppid, `${parent.split(":")[0]}:1`) : undefined;
  const aliveRecord = parent
    ? await repo.records.write(sessionKind, {
        started: at(now - 1000),
        host: me,
        pid: process.ppid,
        kind: "backup",
        proc: parent,
      })
    : undefined;
  const alive = aliveRecord?.id;
  const mine = (await startSession(repo, "backup")).id;
  const expected = [elsewhere, mine, ...(alive ? [alive] : [])];
  const live = (await liveSessions(repo)).map((s) => s.id);
  assert.deepEqual([...live].sort(), expected.sort());
  if (reused) assert.ok(!live.includes(reused), "a reused pid does not keep a dead session alive");
  if (aliveRecord) await repo.records.delete(aliveRecord.object);
  assert.deepEqual(await liveSessions(repo, now + SESSION_STALE_MS + 60_000), []);

  // Plans made while those sessions looked alive: the stale ones no longer hold them back.
  const gone = await snap(repo, { g: file(noise(4000)) }, "/gone");
  await repo.deleteSnapshot(gone.snapshotId);
  await repo.close();
  const r = await Repository.open(be, PW);
  const packs = packIds(be);
  await r.records.write(planKind, {
    created: at(now - 2000),
    host: me,
    packs,
    waitFor: [old, oldElsewhere, dead],
  });
  const r1 = await prune(r);
  assert.equal(r1.swept.length, 1, JSON.stringify(r1.waiting));
  assert.equal(r1.swept[0]!.deletedPacks, 2);
  // ... while a live one does.
  const gone2 = await snap(r, { g: file(noise(4000)) }, "/gone2");
  await r.deleteSnapshot(gone2.snapshotId);
  await r.records.write(planKind, { created: at(now), host: me, packs: packIds(be), waitFor: [elsewhere] });
  const r2 = await prune(r);
  assert.ok(r2.waiting.some((w) => /host elsewhere, pid 1/.test(w.reason)));
  assert.equal(r2.swept.length, 0);
  await r.close();
});

test("only one prune at a time: another live prune session refuses with REPO_BUSY (exit 17)", async () => {
  const { repo } = await newRepo();
  const other = await repo.records.write(sessionKind, {
    started: new Date().toISOString(),
    host: "elsewhere",
    pid: 4242,
    kind: "prune",
  });
  const e = await rejectsWith(prune(repo), "REPO_BUSY");
  assert.equal(e.exitCode, 17);
  assert.match(e.message, /host elsewhere, pid 4242/);
  assert.deepEqual(
    (await repo.records.list(sessionKind)).map((s) => s.id),
    [other.id],
    "the refused prune removed its own session",
  );
  // A dead prune of this host, or one older than a day, does not hold prune back.
  await repo.records.delete(other.object);
  await repo.records.write(sessionKind, {
    started: new Date().toISOString(),
    host: os.hostname(),
    pid: deadPid(),
    kind: "prune",
  });
  await repo.records.write(sessionKind, {
    started: new Date(Date.now() - SESSION_STALE_MS - 1000).toISOString(),
    host: "elsewhere",
    pid: 1,
    kind: "prune",
  });
  await prune(repo);
  await repo.close();
});

test("only one prune at a time, whatever the clocks say: a prune whose clock runs behind does not start beside a running one", async () => {
  // A prune on a host whose clock is 5 s ahead stored its session, listed the sessions, saw only
  // its own and is now running. A prune started here afterwards must refuse, although its own
  // session says it started earlier.
  const { repo } = await newRepo();
  await repo.records.write(sessionKind, {
    started: new Date(Date.now() + 5000).toISOString(),
    host: "fast-clock",
    pid: 7,
    kind: "prune",
  });
  const e = await rejectsWith(prune(repo), "REPO_BUSY");
  assert.match(e.message, /host fast-clock, pid 7/);
  await repo.close();
});

test("two prunes started together: at most one runs, the other refuses with REPO_BUSY", async () => {
  for (let round = 0; round < 5; round++) {
    const { be, repo } = await newRepo();
    const gone = await snap(repo, { g: file(noise(3000)) }, "/g");
    await repo.deleteSnapshot(gone.snapshotId);
    const second = await Repository.open(be, PW);
    const results = await Promise.allSettled([prune(repo), prune(second)]);
    const ran = results.filter((r) => r.status === "fulfilled").length;
    assert.ok(ran <= 1, `round ${round}: ${ran} prunes ran at once`);
    for (const r of results)
      if (r.status === "rejected")
        assert.ok(r.reason instanceof LifeboatError && r.reason.code === "REPO_BUSY", String(r.reason));
    await repo.close();
    await second.close();
  }
});
