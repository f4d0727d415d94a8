/**
 * Segments in levels through the built CLI with real time and short windows: `replicate` is
 * killed with SIGKILL right after merges (while it writes catalogs and deletes what they
 * replaced) several times and started again, a writer moving money all along; afterwards every
 * point in time restores to a consistent bank holding nothing committed after it, the latest
 * restore holds every transfer, `check --read-data` is clean, and merged segments replaced the
 * interval ones.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { after, before, test } from "node:test";
import Database from "better-sqlite3";
import { openBackend } from "../../src/backend/open.js";
import { Repository } from "../../src/repo/repository.js";
import { readGeneration } from "../../src/sources/sqlite-replicate/catalog.js";
import { planSqliteRestore, restoreReplica } from "../../src/sources/sqlite-replicate/restore.js";
import { replicationOf } from "../../src/sources/sqlite-replicate/segments.js";
import { baseEnv, CLI, jsonLines, type RunResult, run, tempDir } from "../support/cli.js";

let base: string;
let env: Record<string, string>;
const PW = "levels-test";
const ACCOUNTS = 200;
const TOTAL = ACCOUNTS * 1000;
const show = (r: RunResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One transfer per transaction, stamped (wall clock, inside the transaction) before its commit. */
const WRITER = `
import Database from ${JSON.stringify(createRequire(import.meta.url).resolve("better-sqlite3"))};
const [file, rate] = [process.argv[2], Number(process.argv[3])];
const db = new Database(file, { timeout: 60000 });
const move = db.prepare("UPDATE accounts SET balance = balance + ? WHERE id = ?");
const log = db.prepare("INSERT INTO transfers (src, dst, amount, t) VALUES (?, ?, ?, ?)");
const tx = db.transaction((s, d, a) => { move.run(-a, s); move.run(a, d); log.run(s, d, a, Date.now()); });
let stop = false;
process.stdin.on("data", () => {});
process.stdin.on("end", () => { stop = true; });
let n = 0;
const t0 = Date.now();
while (!stop) {
  const due = Math.floor(((Date.now() - t0) * rate) / 1000);
  while (n < due) {
    tx(1 + Math.floor(Math.random() * ${ACCOUNTS}), 1 + Math.floor(Math.random() * ${ACCOUNTS}), 1 + Math.floor(Math.random() * 50));
    n++;
  }
  await new Promise((r) => setTimeout(r, 2));
}
db.close();
process.stdout.write(JSON.stringify({ n }) + "\\n");
`;

function createBank(file: string): void {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.exec(`
    CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
    CREATE TABLE transfers (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER, t INTEGER);
  `);
  const ins = db.prepare("INSERT INTO accounts (id, balance) VALUES (?, 1000)");
  db.transaction(() => {
    for (let i = 1; i <= ACCOUNTS; i++) ins.run(i);
  })();
  db.close();
}

/** A consistent bank (integrity, total, balances against the log, gap-free ids); the transfer times. */
function checkBank(file: string): number[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
    const { total } = db.prepare("SELECT sum(balance) AS total FROM accounts").get() as { total: number };
    assert.equal(total, TOTAL, "balances do not add up: a torn transaction");
    const wrong = db
      .prepare(
        `SELECT count(*) AS n FROM accounts a WHERE a.balance != 1000
           - coalesce((SELECT sum(amount) FROM transfers WHERE src = a.id), 0)
           + coalesce((SELECT sum(amount) FROM transfers WHERE dst = a.id), 0)`,
      )
      .get() as { n: number };
    assert.equal(wrong.n, 0, "balances disagree with the transfer log");
    const rows = db.prepare("SELECT id, t FROM transfers ORDER BY id").all() as { id: number; t: number }[];
    for (const [i, r] of rows.entries()) assert.equal(r.id, i + 1, "the transfer ids have a gap");
    return rows.map((r) => r.t);
  } finally {
    db.close();
  }
}

