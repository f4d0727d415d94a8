/**
 * `lifeboat replicate sqlite:PATH` through the built CLI while a separate writer process moves
 * money between accounts at hundreds to 1,000 transactions per second; `restore --time T` and
 * `restore` (latest) on the result. Also: checkpoints forced by the writer, and a database that
 * is not in WAL mode.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { after, afterEach, before, test } from "node:test";
import Database from "better-sqlite3";
import { openBackend } from "../../src/backend/open.js";
import { catalogKind } from "../../src/repo/records-segment-levels.js";
import { Repository } from "../../src/repo/repository.js";
import { readGeneration } from "../../src/sources/sqlite-replicate/catalog.js";
import { planSqliteRestore, restoreReplica } from "../../src/sources/sqlite-replicate/restore.js";
import { replicationOf } from "../../src/sources/sqlite-replicate/segments.js";
import { baseEnv, CLI, jsonLines, type RunResult, run, tempDir } from "../support/cli.js";

let base: string;
let env: Record<string, string>;
const PW = "replicate-test";
const ACCOUNTS = 500;
const START = 1000;
const TOTAL = ACCOUNTS * START;

const show = (r: RunResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The writer: its own process (like an application), one transaction per transfer, each logging
 * an increasing id and its wall-clock time taken inside the transaction (so before the commit).
 * Runs until stdin closes; `checkpointEvery` forces PRAGMA wal_checkpoint(TRUNCATE) every N
 * transfers. Prints one JSON line when done.
 */
const WRITER = `
import Database from ${JSON.stringify(createRequire(import.meta.url).resolve("better-sqlite3"))};
const [file, rate, checkpointEvery] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const db = new Database(file, { timeout: 60000 });
const debit = db.prepare("UPDATE accounts SET balance = balance - ? WHERE id = ?");
const credit = db.prepare("UPDATE accounts SET balance = balance + ? WHERE id = ?");
const log = db.prepare("INSERT INTO transfers (src, dst, amount, t) VALUES (?, ?, ?, ?)");
const tx = db.transaction((s, d, a) => { debit.run(a, s); credit.run(a, d); return log.run(s, d, a, Date.now()).lastInsertRowid; });
let stop = false;
process.stdin.on("data", () => {});
process.stdin.on("end", () => { stop = true; });
let n = 0, last = 0;
const checkpoints = [];
const t0 = Date.now();
process.stdout.write(JSON.stringify({ started: t0 }) + "\\n");
while (!stop) {
  const due = Math.floor(((Date.now() - t0) * rate) / 1000);
  while (n < due) {
    const r = ${ACCOUNTS};
    last = Number(tx(1 + Math.floor(Math.random() * r), 1 + Math.floor(Math.random() * r), 1 + Math.floor(Math.random() * 50)));
    n++;
    if (checkpointEvery > 0 && n % checkpointEvery === 0) {
      const c = db.pragma("wal_checkpoint(TRUNCATE)")[0];
      checkpoints.push({ ...c, at: Date.now() });
    }
  }
  await new Promise((r) => setTimeout(r, 2));
}
db.close();
process.stdout.write(JSON.stringify({ n, last, seconds: (Date.now() - t0) / 1000, checkpoints }) + "\\n");
`;

interface WriterResult {
  n: number;
  last: number;
  seconds: number;
  checkpoints: { busy: number; log: number; checkpointed: number; at: number }[];
}

/** Every writer and replicate started, so that a failed test never leaves one running (the test
 * file would wait for it forever). */
const children = new Set<ChildProcess>();
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.on("close", () => children.delete(child));
  return child;
}

function startWriter(file: string, rate: number, checkpointEvery = 0) {
  const child = track(
    spawn(process.execPath, [path.join(base, "writer.mjs"), file, String(rate), String(checkpointEvery)], {
      stdio: ["pipe", "pipe", "pipe"],
    }),
  );
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number>((r) => child.on("close", (code) => r(code ?? -1)));
  return {
    async stop(): Promise<WriterResult> {
      child.stdin!.end();
      const code = await exited;
      assert.equal(code, 0, `writer failed: ${err}`);
      return JSON.parse(out.trim().split("\n").at(-1)!) as WriterResult;
    },
  };
}

