/**
 * `lifeboat drill` and `lifeboat status` through the built CLI: a drill restores into a scratch
 * folder, verifies, records itself in the repository, and status reports it; sampling; a flipped
 * byte in a data pack fails the drill (exit 14, naming the file); SQLite snapshots get an engine
 * check (integrity_check), files that happen to be databases do not; old records are trimmed.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import Database from "better-sqlite3";
import {
  DRILLS_KEPT_PER_SERIES,
  type DrillRecord,
  listDrills,
  seriesKey,
} from "../../src/ops/drill/drill.js";
import { openRepository } from "../../src/ops/open.js";
import { drillKind } from "../../src/repo/records-drill.js";
import type { VirtualSource } from "../../src/snapshot/source.js";
import { takeSnapshot } from "../../src/snapshot/take.js";
import { baseEnv, jsonLines, listAll, prng, type RunResult, run, tempDir } from "../support/cli.js";

const PASSWORD = "drill-test";
let dir: string;
let repo: string;
let src: string;
let scratchParent: string;
let env: Record<string, string>;

const show = (r: RunResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
const summary = (r: RunResult) => {
  const s = jsonLines(r.stdout).find((m) => m.message_type === "summary");
  assert.ok(s, `no summary in\n${show(r)}`);
  return s as Record<string, unknown> & DrillRecord & { drill_id: string; scratch: string | null };
};

interface SeriesJson {
  host: string;
  paths: string[];
  source: string;
  snapshots: number;
  newest: { id: string; incomplete: boolean; ageSeconds: number };
  lastDrill?: {
    id: string;
    ok: boolean;
    seconds: number;
    mbPerSecond: number | null;
    bytes: number;
    engineCheck?: string;
  };
  lastOkDrill?: { id: string };
  unresolvedFailure?: { firstFailure?: { path: string; reason: string } };
  newestProven: boolean;
}
interface StatusJson {
  snapshots: number;
  packs: number;
  prunePlans: number;
  liveSessions: { backup: number; prune: number };
  series: SeriesJson[];
}

async function status(e = env): Promise<StatusJson> {
  const r = await run(["status", "--json"], { env: e });
  assert.equal(r.code, 0, show(r));
  const s = jsonLines(r.stdout).find((m) => m.message_type === "status");
  assert.ok(s, show(r));
  return s as unknown as StatusJson;
}

async function packFiles(repoDir: string): Promise<string[]> {
  return (await listAll(path.join(repoDir, "data"))).filter((p) => /\/[0-9a-f]{64}$/.test(p));
}

function makeDb(file: string, rows: number): void {
  const db = new Database(file);
  db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
  const ins = db.prepare("INSERT INTO notes (body) VALUES (?)");
  db.transaction(() => {
    for (let i = 0; i < rows; i++) ins.run(`note ${i} ${"x".repeat(200)}`);
  })();
  db.close();
}

before(async () => {
  dir = await tempDir("lifeboat-drill-");
  repo = path.join(dir, "repo");
  src = path.join(dir, "src");
  scratchParent = path.join(dir, "tmp");
  await fs.mkdir(scratchParent);
  // TMPDIR: the drill's scratch folder goes here, so the test can see it is removed.
  env = baseEnv({ LIFEBOAT_REPOSITORY: repo, LIFEBOAT_PASSWORD: PASSWORD, TMPDIR: scratchParent });
  await fs.mkdir(path.join(src, "docs", "deep"), { recursive: true });
  for (let i = 0; i < 8; i++)
    await fs.writeFile(path.join(src, "docs", `note-${i}.txt`), `note ${i}\n`.repeat(50 + i));
  await fs.writeFile(path.join(src, "docs", "deep", "blob.bin"), prng(150_000, 7));
  // A database file backed up as an ordinary file: restored and verified, not engine-checked.
  makeDb(path.join(src, "plain.db"), 50);
  let r = await run(["init"], { env });
  assert.equal(r.code, 0, show(r));
  r = await run(["backup", src], { env });
  assert.equal(r.code, 0, show(r));
});
after(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test("a drill of a good snapshot passes, is recorded, and status shows it", async () => {
  const before = await status();
  assert.equal(before.series.length, 1);
  assert.equal(before.series[0]!.lastDrill, undefined, "no drill yet");
  assert.equal(before.series[0]!.newestProven, false);

  const r = await run(["drill", "--json"], { env });
  assert.equal(r.code, 0, show(r));
  const s = summary(r);
  assert.equal(s.ok, true);
  assert.equal(s.mode, "full");
  assert.equal(s.files, 10);
  assert.ok(s.bytes > 150_000);
  assert.equal(typeof s.seconds, "number");
  assert.deepEqual(s.failures, []);
  assert.equal(s.source, "files");
  assert.equal(s.engineCheck, undefined, "a .db file in a file snapshot is not engine-checked");
  assert.deepEqual(s.paths, [src]);
  assert.deepEqual(await fs.readdir(scratchParent), [], "the scratch folder is removed");
  const stored = (await fs.readdir(path.join(repo, "drills"))).filter((n) => /^[0-9a-f]{64}$/.test(n));
  assert.deepEqual(stored, [s.drill_id], "the record is stored under drills/");

  const st = await status();
  assert.equal(st.snapshots, 1);
  assert.ok(st.packs >= 2);
  assert.equal(st.prunePlans, 0);
  assert.deepEqual(st.liveSessions, { backup: 0, prune: 0 });
  const series = st.series[0]!;
  assert.equal(series.lastDrill?.id, s.drill_id);
  assert.equal(series.lastDrill?.ok, true);
  assert.equal(typeof series.lastDrill?.seconds, "number");
  assert.equal(series.lastDrill?.bytes, s.bytes);
  assert.equal(series.lastOkDrill?.id, s.drill_id);
  assert.equal(series.newestProven, true);

  const human = await run(["status"], { env });
  assert.equal(human.code, 0, show(human));
  assert.match(human.stdout, /1 snapshots in 1 series/);
  assert.match(human.stdout, / ok /);

  // --source picks the snapshot by its path (relative paths are resolved).
  const bySource = await run(["drill", "--source", path.relative(dir, src), "--json"], { env, cwd: dir });
  assert.equal(bySource.code, 0, show(bySource));
  assert.equal(summary(bySource).snapshot, s.snapshot);
  const none = await run(["drill", "--source", path.join(dir, "nothing-here")], { env });
  assert.equal(none.code, 13, show(none));
});

test("--sample 3 restores exactly 3 files, the same 3 again with the same --seed", async () => {
  const listing = async (scratch: string) =>
    (await listAll(scratch))
      .filter((p) => /\.(txt|bin|db)$/.test(p))
      .map((p) => path.relative(scratch, p))
      .sort();
  const drillOnce = async (seed: string) => {
    const r = await run(["drill", "--sample", "3", "--seed", seed, "--keep-scratch", "--json"], { env });
    assert.equal(r.code, 0, show(r));
    const s = summary(r);
    assert.ok(s.scratch, "the kept scratch folder is reported");
    const files = await listing(s.scratch);
    for (const f of files) {
      const original = path.join("/", f);
      assert.ok(original.startsWith(`${src}/`), `${f} mirrors its path in the snapshot`);
      assert.deepEqual(await fs.readFile(path.join(s.scratch, f)), await fs.readFile(original));
    }
    await fs.rm(s.scratch, { recursive: true, force: true });
    return { s, files };
  };
  const a = await drillOnce("one");
  assert.equal(a.files.length, 3, `restored: ${a.files.join(", ")}`);
  assert.equal(a.s.files, 3);
  assert.equal(a.s.mode, "sample");
  assert.deepEqual(a.s.sample, { count: 3, seed: "one", of: 10 });
  const b = await drillOnce("one");
  assert.deepEqual(b.files, a.files, "the same seed picks the same files");
  const others = new Set<string>();
  for (const seed of ["two", "three", "four"]) for (const f of (await drillOnce(seed)).files) others.add(f);
  assert.ok(
    [...others].some((f) => !a.files.includes(f)),
    "other seeds pick other files",
  );

  const bad = await run(["drill", "--sample", "0"], { env });
  assert.equal(bad.code, 2, show(bad));
  const seedAlone = await run(["drill", "--seed", "x"], { env });
  assert.equal(seedAlone.code, 2, show(seedAlone));
});

test("records beyond the newest 50 of a series are deleted when a drill is recorded", async () => {
  const r0 = await openRepository(repo, PASSWORD);
  let snapPaths: string[];
  let host: string;
  try {
    const [snap] = await r0.listSnapshots();
    snapPaths = snap!.paths;
    host = snap!.hostname;
    const fake = (i: number, paths: string[]): DrillRecord => ({
      version: 1,
      time: new Date(Date.UTC(2020, 0, 1, 0, i)).toISOString(),
      snapshot: snap!.id,
      host,
      paths,
      source: "files",
      mode: "full",
      files: 1,
      bytes: 1,
      seconds: 1,
      ok: true,
      failed: 0,
      failures: [],
    });
    for (let i = 0; i < 55; i++) await r0.records.write(drillKind, fake(i, snapPaths));
    for (let i = 0; i < 2; i++) await r0.records.write(drillKind, fake(i, ["/elsewhere"]));
  } finally {
    await r0.close();
  }
  const r = await run(["drill", "--json"], { env });
  assert.equal(r.code, 0, show(r));
  const s = summary(r);
  assert.ok((s.records_removed as number) > 0);
  const r1 = await openRepository(repo, PASSWORD);
  try {
    const all = await listDrills(r1);
    const mine = all.filter((d) => seriesKey(d.host, d.paths) === seriesKey(host, snapPaths));
    assert.equal(mine.length, DRILLS_KEPT_PER_SERIES);
    assert.ok(
      mine.some((d) => d.id === s.drill_id),
      "the new record is kept",
    );
    assert.ok(
      !mine.some((d) => d.time === new Date(Date.UTC(2020, 0, 1, 0, 0)).toISOString()),
      "the oldest went",
    );
    assert.equal(all.filter((d) => d.paths[0] === "/elsewhere").length, 2, "other series are left alone");
  } finally {
    await r1.close();
  }
});

test("a flipped byte in a data pack fails the drill with exit 14 naming the file; status shows it", async () => {
  const packsBefore = new Set(await packFiles(repo));
  await fs.writeFile(path.join(src, "victim.bin"), prng(200_000, 99));
  const b = await run(["backup", src], { env });
  assert.equal(b.code, 0, show(b));
  const fresh = (await packFiles(repo)).filter((p) => !packsBefore.has(p));
  const sized = await Promise.all(fresh.map(async (p) => [p, (await fs.stat(p)).size] as const));
  const [victimPack] = sized.sort((x, y) => y[1] - x[1])[0]!;
  const fh = await fs.open(victimPack, "r+");
  const one = Buffer.alloc(1);
  await fh.read(one, 0, 1, 50_000);
  one[0] = one[0]! ^ 0x20;
  await fh.write(one, 0, 1, 50_000);
  await fh.close();

  const r = await run(["drill"], { env });
  assert.equal(r.code, 14, show(r));
  const errLines = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
  assert.equal(errLines.length, 1, show(r));
  assert.match(errLines[0]!, /victim\.bin/);
  assert.doesNotMatch(r.stderr, /note-\d\.txt/, "only the damaged file fails");
  assert.match(r.stderr, /hint: /);
  assert.deepEqual(await fs.readdir(scratchParent), [], "the scratch folder is removed after a failure too");

  const st = await status();
  const series = st.series[0]!;
  assert.equal(series.snapshots, 2);
  assert.equal(series.lastDrill?.ok, false);
  assert.equal(series.newestProven, false);
  assert.match(series.unresolvedFailure?.firstFailure?.path ?? "", /\/victim\.bin$/);
  assert.match(series.unresolvedFailure?.firstFailure?.reason ?? "", /authentication failed/);
  assert.notEqual(series.lastOkDrill?.id, series.lastDrill?.id, "the last passing drill is still shown");

  const json = await run(["drill", "--json"], { env });
  assert.equal(json.code, 14);
  const s = summary(json);
  assert.equal(s.ok, false);
  assert.equal(s.failed, 1);
  assert.equal(s.files, 10, "every other file restored and verified");
  assert.deepEqual(
    s.failures.map((f) => f.path),
    [path.join(src, "victim.bin")],
  );
  const err = jsonLines(json.stderr).find((m) => m.message_type === "error")!;
  assert.equal(err.code, "CORRUPTION");

  const human = await run(["status"], { env });
  assert.match(human.stdout, /FAILED/);
  assert.match(human.stdout, /victim\.bin/);
});

/** A source like `lifeboat backup sqlite:PATH` makes: one database file, source "sqlite". */
function sqliteVirtual(name: string, bytes: Buffer, tables?: Record<string, number>): VirtualSource {
  return {
    name,
    type: "sqlite",
    async *entries() {
      yield {
        kind: "file" as const,
        path: "app.db",
        read: async function* () {
          yield bytes;
        },
      };
    },
    ...(tables ? { meta: () => ({ file: "app.db", tables }) } : {}),
  };
}

