/**
 * `npm run bench:day [-- --hours 24 --mb 256 --tps 200 --commits 20 --doc-rate 0.2 --interval 1s
 *  --snapshot-interval 1h --retention 24h --prune-every 1h --dir DIR --keep]`
 *
 * A day of continuous SQLite replication, simulated faster than real time: `replicate` runs
 * against a real database and a real local repository (fsync on), but with a simulated clock;
 * while it "sleeps" between cycles, a writer commits the transactions of that interval (TPS per
 * second, in COMMITS SQLite commits per interval) stamped with the simulated time, and every
 * PRUNE_EVERY a separate prune (another repository handle, as another process) runs. After the
 * day it counts the objects and bytes of the repository, and restores `--time T` for T at
 * several ages, each against restoring the generation's snapshot alone, and checks each result
 * holds exactly the transactions committed by its state time. See docs/benchmarks.md.
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { localBackend } from "../src/backend/local.js";
import { prune } from "../src/ops/prune/prune.js";
import { Repository } from "../src/repo/repository.js";
import { restoreSqlite } from "../src/sources/sqlite.js";
import type { ReplicateClock } from "../src/sources/sqlite-replicate/clock.js";
import { SqliteReplicator } from "../src/sources/sqlite-replicate/replicator.js";
import { planSqliteRestore, restoreReplica } from "../src/sources/sqlite-replicate/restore.js";
import { createDayDb, DayWriter, dayState } from "./day-db.js";

process.env.LIFEBOAT_KDF_N ??= "1024";

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}
const duration = (s: string): number => {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(m[1]) * units[m[2]!]!;
  if (total <= 0) throw new Error(`bad duration ${s}`);
  return total;
};

const HOURS = Number(arg("hours", "24"));
const MB = Number(arg("mb", "256"));
const TPS = Number(arg("tps", "200"));
const COMMITS = Number(arg("commits", "20"));
const DOC_RATE = Number(arg("doc-rate", "0.2"));
const INTERVAL = duration(arg("interval", "1s"));
const SNAPSHOT_INTERVAL = duration(arg("snapshot-interval", "1h"));
const RETENTION = duration(arg("retention", "24h"));
const PRUNE_EVERY = duration(arg("prune-every", "1h"));
const KEEP = process.argv.includes("--keep");
/** fsync every object written during the simulated day (off by default: the day is about what is
 * stored and what a restore reads, not about the disk's flush latency, paid 86,400 times). */
const FSYNC = process.argv.includes("--fsync");
const PW = "bench-day";
const H = 3_600_000;

const fmt = (ms: number) => {
  const s = Math.round(ms / 1000);
  const parts = [
    [Math.floor(s / 3600), "h"],
    [Math.floor((s % 3600) / 60), "min"],
    [s % 60, "s"],
  ].filter(([n]) => n !== 0);
  return parts.length === 0 ? "0 s" : parts.map(([n, u]) => `${n} ${u}`).join(" ");
};
const mib = (b: number) => `${(b / 2 ** 20).toFixed(b < 10 * 2 ** 20 ? 1 : 0)} MiB`;

async function objects(dir: string): Promise<{ total: number; bytes: number; by: Record<string, number> }> {
  const be = localBackend({ path: dir, fsync: false });
  const by: Record<string, number> = {};
  let total = 0;
  let bytes = 0;
  for await (const o of be.list("")) {
    const top = o.name.split("/")[0]!;
    by[top] = (by[top] ?? 0) + 1;
    total++;
    bytes += o.size;
  }
  return { total, bytes, by };
}