/** `lifeboat replicate` in the background; stop() sends SIGINT and waits for it to finish. */
function startReplicate(args: string[]) {
  const child: ChildProcess = track(
    spawn(process.execPath, [CLI, "replicate", ...args, "--json"], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number>((r) => child.on("close", (code) => r(code ?? -1)));
  return {
    get stdout() {
      return stdout;
    },
    /** Resolves once the first full snapshot is stored (generous: a loaded machine is slow). */
    async ready(): Promise<void> {
      const until = Date.now() + 120_000;
      while (!stdout.includes('"message_type":"snapshot"')) {
        if (child.exitCode !== null || Date.now() > until)
          throw new Error(`replicate did not start:\n${stderr}`);
        await sleep(50);
      }
    },
    async stop(): Promise<RunResult> {
      child.kill("SIGINT");
      const code = await exited;
      return { code, stdout, stderr };
    },
  };
}

function createBank(file: string, mode: "wal" | "delete"): void {
  const db = new Database(file);
  db.pragma(`journal_mode = ${mode}`);
  db.exec(`
    CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
    CREATE TABLE transfers (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER, t INTEGER);
  `);
  const ins = db.prepare("INSERT INTO accounts (id, balance) VALUES (?, ?)");
  db.transaction(() => {
    for (let i = 1; i <= ACCOUNTS; i++) ins.run(i, START);
  })();
  db.close();
}

/**
 * Checks a restored bank: integrity_check, the total, every balance against the transfers in
 * the same file, and that the transfers are a gap-free prefix 1..n. Returns the transfer times.
 */
function checkBank(file: string): { n: number; times: number[] } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
    const { total } = db.prepare("SELECT sum(balance) AS total FROM accounts").get() as { total: number };
    assert.equal(total, TOTAL, "balances do not add up: a torn transaction");
    const wrong = db
      .prepare(
        `SELECT count(*) AS n FROM accounts a WHERE a.balance != ${START}
           - coalesce((SELECT sum(amount) FROM transfers WHERE src = a.id), 0)
           + coalesce((SELECT sum(amount) FROM transfers WHERE dst = a.id), 0)`,
      )
      .get() as { n: number };
    assert.equal(wrong.n, 0, "balances disagree with the transfer log");
    const rows = db.prepare("SELECT id, t FROM transfers ORDER BY id").all() as { id: number; t: number }[];
    for (const [i, r] of rows.entries()) assert.equal(r.id, i + 1, "the transfer ids have a gap");
    return { n: rows.length, times: rows.map((r) => r.t) };
  } finally {
    db.close();
  }
}

interface SegmentLine {
  generation: string;
  index: number;
  commits: number;
  wal_restarted: boolean;
  commits_after: string;
  commits_before: string;
  stored_at: string;
}

before(async () => {
  base = await tempDir("lifeboat-db-replicate-");
  env = baseEnv({ LIFEBOAT_REPOSITORY: path.join(base, "repo"), LIFEBOAT_PASSWORD: PW });
  await fs.writeFile(path.join(base, "writer.mjs"), WRITER);
  const r = await run(["init"], { env });
  assert.equal(r.code, 0, show(r));
});
// A test that failed midway must not leave a writer or replicate behind for the next one.
afterEach(() => {
  for (const c of children) c.kill("SIGKILL");
});
after(async () => {
  if (base) await fs.rm(base, { recursive: true, force: true });
});