function startReplicate(file: string) {
  const child: ChildProcess = spawn(
    process.execPath,
    [CLI, "replicate", `sqlite:${file}`, "--interval", "100ms", "--levels", "1s,500ms:3s,2s", "--json"],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number>((r) =>
    child.on("close", (code, signal) => r(code ?? (signal ? 137 : -1))),
  );
  return {
    get stdout() {
      return stdout;
    },
    async until(what: string, count: number, timeoutMs = 60_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (stdout.split(`"message_type":"${what}"`).length - 1 < count) {
        if (child.exitCode !== null || Date.now() > deadline)
          throw new Error(`replicate: no ${count} ${what} lines\n${stdout.slice(-2000)}\n${stderr}`);
        await sleep(5);
      }
    },
    async kill(): Promise<number> {
      child.kill("SIGKILL");
      return exited;
    },
    async stop(): Promise<RunResult> {
      child.kill("SIGINT");
      return { code: await exited, stdout, stderr };
    },
  };
}

before(async () => {
  base = await tempDir("lifeboat-db-levels-");
  env = baseEnv({ LIFEBOAT_REPOSITORY: path.join(base, "repo"), LIFEBOAT_PASSWORD: PW });
  await fs.writeFile(path.join(base, "writer.mjs"), WRITER);
  const r = await run(["init"], { env });
  assert.equal(r.code, 0, show(r));
});
after(async () => {
  if (base) await fs.rm(base, { recursive: true, force: true });
});

test("kill -9 during merges: every point in time still restores, check is clean, merged segments replaced interval ones", async () => {
  const file = path.join(base, "bank.db");
  createBank(file);
  const writer = spawn(process.execPath, [path.join(base, "writer.mjs"), file, "300"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  let wout = "";
  writer.stdout!.on("data", (d: Buffer) => {
    wout += d.toString();
  });
  const writerDone = new Promise<void>((r) => writer.on("close", () => r()));
  const started = Date.now();
  let compacted = 0;
  let shipped = 0;
  // Killed after its n-th merge (more each round, so later rounds find older generations to
  // take over), plus a delay that lands in the catalog rewrite and the deletions that follow.
  for (const [round, delay] of [0, 3, 17, 40, 90].entries()) {
    const rep = startReplicate(file);
    await rep.until("snapshot", 1);
    await rep.until("compacted", round + 2);
    await sleep(delay);
    assert.equal(await rep.kill(), 137);
    const lines = jsonLines(rep.stdout);
    compacted += lines.filter((l) => l.message_type === "compacted").length;
    shipped += lines.filter((l) => l.message_type === "segment").length;
  }
  // A last run takes over what the killed ones left, merges for a while and stops cleanly.
  const last = startReplicate(file);
  await last.until("snapshot", 1);
  await sleep(4000);
  writer.stdin!.end();
  await writerDone;
  const n = (JSON.parse(wout.trim().split("\n").at(-1)!) as { n: number }).n;
  await sleep(300);
  const r = await last.stop();
  assert.equal(r.code, 0, show(r));
  const lines = jsonLines(r.stdout);
  compacted += lines.filter((l) => l.message_type === "compacted").length;
  shipped += lines.filter((l) => l.message_type === "segment").length;
  const ended = Date.now();

  const chk = await run(["check", "--read-data"], { env });
  assert.equal(chk.code, 0, show(chk));

  const repo = await Repository.open(await openBackend(path.join(base, "repo")), PW);
  try {
    const source = `sqlite:${file}`;
    // Points across the run (every 100 ms, or 60 evenly spaced ones when the run took longer on
    // a loaded machine: each restore checks the whole bank), and the latest.
    let restores = 0;
    let merged = 0;
    const step = Math.max(100, Math.ceil((ended + 100 - (started + 500)) / 60));
    for (let T = started + 500; T <= ended + 100; T += step) {
      const plan = await planSqliteRestore(repo, source, new Date(T));
      if (!plan) continue; // before the first snapshot
      const out = path.join(base, "at.db");
      await restoreReplica(repo, plan, out);
      const times = checkBank(out);
      assert.deepEqual(
        times.filter((t) => t > T),
        [],
        `restore --time ${new Date(T).toISOString()} holds later transfers`,
      );
      if (plan.segments.some((s) => s.kind === "levels" && s.info.level > 0)) merged++;
      restores++;
      for (const x of ["", "-wal", "-shm"]) await fs.rm(out + x, { force: true });
    }
    const latest = path.join(base, "latest.db");
    const plan = await planSqliteRestore(repo, source, undefined);
    await restoreReplica(repo, plan!, latest);
    assert.equal(checkBank(latest).length, n, "the latest restore lacks committed transfers");

    let left = 0;
    for (const s of await repo.listSnapshots()) {
      const g = replicationOf(s);
      if (g) left += (await readGeneration(repo, g.generation)).segments.filter((x) => x.level === 0).length;
    }
    console.log(
      `levels: ${n} transfers, 6 runs (5 killed with SIGKILL), ${shipped} interval segments shipped, ${compacted} merges, ${left} interval segments left; ${restores} points restored (${merged} through merged segments)`,
    );
    assert.ok(compacted >= 20, `only ${compacted} merges`);
    assert.ok(merged > restores / 3, `only ${merged} of ${restores} restores used merged segments`);
    assert.ok(left < shipped / 2, `${left} of ${shipped} interval segments are left`);
  } finally {
    await repo.close();
  }
});
