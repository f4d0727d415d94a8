/**
 * Replication in levels on a real SQLite database, driven by a simulated clock (like
 * bench/day.ts): the writer commits between the replicator's cycles, a copy of the database is
 * taken after some of them, and `restore --time T` must give exactly that copy, whether T falls
 * where interval segments are still kept or where only merged ones are left. Also: how many
 * segments of each level are left, and a database that shrinks (VACUUM) and grows again.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import type { Backend } from "../../backend/backend.js";
import { localBackend } from "../../backend/local.js";
import { memoryBackend } from "../../backend/memory.js";
import { Repository } from "../../repo/repository.js";
import { readGeneration } from "./catalog.js";
import type { CompactedEvent } from "./generation-levels.js";
import type { Level } from "./levels.js";
import { SqliteReplicator } from "./replicator.js";
import { planSqliteRestore, restoreReplica } from "./restore.js";
import { replicationOf } from "./segments.js";

process.env.LIFEBOAT_KDF_N = "1024";

const S = 1000;
/** Interval segments for 20 s, 5-second windows for 60 s, 20-second windows after that. */
const LEVELS: Level[] = [
  { windowMs: 0, keepMs: 20 * S },
  { windowMs: 5 * S, keepMs: 60 * S },
  { windowMs: 20 * S, keepMs: Number.POSITIVE_INFINITY },
];

/** Pages of a database file, page 1 without the header fields SQLite's backup API changes in
 * the copy (change counter, schema cookie, version-valid-for, SQLite version). */
async function pagesOf(file: string): Promise<Buffer[]> {
  const b = await fs.readFile(file);
  const ps = b.readUInt16BE(16) === 1 ? 65536 : b.readUInt16BE(16);
  const out: Buffer[] = [];
  for (let o = 0; o < b.length; o += ps) out.push(b.subarray(o, o + ps));
  const p1 = out[0]!;
  out[0] = Buffer.concat([p1.subarray(0, 24), p1.subarray(28, 40), p1.subarray(44, 92), p1.subarray(100)]);
  return out;
}

/** A bank in WAL mode and a transaction that moves money and logs it (deterministic amounts). */
function bank(file: string) {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.exec(`
    CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
    CREATE TABLE log (id INTEGER PRIMARY KEY, account INTEGER, amount INTEGER, note TEXT);
  `);
  const ins = db.prepare("INSERT INTO accounts (id, balance) VALUES (?, 1000)");
  db.transaction(() => {
    for (let i = 1; i <= 2000; i++) ins.run(i);
  })();
  const move = db.prepare("UPDATE accounts SET balance = balance + ? WHERE id = ?");
  const log = db.prepare("INSERT INTO log (account, amount, note) VALUES (?, ?, ?)");
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const tx = db.transaction(() => {
    const a = 1 + rnd(2000);
    const amount = 1 + rnd(50);
    move.run(-amount, a);
    move.run(amount, 1 + rnd(2000));
    log.run(a, amount, "x".repeat(20 + rnd(200)));
  });
  return { db, tx };
}

/**
 * Runs a replicator on a simulated clock from `from` for `seconds`: 40 transactions per second,
 * `each` after every interval (copies, a VACUUM), stopped at the end. Returns the end time.
 */
async function simulate(
  repo: Repository,
  file: string,
  tx: () => void,
  o: {
    from: number;
    seconds: number;
    each?: (now: number) => Promise<void> | void;
    onCompacted?: (e: CompactedEvent) => void;
  },
): Promise<{ end: number; replicator: SqliteReplicator }> {
  let now = o.from;
  const end = o.from + o.seconds * S;
  const replicator: SqliteReplicator = new SqliteReplicator(repo, file, {
    intervalMs: S,
    snapshotIntervalMs: 120 * S,
    retentionMs: 3_600 * S,
    levels: LEVELS,
    clock: {
      now: () => now,
      async sleep(ms: number) {
        // Compaction runs in the background in real time; the simulated clock must not race
        // ahead of it (on a loaded machine it fell 50 simulated seconds behind).
        await replicator.maintenanceSettled();
        now += ms;
        for (let i = 0; i < 40; i++) tx();
        await o.each?.(now);
        if (now >= end) replicator.stop();
      },
    },
    ...(o.onCompacted ? { onCompacted: o.onCompacted } : {}),
  });
  await replicator.run();
  return { end: now, replicator };
}