test("replicate while 1,000 tx/s commit: restore --time T holds exactly what was committed by T; latest holds all", async () => {
  const file = path.join(base, "bank.db");
  createBank(file, "wal");
  const rep = startReplicate([`sqlite:${file}`, "--interval", "1s"]);
  await rep.ready();
  const writer = startWriter(file, 1000);
  await sleep(3500);
  const T = Date.now();
  await sleep(3500);
  const w = await writer.stop();
  const r = await rep.stop();
  assert.equal(r.code, 0, show(r));
  const rate = w.n / w.seconds;
  assert.ok(rate > 300, `the writer managed only ${rate.toFixed(0)} tx/s`);
  const lines = jsonLines(r.stdout);
  const segs = lines.filter((l) => l.message_type === "segment") as unknown as SegmentLine[];
  const summary = lines.find((l) => l.message_type === "summary") as Record<string, number>;
  assert.ok(segs.length >= 5, `only ${segs.length} segments in 7 s`);
  // The WAL grew past 4 MiB a second here, so replicate let it restart, and followed it.
  assert.ok(
    segs.some((s) => s.wal_restarted),
    "the WAL never restarted",
  );

  // Latest: every committed transfer.
  const latest = path.join(base, "latest.db");
  const rl = await run(["restore", `sqlite:${file}`, "--target", latest, "--json"], { env });
  assert.equal(rl.code, 0, show(rl));
  const all = checkBank(latest);
  assert.equal(all.n, w.last, "the latest restore lacks committed transfers");
  assert.equal(all.n, w.n);

  // As of T: nothing committed after T, everything committed before the read that T falls after.
  const atT = path.join(base, "at-t.db");
  const iso = new Date(T).toISOString();
  const rt = await run(["restore", `sqlite:${file}`, "--time", iso, "--target", atT, "--json"], { env });
  assert.equal(rt.code, 0, show(rt));
  const got = checkBank(atT);
  const rs = jsonLines(rt.stdout).find((l) => l.message_type === "summary")!;
  const k = segs.filter((s) => Date.parse(s.commits_before) <= T).length - 1;
  assert.ok(k >= 0 && k + 1 < segs.length, `T is not inside the replicated period (segment ${k})`);
  assert.equal(rs.state_time, segs[k]!.commits_before);
  const after = got.times.filter((t) => t > T);
  assert.deepEqual(after, [], "restore --time T holds transfers committed after T");
  // Every transfer committed before segment k's read began is in (100 ms for a commit to land).
  const readBegan = Date.parse(segs[k + 1]!.commits_after);
  const missing = all.times.slice(got.n).filter((t) => t < readBegan - 100);
  assert.deepEqual(missing, [], "restore --time T lacks transfers committed before the read it ends with");
  // The documented granularity: what is missing was committed within one interval (+ the time
  // a cycle takes) before T.
  const gap = T - readBegan;
  assert.ok(gap < 2000, `restore --time T is ${gap} ms behind T`);
  assert.ok(got.n > 0 && got.n < all.n);

  // Lag: for each segment, the transfers it holds (by restoring as of its read) and when it was stored.
  const repo = await Repository.open(await openBackend(path.join(base, "repo")), PW);
  const lags: number[] = [];
  try {
    let prev = 0;
    const gen = segs.at(-1)!.generation;
    for (const s of segs.filter((x) => x.generation === gen)) {
      const plan = await planSqliteRestore(repo, `sqlite:${file}`, new Date(s.commits_before));
      assert.ok(plan);
      const out = path.join(base, `lag-${s.index}.db`);
      await restoreReplica(repo, plan, out);
      const db = new Database(out, { readonly: true });
      const { n } = db.prepare("SELECT count(*) AS n FROM transfers").get() as { n: number };
      db.close();
      for (const t of all.times.slice(prev, n)) lags.push(Date.parse(s.stored_at) - t);
      prev = Math.max(prev, n);
    }
  } finally {
    await repo.close();
  }
  lags.sort((a, b) => a - b);
  const q = (p: number) => lags[Math.min(lags.length - 1, Math.floor(p * lags.length))]!;
  console.log(
    `replicate: ${w.n} transfers at ${rate.toFixed(0)} tx/s, ${segs.length} segments; lag over ${lags.length} transfers: ` +
      `p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${lags.at(-1)} ms (replicate's own bound: mean ${summary.lag_mean_ms} ms, max ${summary.lag_max_ms} ms); ` +
      `restore --time T: ${got.n}/${all.n} transfers, ${gap} ms before T`,
  );
  assert.ok(lags.length > w.n / 3, "too few transfers measured");
  assert.ok(q(0.99) < 2000, `p99 lag ${q(0.99)} ms`);
});

