// Retention of continuous SQLite replication (docs/replication.md, "Retention"), below the CLI:
// a real database in a temp folder written to while SqliteReplicator runs with short intervals
// against a repository in memory.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import Database from "better-sqlite3";
import type { Backend } from "../../src/backend/backend.js";
import { catalogKind } from "../../src/repo/records-segment-levels.js";
import { Repository } from "../../src/repo/repository.js";
import { sqliteSourceName } from "../../src/sources/sqlite.js";
import { segmentObjects } from "../../src/sources/sqlite-replicate/catalog.js";
import { type ReplicateOptions, SqliteReplicator } from "../../src/sources/sqlite-replicate/replicator.js";
import { planSqliteRestore, restoreReplica } from "../../src/sources/sqlite-replicate/restore.js";
import {
  listSegments,
  replicationOf,
  type SegmentDoc,
  writeSegment,
} from "../../src/sources/sqlite-replicate/segments.js";
import { newRepo, PW } from "./support.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let tmp = "";
before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-retention-"));
});
after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** A WAL database with one table; rows carry the time they were inserted. */
function createDb(file: string): void {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, pad BLOB NOT NULL)");
  db.close();
}

/**
 * Inserts a row every few ms from this process. It never waits for a lock (the replicator holds
 * SQLite's write lock for a moment now and then, and a wait here would block the event loop the
 * replicator runs on): a busy attempt is skipped. `committed` holds, per id, when its commit had
 * returned.
 */
function startWriter(file: string) {
  const db = new Database(file, { timeout: 0 });
  const insert = db.prepare("INSERT INTO t (at, pad) VALUES (?, ?)");
  const committed: { id: number; done: number }[] = [];
  const timer = setInterval(() => {
    try {
      const r = insert.run(Date.now(), randomBytes(300));
      committed.push({ id: Number(r.lastInsertRowid), done: Date.now() });
    } catch (e) {
      if (!String((e as { code?: string }).code).startsWith("SQLITE_BUSY")) throw e;
    }
  }, 5);
  return {
    committed,
    stop() {
      clearInterval(timer);
      db.close();
    },
  };
}

interface Events {
  snapshots: { id: string; generation: string; time: number; at: number }[];
  deleted: { generation: string; snapshot?: string; segments: number; at: number }[];
  segments: number;
}

/** Generations of `source` that have segments in levels stored (found through their catalogs
 * and the generations named by `also`), with how many. */
async function levelSegments(
  repo: Repository,
  source: string,
  also: string[] = [],
): Promise<Map<string, number>> {
  const ids = new Set(also);
  for (const c of await repo.records.list(catalogKind))
    if (c.record.source === source) ids.add(c.record.generation);
  const out = new Map<string, number>();
  for (const id of ids) {
    const n = (await segmentObjects(repo, id)).length;
    if (n > 0) out.set(id, n);
  }
  return out;
}

function replicator(repo: Repository, file: string, o: Partial<ReplicateOptions>) {
  const events: Events = { snapshots: [], deleted: [], segments: 0 };
  const rep = new SqliteReplicator(repo, file, {
    intervalMs: 100,
    snapshotIntervalMs: 400,
    retentionMs: 1000,
    ...o,
    onSnapshot: (e) =>
      events.snapshots.push({ id: e.id, generation: e.generation, time: Date.parse(e.time), at: Date.now() }),
    onDeleted: (e) => events.deleted.push({ ...e, at: Date.now() }),
    onSegment: () => events.segments++,
  });
  return { rep, events };
}

/** Restores as of T and checks the result: whole transactions in order, nothing after T, and
 * everything committed before the read that ends the restored state began. */
async function restoreAt(
  repo: Repository,
  source: string,
  T: number,
  committed: { id: number; done: number }[],
  target: string,
): Promise<number> {
  const plan = await planSqliteRestore(repo, source, new Date(T));
  assert.ok(plan, `nothing to restore as of ${new Date(T).toISOString()}`);
  await restoreReplica(repo, plan, target);
  const db = new Database(target, { readonly: true });
  try {
    const rows = db.prepare("SELECT id, at FROM t ORDER BY id").all() as { id: number; at: number }[];
    for (const [i, r] of rows.entries()) assert.equal(r.id, i + 1, "a gap-free prefix of the transactions");
    for (const r of rows) assert.ok(r.at <= T, `row ${r.id} was written after T`);
    const last = plan.segments.at(-1);
    const surelyIn = !last
      ? Date.parse(plan.stateTime)
      : last.kind === "levels"
        ? last.info.commitsAfter
        : Date.parse(last.seg.doc.commitsAfter);
    const missing = committed.filter((c) => c.done < surelyIn && c.id > rows.length);
    assert.deepEqual(missing, [], `committed before ${new Date(surelyIn).toISOString()} but not restored`);
    return rows.length;
  } finally {
    db.close();
  }
}