test("SQLite snapshots are engine-checked: integrity_check ok, and a broken database fails", async () => {
  const sqlRepo = path.join(dir, "sqlrepo");
  const sqlEnv = { ...env, LIFEBOAT_REPOSITORY: sqlRepo };
  assert.equal((await run(["init"], { env: sqlEnv })).code, 0);
  const good = path.join(dir, "good.db");
  makeDb(good, 300);
  const goodBytes = await fs.readFile(good);
  // A database whose pages past the first are overwritten: the file is what was backed up (so
  // it verifies), but SQLite finds it broken.
  const broken = Buffer.from(goodBytes);
  const pageSize = broken.readUInt16BE(16);
  assert.ok(broken.length >= pageSize * 4);
  prng(pageSize * 2, 5).copy(broken, pageSize * 2);

  const r = await openRepository(sqlRepo, PASSWORD);
  try {
    await takeSnapshot(r, sqliteVirtual(`sqlite:${good}`, goodBytes, { notes: 300 }));
    await takeSnapshot(r, sqliteVirtual(`sqlite:${path.join(dir, "broken.db")}`, broken));
  } finally {
    await r.close();
  }

  const ok = await run(["drill", "--source", `sqlite:${good}`, "--json"], { env: sqlEnv });
  assert.equal(ok.code, 0, show(ok));
  const s = summary(ok);
  assert.equal(s.source, "sqlite");
  assert.equal(s.engineCheck, "ok");
  assert.equal(s.files, 1);
  assert.equal(s.bytes, goodBytes.length);

  const bad = await run(["drill", "--source", `sqlite:${path.join(dir, "broken.db")}`, "--json"], {
    env: sqlEnv,
  });
  assert.equal(bad.code, 14, show(bad));
  const bs = summary(bad);
  assert.deepEqual(bs.failures, [], "the file itself restored exactly as backed up");
  assert.ok(bs.engineCheck && bs.engineCheck !== "ok", `engine check: ${bs.engineCheck}`);
  assert.match(
    jsonLines(bad.stderr).find((m) => m.message_type === "error")!.message as string,
    /database check/,
  );

  const st = await status(sqlEnv);
  assert.equal(st.series.length, 2);
  const goodSeries = st.series.find((x) => x.paths[0] === `sqlite:${good}`)!;
  assert.equal(goodSeries.source, "sqlite");
  assert.equal(goodSeries.lastDrill?.engineCheck, "ok");
  assert.equal(goodSeries.lastDrill?.ok, true);
  const badSeries = st.series.find((x) => x !== goodSeries)!;
  assert.equal(badSeries.lastDrill?.ok, false);
  assert.notEqual(badSeries.lastDrill?.engineCheck, "ok");
});

test("row counts recorded at backup time are compared after the restore", async () => {
  const sqlRepo = path.join(dir, "sqlrepo2");
  const sqlEnv = { ...env, LIFEBOAT_REPOSITORY: sqlRepo };
  assert.equal((await run(["init"], { env: sqlEnv })).code, 0);
  const db = path.join(dir, "counted.db");
  makeDb(db, 20);
  const r = await openRepository(sqlRepo, PASSWORD);
  try {
    // The backup "recorded" 21 rows: the restored database has 20, so the drill must fail.
    await takeSnapshot(r, sqliteVirtual(`sqlite:${db}`, await fs.readFile(db), { notes: 21 }));
  } finally {
    await r.close();
  }
  const res = await run(["drill", "--json"], { env: sqlEnv });
  assert.equal(res.code, 14, show(res));
  assert.match(summary(res).engineCheck ?? "", /notes has 20 rows, the backup recorded 21/);
});