test("checkpoints forced by the writer (TRUNCATE) while replicate runs lose no frame", async () => {
  const file = path.join(base, "ckpt.db");
  createBank(file, "wal");
  // (Windows too long to be merged during the test: the segment deleted below stays needed.)
  const rep = startReplicate([`sqlite:${file}`, "--interval", "500ms", "--levels", "1h,2h"]);
  await rep.ready();
  const writer = startWriter(file, 400, 300);
  await sleep(4500);
  const w = await writer.stop();
  const r = await rep.stop();
  assert.equal(r.code, 0, show(r));
  // The checkpoints went through (waiting for replicate's read transaction to move on).
  const done = w.checkpoints.filter((c) => c.busy === 0);
  assert.ok(done.length >= 1, `checkpoints: ${JSON.stringify(w.checkpoints)}`);
  console.log(
    `replicate: ${w.n} transfers with ${done.length} of ${w.checkpoints.length} wal_checkpoint(TRUNCATE) completed by the writer`,
  );
  const segs = jsonLines(r.stdout).filter((l) => l.message_type === "segment") as unknown as SegmentLine[];
  assert.ok(
    segs.some((s) => s.wal_restarted),
    "no segment followed a truncated WAL",
  );
  assert.equal(new Set(segs.map((s) => s.generation)).size, 1, "a checkpoint forced a new generation");
  const out = path.join(base, "ckpt-restored.db");
  const rr = await run(["restore", `sqlite:${file}`, "--target", out], { env });
  assert.equal(rr.code, 0, show(rr));
  assert.equal(checkBank(out).n, w.n);

  // A segment missing from the middle of the generation: restore refuses (exit 14) instead of
  // applying the later ones over a gap.
  const victim = segs[Math.floor(segs.length / 2)]!;
  const repo = await Repository.open(await openBackend(path.join(base, "repo")), PW);
  try {
    const stored = (await readGeneration(repo, victim.generation)).segments.find(
      (s) => s.level === 0 && s.first === victim.index,
    )!;
    await repo.backend.delete(stored.object);
  } finally {
    await repo.close();
  }
  const gap = await run(["restore", `sqlite:${file}`, "--target", path.join(base, "gap.db")], { env });
  assert.equal(gap.code, 14, show(gap));
  assert.match(gap.stderr, /is missing/);
  await assert.rejects(fs.stat(path.join(base, "gap.db")));
  // Also at a time the missing segment applies by and the next one does not: stopping before
  // the gap would silently leave out what was committed in it.
  const at = segs[segs.indexOf(victim) + 1]!;
  const gapAt = await run(
    ["restore", `sqlite:${file}`, "--target", path.join(base, "gap-at.db"), "--time", victim.commits_before],
    { env },
  );
  assert.ok(Date.parse(at.commits_before) > Date.parse(victim.commits_before));
  assert.equal(gapAt.code, 14, show(gapAt));
  assert.match(gapAt.stderr, /is missing/);
});

test("generations every --snapshot-interval; --retention deletes what no point in the period needs", async () => {
  const file = path.join(base, "retention.db");
  createBank(file, "wal");
  const started = Date.now();
  const rep = startReplicate([
    `sqlite:${file}`,
    "--interval",
    "300ms",
    "--snapshot-interval",
    "1s",
    "--retention",
    "2s",
  ]);
  await rep.ready();
  const writer = startWriter(file, 200);
  await sleep(5000);
  const w = await writer.stop();
  const r = await rep.stop();
  assert.equal(r.code, 0, show(r));
  const stopped = Date.now();
  const lines = jsonLines(r.stdout);
  const made = lines.filter((l) => l.message_type === "snapshot").map((l) => String(l.generation));
  const deleted = lines.filter((l) => l.message_type === "deleted").map((l) => String(l.generation));
  assert.ok(made.length >= 4, `only ${made.length} generations`);
  assert.ok(deleted.length >= 2, `retention deleted ${deleted.length} generations`);
  const repo = await Repository.open(await openBackend(path.join(base, "repo")), PW);
  try {
    const source = `sqlite:${file}`;
    const snaps = (await repo.listSnapshots()).filter((s) => s.paths[0] === source);
    const kept = snaps.map((s) => replicationOf(s)!.generation);
    assert.deepEqual(
      kept.filter((g) => deleted.includes(g)),
      [],
      "a deleted generation's snapshot is still there",
    );
    assert.ok(kept.includes(made.at(-1)!), "the current generation was deleted");
    let segs = 0;
    for (const g of kept) segs += (await readGeneration(repo, g)).segments.length;
    assert.ok(segs > 0);
    for (const g of deleted) {
      const left = await readGeneration(repo, g);
      assert.equal(
        left.objects.size + left.catalogs.length,
        0,
        `segments of deleted generation ${g} are left`,
      );
    }
    // Every point of the retention period (up to the last retention pass) is still restorable:
    // the oldest kept snapshot is not younger than the period.
    const oldest = Math.min(...snaps.map((s) => Date.parse(s.time)));
    assert.ok(oldest <= stopped - 2000, "retention deleted a generation still needed for the period");
  } finally {
    await repo.close();
  }
  const out = path.join(base, "retention-latest.db");
  const rl = await run(["restore", `sqlite:${file}`, "--target", out], { env });
  assert.equal(rl.code, 0, show(rl));
  assert.equal(checkBank(out).n, w.n);
  // Before the oldest kept generation there is nothing to restore from.
  const early = await run(
    [
      "restore",
      `sqlite:${file}`,
      "--time",
      new Date(started).toISOString(),
      "--target",
      path.join(base, "x.db"),
    ],
    { env },
  );
  assert.equal(early.code, 13, show(early));
});