test("retention deletes a generation only once no point of the period needs it; every point of it still restores", async () => {
  const { repo } = await newRepo();
  const file = path.join(tmp, "app.db");
  createDb(file);
  const source = sqliteSourceName(file);
  const retentionMs = 1000;
  const writer = startWriter(file);
  const { rep, events } = replicator(repo, file, { retentionMs });
  const running = rep.run();
  // Until retention has deleted a few generations (about 4 s; longer on a loaded machine).
  const started = Date.now();
  while (Date.now() - started < 4000 || (events.deleted.length < 3 && Date.now() - started < 20_000))
    await sleep(100);
  writer.stop();
  const stoppedAt = Date.now();
  rep.stop();
  const summary = await running;
  // Retention may still run while the replicator winds down (slow on a loaded machine): the
  // period it kept ends at its last deletion, which can fall after the writer stopped.
  const periodEnd = Math.max(stoppedAt, ...events.deleted.map((d) => d.at));
  assert.ok(summary.generations >= 5, `${summary.generations} generations`);
  assert.ok(events.deleted.length >= 3, `retention deleted ${events.deleted.length} generations`);

  // Each deletion: a later generation's snapshot was stored and at least the period old then.
  for (const d of events.deleted) {
    const own = events.snapshots.find((s) => s.generation === d.generation);
    assert.ok(own, "a generation of this run");
    assert.equal(d.snapshot, own.id);
    const replacement = events.snapshots.find(
      (s) => s.time > own.time && s.at <= d.at && s.time <= d.at - retentionMs,
    );
    assert.ok(replacement, `generation ${d.generation} deleted while a point of the period needed it`);
  }
  // What remains: the current generation, no deleted one, no segment without its snapshot.
  const snaps = (await repo.listSnapshots()).filter((s) => s.paths[0] === source);
  const kept = new Set(snaps.map((s) => replicationOf(s)!.generation));
  assert.ok(kept.has(events.snapshots.at(-1)!.generation), "the current generation was deleted");
  for (const d of events.deleted)
    assert.ok(!kept.has(d.generation), `generation ${d.generation} still has its snapshot`);
  const segments = await levelSegments(
    repo,
    source,
    events.snapshots.map((s) => s.generation),
  );
  assert.ok(segments.size > 0);
  for (const g of segments.keys()) assert.ok(kept.has(g), `generation ${g} has segments but no snapshot`);
  // Every generation kept is needed: the oldest snapshot is at or before the start of the period.
  const oldest = Math.min(...snaps.map((s) => Date.parse(s.time)));
  assert.ok(oldest <= periodEnd - retentionMs, "the start of the period has no snapshot at or before it");

  // restore --time for points across the period (and the latest) still works.
  let previous = 0;
  for (let i = 0; i <= 10; i++) {
    const T = periodEnd - retentionMs + (i * retentionMs) / 10;
    const n = await restoreAt(repo, source, T, writer.committed, path.join(tmp, `at-${i}.db`));
    assert.ok(n >= previous, "later points hold at least as much");
    previous = n;
  }
  const latest = await restoreAt(repo, source, Date.now(), writer.committed, path.join(tmp, "latest.db"));
  assert.equal(latest, writer.committed.length, "every committed transaction, after replicate stopped");
  await repo.close();
});

function orphan(source: string, generation: string, hostname: string, ageMs: number): SegmentDoc {
  const t = (ms: number) => new Date(Date.now() - ms).toISOString();
  return {
    version: 1,
    source,
    hostname,
    generation,
    index: 0,
    wal: { salt1: 1, salt2: 2, checkpointSeq: 0, start: 32, end: 32 },
    walRestarted: false,
    pageSize: 4096,
    dbPages: 2,
    frames: 0,
    commits: 0,
    pages: 0,
    commitsAfter: t(ageMs + 1000),
    commitsBefore: t(ageMs),
    storedAt: t(ageMs),
    size: 0,
    content: [],
  };
}

test("segments without their snapshot are removed once older than the period; others' are left alone", async () => {
  const { repo } = await newRepo();
  const file = path.join(tmp, "orphans.db");
  createDb(file);
  const source = sqliteSourceName(file);
  const me = os.hostname();
  const hour = 3600_000;
  const old = await writeSegment(repo, orphan(source, "0ld", me, 2 * hour));
  const old2 = await writeSegment(repo, { ...orphan(source, "0ld", me, 2 * hour - 500), index: 1 });
  const recent = await writeSegment(repo, orphan(source, "recent", me, 60_000));
  const elsewhere = await writeSegment(repo, orphan(source, "elsewhere", "another-host", 2 * hour));
  const otherDb = await writeSegment(repo, orphan(sqliteSourceName("/srv/other.db"), "other", me, 2 * hour));
  const { rep, events } = replicator(repo, file, { retentionMs: hour, snapshotIntervalMs: hour });
  const running = rep.run();
  for (let waited = 0; waited < 10_000 && events.deleted.length === 0; waited += 50) await sleep(50);
  await sleep(300);
  rep.stop();
  await running;
  assert.deepEqual(
    events.deleted.map((d) => [d.generation, d.segments, d.snapshot]),
    [["0ld", 2, undefined]],
  );
  const left = new Set((await listSegments(repo, undefined)).map((s) => s.id));
  assert.ok(!left.has(old.id) && !left.has(old2.id), "the old orphans are gone");
  for (const s of [recent, elsewhere, otherDb]) assert.ok(left.has(s.id), `${s.doc.generation} was deleted`);
  assert.equal(events.snapshots.length, 1);
  assert.ok((await repo.listSnapshots()).some((s) => s.id === events.snapshots[0]!.id));
  await repo.close();
});

