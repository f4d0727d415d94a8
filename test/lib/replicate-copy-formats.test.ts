// SQLite replication and the repository format over versions, below the CLI: `copy` of segments
// in levels (a second repository restores every point exactly as the original does, copying
// again copies nothing twice, and segments a later compaction replaced are replaced in the copy
// too), and segments stored before levels (as older versions wrote them) restoring beside
// generations in levels.
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import Database from "better-sqlite3";
import { memoryBackend } from "../../src/backend/memory.js";
import { copySnapshots } from "../../src/ops/copy/copy.js";
import { catalogKind } from "../../src/repo/records-segment-levels.js";
import { Repository } from "../../src/repo/repository.js";
import type { VirtualEntry, VirtualSource } from "../../src/snapshot/source.js";
import { takeSnapshot } from "../../src/snapshot/take.js";
import { sqliteSourceName } from "../../src/sources/sqlite.js";
import { readGeneration } from "../../src/sources/sqlite-replicate/catalog.js";
import type { Level } from "../../src/sources/sqlite-replicate/levels.js";
import { SqliteReplicator } from "../../src/sources/sqlite-replicate/replicator.js";
import { planSqliteRestore, restoreReplica } from "../../src/sources/sqlite-replicate/restore.js";
import { storePages, writeSegment } from "../../src/sources/sqlite-replicate/segments.js";
import { newRepo, PW } from "./support.js";

const S = 1000;
/** Interval segments for 10 s, 5-second windows for 30 s, 15-second windows after that. */
const LEVELS: Level[] = [
  { windowMs: 0, keepMs: 10 * S },
  { windowMs: 5 * S, keepMs: 30 * S },
  { windowMs: 15 * S, keepMs: Number.POSITIVE_INFINITY },
];

let tmp = "";
before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-copy-formats-"));
});
after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** A WAL database and a transaction that moves money and logs it (deterministic). */
function bank(file: string) {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.exec(`CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
           CREATE TABLE log (id INTEGER PRIMARY KEY, account INTEGER, amount INTEGER, note TEXT);`);
  const ins = db.prepare("INSERT INTO accounts (id, balance) VALUES (?, 1000)");
  db.transaction(() => {
    for (let i = 1; i <= 500; i++) ins.run(i);
  })();
  const move = db.prepare("UPDATE accounts SET balance = balance + ? WHERE id = ?");
  const log = db.prepare("INSERT INTO log (account, amount, note) VALUES (?, ?, ?)");
  let seed = 11;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const tx = db.transaction(() => {
    const a = 1 + rnd(500);
    const amount = 1 + rnd(50);
    move.run(-amount, a);
    move.run(amount, 1 + rnd(500));
    log.run(a, amount, "x".repeat(20 + rnd(200)));
  });
  return { db, tx };
}

/** Replicates on a simulated clock from `from` for `seconds`, 20 transactions per interval. */
async function simulate(repo: Repository, file: string, tx: () => void, from: number, seconds: number) {
  let now = from;
  const end = from + seconds * S;
  let merges = 0;
  const replicator: SqliteReplicator = new SqliteReplicator(repo, file, {
    intervalMs: S,
    snapshotIntervalMs: 3_600 * S,
    retentionMs: 3_600 * S,
    levels: LEVELS,
    onCompacted: () => merges++,
    clock: {
      now: () => now,
      async sleep(ms: number) {
        now += ms;
        for (let i = 0; i < 20; i++) tx();
        if (now >= end) replicator.stop();
      },
    },
  });
  await replicator.run();
  return { end: now, source: replicator.source, merges };
}

/** Restores `source` as of `at` from both repositories and checks they give the same bytes. */
async function sameRestore(a: Repository, b: Repository, source: string, at: Date | undefined, name: string) {
  const pa = await planSqliteRestore(a, source, at);
  const pb = await planSqliteRestore(b, source, at);
  assert.ok(pa && pb, `${name}: nothing to restore`);
  assert.equal(pb.stateTime, pa.stateTime, `${name}: the copy reaches another point`);
  const fa = path.join(tmp, `${name}-original.db`);
  const fb = path.join(tmp, `${name}-copy.db`);
  await restoreReplica(a, pa, fa);
  await restoreReplica(b, pb, fb);
  assert.ok((await fs.readFile(fa)).equals(await fs.readFile(fb)), `${name}: the copy restores other bytes`);
  await fs.rm(fa);
  await fs.rm(fb);
  return pa;
}

/** The segments in force of a repository's generations in levels: generation level first..last. */
async function inForce(repo: Repository): Promise<string[]> {
  const out: string[] = [];
  for (const c of await repo.records.list(catalogKind))
    for (const s of (await readGeneration(repo, c.record.generation)).segments)
      out.push(`${c.record.generation} ${s.level} ${s.first}..${s.last}`);
  return out.sort();
}