test("while a busy database's first full snapshot is copied and stored, segments keep being shipped", async () => {
  const file = path.join(base, "large.db");
  createBank(file, "wal");
  // About 96 MiB of incompressible rows, so that copying, checking and storing the snapshot
  // takes several intervals.
  const db = new Database(file);
  db.exec("CREATE TABLE filler (id INTEGER PRIMARY KEY, data BLOB NOT NULL)");
  const fill = db.prepare("INSERT INTO filler (data) VALUES (?)");
  for (let i = 0; i < 24; i++)
    db.transaction(() => {
      for (let j = 0; j < 1024; j++) fill.run(randomBytes(4000));
    })();
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
  const INTERVAL = 200;
  // The writer is busy before replicate starts, as on a live server.
  const writer = startWriter(file, 300);
  await sleep(500);
  const rep = startReplicate([`sqlite:${file}`, "--interval", `${INTERVAL}ms`]);
  await rep.ready();
  await sleep(1500);
  const w = await writer.stop();
  const r = await rep.stop();
  assert.equal(r.code, 0, show(r));
  const lines = jsonLines(r.stdout);
  const first = lines.findIndex((l) => l.message_type === "snapshot");
  const snap = lines[first]!;
  const gen = String(snap.generation);
  const snapshotMs = Number(snap.seconds) * 1000;
  const segs = lines.filter((l) => l.message_type === "segment" && l.generation === gen);
  const during = lines.slice(0, first).filter((l) => l.message_type === "segment" && l.generation === gen);
  const lags = segs.map((l) => Number(l.lag_max_ms));
  console.log(
    `replicate: first snapshot of ${(Number(snap.bytes) / 2 ** 20).toFixed(0)} MiB took ${Math.round(snapshotMs)} ms; ` +
      `${during.length} segments shipped meanwhile; lag_max of the generation's segments: ${lags.join(", ")} ms`,
  );
  // Meaningful only when the snapshot outlasts a few intervals.
  assert.ok(snapshotMs > 3 * INTERVAL, `the snapshot took only ${snapshotMs} ms`);
  assert.ok(during.length >= 2, `only ${during.length} segments were shipped while the snapshot was stored`);
  // No segment waited for the snapshot: each one's lag stays well below the snapshot's duration
  // (before, the first segment after it held everything committed meanwhile).
  assert.ok(Math.max(...lags) < Math.max(snapshotMs * 0.75, 4 * INTERVAL), `lags ${lags.join(", ")} ms`);

  // The segments shipped during the snapshot are usable: restore as of one of them, and latest.
  const mid = String(during.at(-1)!.commits_before);
  const atMid = path.join(base, "large-mid.db");
  const rm = await run(["restore", `sqlite:${file}`, "--time", mid, "--target", atMid], { env });
  assert.equal(rm.code, 0, show(rm));
  const got = checkBank(atMid);
  assert.ok(
    got.n > 0 && got.times.every((t) => t <= Date.parse(mid)),
    "restore --time holds later transfers",
  );
  const latest = path.join(base, "large-latest.db");
  const rl = await run(["restore", `sqlite:${file}`, "--target", latest], { env });
  assert.equal(rl.code, 0, show(rl));
  assert.equal(checkBank(latest).n, w.n);
  assert.ok(got.n < w.n);
});