test("restore --time T after compaction equals a copy of the database taken at T", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-levels-"));
  try {
    const file = path.join(dir, "app.db");
    const { db, tx } = bank(file);
    const repo = await Repository.init(localBackend({ path: path.join(dir, "repo"), fsync: false }), "pw");
    // An aligned simulated start, so windows are easy to reason about.
    const start = Date.UTC(2026, 0, 1, 0, 0, 0);
    const copies = new Map<number, string>();
    let vacuumed = false;
    const compacted: CompactedEvent[] = [];
    const { end, replicator } = await simulate(repo, file, tx, {
      from: start,
      seconds: 200,
      onCompacted: (e) => compacted.push(e),
      async each(now) {
        if (!vacuumed && now >= start + 90 * S) {
          // The database shrinks and grows again within the merged windows.
          db.exec("DELETE FROM log WHERE id % 3 <> 0");
          db.exec("VACUUM");
          for (let i = 0; i < 200; i++) tx();
          vacuumed = true;
        }
        if ((now - start) % (5 * S) === 0 || (now - start) % (7 * S) === 0) {
          const copy = path.join(dir, `copy-${now}.db`);
          await db.backup(copy);
          copies.set(now, copy);
        }
      },
    });
    db.close();

    assert.ok(
      compacted.some((c) => c.level === 2),
      `no level-2 segment: ${JSON.stringify(compacted.slice(0, 3))}`,
    );
    // The format feature was recorded before the first segment: older versions refuse the repository.
    // (A new repository starts with the read features of trees: byte-names, special-files, xattrs.)
    assert.ok(
      repo.config.features?.read.includes("sqlite-segment-levels"),
      JSON.stringify(repo.config.features),
    );
    assert.equal(repo.config.version, 2);
    const source = replicator.source;
    const snaps = (await repo.listSnapshots()).filter((s) => s.paths[0] === source);
    assert.ok(snaps.length >= 2, "a second generation started");

    // Every copy restores exactly, at its own time and half an interval later (the same state).
    let fromMerged = 0;
    let exact = 0;
    for (const [t, copy] of copies) {
      for (const at of [t, t + S / 2]) {
        const plan = await planSqliteRestore(repo, source, new Date(at));
        assert.ok(plan, `no plan for ${at - start} ms`);
        assert.equal(Date.parse(plan.stateTime) <= at, true);
        if (plan.segments.some((s) => s.kind === "levels" && s.info.level > 0)) fromMerged++;
        const out = path.join(dir, `restored-${at}.db`);
        await restoreReplica(repo, plan, out);
        const want = await pagesOf(copy);
        const got = await pagesOf(out);
        // The state at T: a restore that reaches only an older merged boundary is not exact, so
        // only exact ones pass; the granularity check below says which T reach their copy.
        if (Date.parse(plan.stateTime) === t) {
          exact++;
          assert.equal(got.length, want.length, `page count at +${(at - start) / S} s`);
          for (let i = 0; i < want.length; i++) {
            if (!got[i]!.equals(want[i]!)) {
              const d: number[] = [];
              for (let j = 0; j < want[i]!.length; j++) if (got[i]![j] !== want[i]![j]) d.push(j);
              assert.fail(
                `page ${i + 1} differs at +${(at - start) / S} s, bytes ${d.slice(0, 20).join(",")}`,
              );
            }
          }
        }
        await fs.rm(out);
      }
    }
    assert.ok(fromMerged > 10, `only ${fromMerged} restores used merged segments`);

    // Granularity by age: within 20 s of the end every interval is restorable; older points only
    // at the end of a 5-second (up to 60 s old) or 20-second window.
    const gens = snaps.map((s) => replicationOf(s)!.generation);
    const levels = new Map<number, number[]>();
    for (const g of gens)
      for (const s of (await readGeneration(repo, g)).segments) {
        const list = levels.get(s.level) ?? [];
        list.push(end - s.commitsBefore);
        levels.set(s.level, list);
      }
    const oldest = (l: number) => Math.max(...(levels.get(l) ?? [0]));
    assert.ok(oldest(0) <= 20 * S + 20 * S, `interval segments ${oldest(0)} ms old are left`);
    assert.ok(oldest(1) <= 60 * S + 20 * S, `level-1 segments ${oldest(1)} ms old are left`);
    const count = (l: number) => levels.get(l)?.length ?? 0;
    console.log(
      `levels: ${compacted.length} merges over 200 s; left: ${count(0)} interval, ${count(1)} level-1, ${count(2)} level-2 segments; ${exact} of ${copies.size * 2} restores exact, ${fromMerged} through merged segments`,
    );
    assert.ok(count(0) < 60, `${count(0)} interval segments left of 200`);
    assert.ok(count(2) >= 5, `${count(2)} level-2 segments`);
    for (const t of copies.keys()) {
      const age = end - t;
      const plan = (await planSqliteRestore(repo, source, new Date(t)))!;
      const exact = Date.parse(plan.stateTime) === t;
      const at = `+${(t - start) / S} s (${age / S} s old)`;
      if (age < 15 * S) assert.ok(exact, `${at} is not restorable to the interval`);
      if ((t - start) % (5 * S) === 0 && age < 55 * S)
        assert.ok(exact, `${at}: a 5-second boundary is not exact`);
      if ((t - start) % (20 * S) === 0) assert.ok(exact, `${at}: a 20-second boundary is not exact`);
      if (age > 90 * S && (t - start) % (20 * S) !== 0)
        assert.ok(!exact, `${at}: restorable exactly although only 20-second segments should be left`);
    }
    await repo.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test("on storage under Object Lock, replaced segments stay (skipped by restores) until their lock expires", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-levels-lock-"));
  try {
    const file = path.join(dir, "app.db");
    const { db, tx } = bank(file);
    // Every object is locked for LOCK_MS of real time, as an S3 bucket with Object Lock does.
    const LOCK_MS = 4000;
    const mem = memoryBackend({ retention: true });
    const locked: Backend = {
      ...mem,
      put: (name, data, opts) =>
        mem.put(
          name,
          data,
          name === "config" ? opts : { ...opts, retainUntil: new Date(Date.now() + LOCK_MS) },
        ),
    };
    const repo = await Repository.init(locked, "pw");
    const start = Date.UTC(2026, 0, 1, 0, 0, 0);
    const copies = new Map<number, string>();
    const first = await simulate(repo, file, tx, {
      from: start,
      seconds: 100,
      async each(now) {
        if ((now - start) % (10 * S) === 0) {
          const copy = path.join(dir, `copy-${now}.db`);
          await db.backup(copy);
          copies.set(now, copy);
        }
      },
    });
    const locking = Date.now();
    const source = first.replicator.source;
    const gen = replicationOf((await repo.listSnapshots())[0]!)!.generation;
    const held = await readGeneration(repo, gen);
    assert.ok(held.replaced.size > 0, "no deletion was refused");
    assert.ok(held.catalogs.length > 1, "the replaced catalogs stay too");
    // Restores skip the replaced segments and stay exact.
    for (const [t, copy] of copies) {
      const plan = (await planSqliteRestore(repo, source, new Date(t)))!;
      for (const s of plan.segments) assert.ok(s.kind === "levels" && !held.replaced.has(s.info.object));
      if (Date.parse(plan.stateTime) !== t) continue;
      const out = path.join(dir, `restored-${t}.db`);
      await restoreReplica(repo, plan, out);
      const [got, want] = [await pagesOf(out), await pagesOf(copy)];
      assert.equal(got.length, want.length);
      for (const [i, p] of got.entries())
        assert.ok(p.equals(want[i]!), `page ${i + 1} at +${(t - start) / S} s`);
    }
    // Once the locks have expired, the next replicate deletes them.
    await new Promise((r) => setTimeout(r, Math.max(0, LOCK_MS - (Date.now() - locking) + 500)));
    const before = [...mem.objects().keys()].filter((k) => k.startsWith("sqlite-")).length;
    await simulate(repo, file, tx, { from: first.end, seconds: 10 });
    db.close();
    const after = await readGeneration(repo, gen);
    const left = [...held.replaced].filter((o) => after.objects.has(o));
    assert.deepEqual(left, [], "replaced segments were not deleted once their lock expired");
    // (The catalogs rewritten since are locked in turn.)
    const oldCatalogs = held.catalogs.filter((c) => after.catalogs.some((a) => a.object === c.object));
    assert.deepEqual(oldCatalogs, [], "replaced catalogs were not deleted once their lock expired");
    const now = [...mem.objects().keys()].filter((k) => k.startsWith("sqlite-")).length;
    console.log(
      `levels under Object Lock: ${held.replaced.size} replaced segments and ${held.catalogs.length} catalogs held; ${before} objects, ${now} once the locks expired`,
    );
    await repo.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