test("copy of segments in levels: every point restores as from the original; once; compactions carried over", async () => {
  const file = path.join(tmp, "bank.db");
  const { db, tx } = bank(file);
  const { repo: src } = await newRepo();
  const start = Date.UTC(2026, 0, 1, 0, 0, 0);
  const first = await simulate(src, file, tx, start, 40);
  assert.ok(first.merges > 0, "the first run merged segments");
  const dst = await Repository.init(memoryBackend(), "the copy's own password");

  const c1 = await copySnapshots(src, dst);
  assert.equal(c1.copied.length, 1, "the generation's snapshot");
  assert.ok(c1.records.segments.copied >= 5, `${c1.records.segments.copied} segments copied`);
  assert.deepEqual(await inForce(dst), await inForce(src), "the copy holds what the original does");
  assert.ok(dst.config.features?.read.includes("sqlite-segment-levels"), JSON.stringify(dst.config.features));
  const points = [5, 12, 19, 27, 33, 39].map((s) => new Date(start + s * S));
  for (const [i, at] of points.entries()) await sameRestore(src, dst, first.source, at, `first-${i}`);
  await sameRestore(src, dst, first.source, undefined, "first-latest");

  const again = await copySnapshots(src, dst);
  assert.deepEqual(again.records.segments, { copied: 0, skipped: c1.records.segments.copied });
  assert.equal(again.copied.length, 0);

  // Later: the same generation goes on (this process owns it), its older windows are merged and
  // the interval segments they cover deleted; a copy brings the merged ones and replaces the rest.
  const second = await simulate(src, file, tx, first.end, 40);
  db.close();
  const c3 = await copySnapshots(src, dst);
  assert.ok(c3.records.segments.copied > 0);
  assert.deepEqual(await inForce(dst), await inForce(src), "the copy holds what the original does");
  for (const [i, at] of [...points, ...[45, 60, 75].map((s) => new Date(start + s * S))].entries())
    await sameRestore(src, dst, second.source, at, `second-${i}`);
  const latest = await sameRestore(src, dst, second.source, undefined, "second-latest");
  assert.ok(
    latest.segments.some((s) => s.kind === "levels" && s.info.level > 0),
    "merged segments applied",
  );
  await src.close();
  await dst.close();
});

/** Pages (1-based) of `next` that differ from `prev` or are beyond it. */
function changedPages(prev: Buffer, next: Buffer, ps: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let o = 0; o < next.length; o += ps) {
    const page = next.subarray(o, o + ps);
    if (o >= prev.length || !prev.subarray(o, o + ps).equals(page)) out.set(o / ps + 1, Buffer.from(page));
  }
  return out;
}

test("segments stored before levels (as older versions wrote them) restore beside generations in levels", async () => {
  const { repo } = await newRepo();
  const file = path.join(tmp, "old.db");
  const db = new Database(file);
  db.pragma("journal_mode = DELETE");
  db.pragma("page_size = 4096");
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
  const add = (n: number) =>
    db.transaction(() => {
      for (let i = 0; i < n; i++)
        db.prepare("INSERT INTO t (v) VALUES (?)").run(`row ${i} ${"y".repeat(300)}`);
    })();
  add(50);
  const source = sqliteSourceName(file);
  const name = path.basename(file);
  const t0 = Date.UTC(2025, 5, 1, 12, 0, 0);
  const states = [await fs.readFile(file)];
  // The generation's snapshot, with meta.replication as replicate wrote it before levels (no layout).
  const v0 = states[0]!;
  const snapshotSource: VirtualSource = {
    name: source,
    type: "sqlite",
    async *entries(): AsyncIterable<VirtualEntry> {
      yield {
        kind: "file",
        path: name,
        mode: 0o600,
        read: async function* () {
          yield v0;
        },
      };
    },
    meta: () => ({
      file: name,
      replication: {
        generation: "0ld",
        wal: { salt1: 1, salt2: 2, checkpointSeq: 0, offset: 32 },
        pageSize: 4096,
      },
    }),
  };
  await takeSnapshot(repo, snapshotSource, { time: new Date(t0) });
  // Three segments, each the pages one more batch of rows changed (one pack per segment, as then).
  for (let i = 0; i < 3; i++) {
    add(40 + 30 * i);
    const next = await fs.readFile(file);
    const pages = changedPages(states.at(-1)!, next, 4096);
    const stored = await repo.withWriter((w) => storePages(w, pages, next.length / 4096));
    const iso = (s: number) => new Date(t0 + s * S).toISOString();
    await writeSegment(repo, {
      version: 1,
      source,
      hostname: os.hostname(),
      generation: "0ld",
      index: i,
      wal: { salt1: 1, salt2: 2, checkpointSeq: 0, start: 32 + i * 1000, end: 32 + (i + 1) * 1000 },
      walRestarted: false,
      pageSize: 4096,
      dbPages: next.length / 4096,
      frames: pages.size,
      commits: 1,
      pages: stored.count,
      commitsAfter: iso(10 * i + 1),
      commitsBefore: iso(10 * i + 2),
      storedAt: iso(10 * i + 3),
      size: stored.size,
      content: stored.content,
    });
    states.push(next);
  }
  db.close();

  // A replicate of this version writes another database into the same repository: in levels.
  const other = path.join(tmp, "new.db");
  const b = bank(other);
  await simulate(repo, other, b.tx, Date.UTC(2026, 0, 1), 8);
  b.db.close();
  assert.ok(repo.config.features?.read.includes("sqlite-segment-levels"));
  await repo.close();

  // Reopened (as a later run would): each point of the old generation restores its exact bytes.
  const again = await Repository.open(repo.backend, PW);
  for (const [i, at] of [
    [0, t0 + 500],
    [1, t0 + 2 * S],
    [2, t0 + 15 * S],
    [3, t0 + 25 * S],
    [3, undefined],
  ] as const) {
    const plan = await planSqliteRestore(again, source, at === undefined ? undefined : new Date(at));
    assert.ok(plan, `nothing to restore at ${at}`);
    assert.equal(plan.segments.length, i);
    assert.ok(plan.segments.every((s) => s.kind === "legacy"));
    const out = path.join(tmp, `old-${i}-${at ?? "latest"}.db`);
    const r = await restoreReplica(again, plan, out);
    assert.equal(r.integrity, "ok");
    assert.ok((await fs.readFile(out)).equals(states[i]!), `state ${i} restored exactly`);
  }
  await again.close();
});