test("a generation whose snapshot was forgotten by hand loses its segments at the next run, once old enough", async () => {
  const { repo } = await newRepo();
  const file = path.join(tmp, "forgotten.db");
  createDb(file);
  const source = sqliteSourceName(file);
  const writer = startWriter(file);
  const first = replicator(repo, file, { retentionMs: 3600_000, snapshotIntervalMs: 3600_000 });
  const run1 = first.rep.run();
  for (
    let waited = 0;
    waited < 10_000 && (first.events.segments < 2 || first.events.snapshots.length === 0);
    waited += 50
  )
    await sleep(50);
  first.rep.stop();
  await run1;
  writer.stop();
  const gen = first.events.snapshots[0]!;
  assert.ok((await levelSegments(repo, source)).has(gen.generation));
  await repo.deleteSnapshot(gen.id);
  // A second run with a period shorter than the segments' age: they go; its own generation stays.
  await sleep(300);
  const second = replicator(repo, file, { retentionMs: 200, snapshotIntervalMs: 3600_000 });
  const run2 = second.rep.run();
  // Its first retention pass follows its first cycle (a moment; longer on a loaded machine).
  for (let waited = 0; waited < 10_000 && second.events.deleted.length === 0; waited += 50) await sleep(50);
  await sleep(200);
  second.rep.stop();
  await run2;
  assert.deepEqual(
    second.events.deleted.map((d) => d.generation),
    [gen.generation],
  );
  const segs = await levelSegments(repo, source, [gen.generation]);
  // (Nothing was written during the second run: its own generation may have no segments.)
  for (const g of segs.keys()) assert.equal(g, second.events.snapshots[0]!.generation);
  assert.equal((await repo.listSnapshots()).length, 1);
  await repo.close();
});

test("while a generation's snapshot is still being stored, neither it nor the previous generation is deleted", async () => {
  const { be, repo } = await newRepo();
  const file = path.join(tmp, "slow.db");
  createDb(file);
  const source = sqliteSourceName(file);
  // About 2 MiB of rows, so that a full snapshot is some 30 pieces.
  const fill = new Database(file);
  const insert = fill.prepare("INSERT INTO t (at, pad) VALUES (0, randomblob(300))");
  fill.transaction(() => {
    for (let i = 0; i < 6000; i++) insert.run();
  })();
  const first = replicator(repo, file, { retentionMs: 3600_000, snapshotIntervalMs: 3600_000 });
  const run1 = first.rep.run();
  await sleep(300);
  first.rep.stop();
  await run1;
  await repo.close();
  const previous = first.events.snapshots[0]!;
  // Every page changes, so the next snapshot stores all its pieces again...
  fill.exec("UPDATE t SET pad = randomblob(300)");
  fill.close();
  // ... into storage where each pack takes 150 ms to upload: the snapshot takes seconds.
  const slow: Backend = {
    ...be,
    async put(name, data, o) {
      if (name.startsWith("data/")) await sleep(150);
      return be.put(name, data, o);
    },
  };
  const slowRepo = await Repository.open(slow, PW);
  const writer = startWriter(file);
  const second = replicator(slowRepo, file, { retentionMs: 300, snapshotIntervalMs: 3600_000 });
  const run2 = second.rep.run();
  // Writes stop long before the snapshot is stored: its segments get older than the period.
  await sleep(600);
  writer.stop();
  for (let waited = 0; second.events.snapshots.length === 0 && waited < 20_000; waited += 100)
    await sleep(100);
  await sleep(500);
  second.rep.stop();
  await run2;
  const current = second.events.snapshots[0]!;
  assert.ok(current.at - current.time >= 1000, `the snapshot took ${current.at - current.time} ms`);
  // The previous generation went only once the new snapshot was stored and the period old.
  assert.equal(second.events.deleted.length, 1);
  const d = second.events.deleted[0]!;
  assert.equal(d.generation, previous.generation);
  assert.ok(d.at >= current.at && current.time <= d.at - 300, "deleted before its successor's snapshot");
  // The current generation's segments shipped meanwhile are all there: the latest restore holds
  // every committed transaction.
  const n = await restoreAt(slowRepo, source, Date.now(), writer.committed, path.join(tmp, "slow-latest.db"));
  assert.ok(writer.committed.length > 0);
  assert.equal(n, writer.committed.at(-1)!.id);
  await slowRepo.close();
});