test("copy: a second repository alone restores to a point in time (segments copied once)", async () => {
  const file = path.join(base, "copied.db");
  createBank(file, "wal");
  const rep = startReplicate([`sqlite:${file}`, "--interval", "500ms"]);
  await rep.ready();
  const writer = startWriter(file, 300);
  await sleep(3000);
  const w = await writer.stop();
  const r = await rep.stop();
  assert.equal(r.code, 0, show(r));
  const segs = jsonLines(r.stdout).filter((l) => l.message_type === "segment") as unknown as SegmentLine[];
  assert.ok(segs.length >= 3, `only ${segs.length} segments`);
  const mid = segs[Math.floor(segs.length / 2)]!.commits_before;

  const repo = path.join(base, "repo");
  const copyEnv = baseEnv({ LIFEBOAT_REPOSITORY: path.join(base, "copy-repo"), LIFEBOAT_PASSWORD: "other" });
  assert.equal((await run(["init"], { env: copyEnv })).code, 0);
  const from = ["--from-repo", repo, "--json"];
  const fromEnv = { ...copyEnv, LIFEBOAT_FROM_PASSWORD: PW };
  const c1 = await run(["copy", ...from], { env: fromEnv });
  assert.equal(c1.code, 0, show(c1));
  const s1 = jsonLines(c1.stdout).find((l) => l.message_type === "summary") as {
    records: { segments: { copied: number; skipped: number } };
  };
  // Every segment in force, of every generation of every source.
  const original = await Repository.open(await openBackend(repo), PW);
  let all = 0;
  const gens = new Set((await original.records.list(catalogKind)).map((c) => c.record.generation));
  for (const s of await original.listSnapshots()) {
    const g = replicationOf(s)?.generation;
    if (g) gens.add(g);
  }
  for (const g of gens) {
    all += (await readGeneration(original, g)).segments.length;
  }
  await original.close();
  assert.ok(all >= 3, `${all} segments`);
  assert.equal(s1.records.segments.copied, all, "every segment of every source");
  const c2 = await run(["copy", ...from], { env: fromEnv });
  const s2 = jsonLines(c2.stdout).find((l) => l.message_type === "summary") as typeof s1;
  assert.deepEqual(s2.records.segments, { copied: 0, skipped: all }, "nothing copied twice");

  // Restores from the original, then from the copy with the original out of reach: the same.
  const restoreBoth = async (args: string[], name: string) => {
    const a = path.join(base, `${name}-original.db`);
    const b = path.join(base, `${name}-copy.db`);
    const ra = await run(["restore", `sqlite:${file}`, ...args, "--target", a], { env });
    assert.equal(ra.code, 0, show(ra));
    await fs.rename(repo, `${repo}.away`);
    try {
      const rb = await run(["restore", `sqlite:${file}`, ...args, "--target", b], { env: copyEnv });
      assert.equal(rb.code, 0, show(rb));
    } finally {
      await fs.rename(`${repo}.away`, repo);
    }
    const got = checkBank(b);
    assert.deepEqual(got, checkBank(a), `${name}: the copy restores what the original does`);
    return got;
  };
  const atMid = await restoreBoth(["--time", mid], "copy-mid");
  const latest = await restoreBoth([], "copy-latest");
  assert.ok(atMid.n > 0 && atMid.n < latest.n, `${atMid.n} of ${latest.n} transfers by the middle`);
  assert.equal(latest.n, w.n);
});

test("replicate refuses a database that is not in WAL mode, saying how to switch", async () => {
  const file = path.join(base, "rollback.db");
  createBank(file, "delete");
  const r = await run(["replicate", `sqlite:${file}`], { env });
  assert.equal(r.code, 2, show(r));
  assert.match(r.stderr, /journal_mode=delete/);
  assert.match(r.stderr, /PRAGMA journal_mode=WAL/);
  // The database was not changed (still rollback-journal).
  const db = new Database(file, { readonly: true });
  assert.equal(db.pragma("journal_mode", { simple: true }), "delete");
  db.close();
});