async function main(): Promise<void> {
  const dir = arg("dir", "") || (await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-bench-day-")));
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, "app.db");
  const repoDir = path.join(dir, "repo");
  const ringRows = 400_000;
  const accounts = 2_000;
  let t0 = Date.now();
  createDayDb(file, { mb: MB, ringRows, accounts });
  const dbBytes = (await fs.stat(file)).size;
  console.log(`database: ${mib(dbBytes)} in ${((Date.now() - t0) / 1000).toFixed(1)} s (${file})`);
  const repo = await Repository.init(localBackend({ path: repoDir, fsync: FSYNC }), PW);

  // The simulated day ends on a whole hour, a day before now.
  const end = Math.floor(Date.now() / H) * H;
  const start = end - HOURS * H;
  let now = start;
  const writer = new DayWriter(file, { mb: MB, ringRows, accounts, docRate: DOC_RATE });
  const seqAt = new Map<number, number>([[start, writer.seq]]);
  const perInterval = Math.round((TPS * INTERVAL) / 1000);
  const samples: { at: number; before: number; after: number; prune: number }[] = [];
  let replicator: SqliteReplicator | undefined;
  let compactions = 0;
  let snapshots = 0;
  const wallStart = Date.now();
  const clock: ReplicateClock = {
    now: () => now,
    async sleep(ms: number) {
      now += ms;
      writer.burst(perInterval, COMMITS, now, ms / 1000);
      seqAt.set(now, writer.seq);
      if ((now - start) % PRUNE_EVERY === 0) {
        const before = await objects(repoDir);
        const p0 = Date.now();
        const other = await Repository.open(localBackend({ path: repoDir, fsync: FSYNC }), PW);
        try {
          await prune(other);
        } finally {
          await other.close();
        }
        const after = await objects(repoDir);
        samples.push({ at: now, before: before.total, after: after.total, prune: Date.now() - p0 });
        console.log(
          `+${fmt(now - start)} (${((Date.now() - wallStart) / 60_000).toFixed(1)} min real): ${before.total} objects, ${after.total} after prune (${((Date.now() - p0) / 1000).toFixed(1)} s), ${mib(after.bytes)}; ${compactions} merges, ${snapshots} snapshots`,
        );
      }
      if (now >= end) replicator!.stop();
    },
  };
  replicator = new SqliteReplicator(repo, file, {
    intervalMs: INTERVAL,
    snapshotIntervalMs: SNAPSHOT_INTERVAL,
    retentionMs: RETENTION,
    clock,
    onCompacted: () => compactions++,
    onSnapshot: () => snapshots++,
    onWarning: (m) => console.log(`warning: ${m}`),
  });
  const summary = await replicator.run();
  writer.close();
  const wall = Date.now() - wallStart;
  await repo.close();
  const final = await objects(repoDir);
  console.log(
    `day done in ${(wall / 60_000).toFixed(1)} min: ${summary.segments} interval segments, ${summary.commits} commits, ${compactions} merges, ${snapshots} snapshots; ${final.total} objects (${JSON.stringify(final.by)}), ${mib(final.bytes)}`,
  );

  // Restores as of T at several ages, each against the generation's snapshot alone.
  t0 = Date.now();
  const r = await Repository.open(localBackend({ path: repoDir }), PW);
  const openMs = Date.now() - t0;
  const source = replicator.source;
  const rows: string[] = [];
  // Ages off any window boundary, so the state's distance from T shows the granularity.
  const ages = [
    10_000,
    2 * 60_000 + 13_000,
    20 * 60_000 + 47_000,
    55 * 60_000 + 9_000,
    3 * H + 17 * 60_000 + 41_000,
    12 * H + 31 * 60_000 + 7_000,
    23 * H + 3 * 60_000 + 29_000,
  ];
  let worst = 0;
  for (const age of ages.filter((a) => a < HOURS * H)) {
    const T = end - age;
    const tp = Date.now();
    const plan = await planSqliteRestore(r, source, new Date(T));
    if (!plan) throw new Error(`nothing to restore at ${new Date(T).toISOString()}`);
    const planMs = Date.now() - tp;
    const alone = path.join(dir, "alone.db");
    const at = path.join(dir, "at.db");
    const clean = async () => {
      for (const f of [alone, at]) for (const x of ["", "-wal", "-shm"]) await fs.rm(f + x, { force: true });
    };
    // Each twice, interleaved, the faster of each counted (other work shares the machine).
    let aloneMs = Number.POSITIVE_INFINITY;
    let atMs = Number.POSITIVE_INFINITY;
    let seq = 0;
    for (let round = 0; round < 2; round++) {
      const ta = Date.now();
      await restoreSqlite(r, plan.snapshot, alone);
      aloneMs = Math.min(aloneMs, Date.now() - ta);
      const tr = Date.now();
      const p2 = await planSqliteRestore(r, source, new Date(T));
      const res = await restoreReplica(r, p2!, at);
      atMs = Math.min(atMs, Date.now() - tr);
      void res;
      const got = dayState(at);
      seq = got.seq;
      const want = seqAt.get(Date.parse(p2!.stateTime));
      if (got.seq !== want)
        throw new Error(`restore as of ${fmt(age)} ago holds transaction ${got.seq}, expected ${want}`);
      await clean();
    }
    const state = Date.parse(plan.stateTime);
    const levels = new Map<number, number>();
    let bytes = 0;
    for (const s of plan.segments) {
      if (s.kind !== "levels") continue;
      levels.set(s.info.level, (levels.get(s.info.level) ?? 0) + 1);
      bytes += s.info.size;
    }
    const ratio = atMs / aloneMs;
    worst = Math.max(worst, ratio);
    rows.push(
      `| ${fmt(age)} | ${fmt(T - state)} | ${[...levels]
        .sort((a, b) => b[0] - a[0])
        .map(([l, n]) => `${n}×L${l}`)
        .join(
          " + ",
        )} | ${mib(bytes)} | ${(aloneMs / 1000).toFixed(2)} s | ${(atMs / 1000).toFixed(2)} s | ${ratio.toFixed(2)} | ${planMs} ms | ${seq} |`,
    );
  }
  await r.close();
  const peak = Math.max(0, ...samples.map((s) => s.before));
  console.log("");
  console.log(
    `bench:day: ${HOURS} h of ${TPS} tx/s (${COMMITS} commits per ${INTERVAL} ms interval), ${mib(dbBytes)} database, --snapshot-interval ${fmt(SNAPSHOT_INTERVAL)}, --retention ${fmt(RETENTION)}, prune every ${fmt(PRUNE_EVERY)}; simulated in ${(wall / 60_000).toFixed(1)} min on ${os.cpus().length} cores`,
  );
  console.log(
    `objects after the day: ${final.total} (${Object.entries(final.by)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}), ${mib(final.bytes)}; before each prune at most ${peak}; open ${openMs} ms`,
  );
  console.log(
    "| T is | state is before T | segments applied | segment bytes | snapshot alone | restore --time T | ratio | plan | holds transactions 1.. (as committed by its state time) |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const row of rows) console.log(row);
  console.log(`worst ratio ${worst.toFixed(2)}`);
  if (!KEEP && !arg("dir", "")) await fs.rm(dir, { recursive: true, force: true });
}

await main();
