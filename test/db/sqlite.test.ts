/**
 * `lifeboat backup sqlite:PATH` through the built CLI: a consistent copy while a writer keeps
 * moving money between accounts, restore with integrity_check, and dedup between snapshots.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import Database from "better-sqlite3";
import { baseEnv, jsonLines, type RunResult, run, tempDir } from "../support/cli.js";

let base: string;
let env: Record<string, string>;

const ACCOUNTS = 2000;
const START_BALANCE = 1000;
const TOTAL = ACCOUNTS * START_BALANCE;

const show = (r: RunResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
const summary = (r: RunResult) => {
  const s = jsonLines(r.stdout).find((m) => m.message_type === "summary");
  assert.ok(s, `no summary in\n${show(r)}`);
  return s as Record<string, unknown>;
};

before(async () => {
  base = await tempDir("lifeboat-db-sqlite-");
  env = baseEnv({ LIFEBOAT_REPOSITORY: path.join(base, "repo"), LIFEBOAT_PASSWORD: "db-test" });
  const r = await run(["init"], { env });
  assert.equal(r.code, 0, show(r));
});
after(async () => {
  if (base) await fs.rm(base, { recursive: true, force: true });
});

/** A bank: accounts whose balances always add up to TOTAL, a transfer log, and padding rows. */
function createBank(file: string, journalMode: "wal" | "delete", padRows: number): void {
  const db = new Database(file);
  db.pragma(`journal_mode = ${journalMode}`);
  db.exec(`
    CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
    CREATE TABLE transfers (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER);
    CREATE TABLE documents (id INTEGER PRIMARY KEY, body BLOB);
  `);
  const acc = db.prepare("INSERT INTO accounts (id, balance) VALUES (?, ?)");
  const doc = db.prepare("INSERT INTO documents (body) VALUES (randomblob(?))");
  db.transaction(() => {
    for (let i = 1; i <= ACCOUNTS; i++) acc.run(i, START_BALANCE);
    for (let i = 0; i < padRows; i++) doc.run(400);
  })();
  db.close();
}

/** Moves money between random accounts until stopped; yields to the event loop between batches. */
function startTransfers(file: string) {
  const db = new Database(file, { timeout: 60_000 });
  const debit = db.prepare("UPDATE accounts SET balance = balance - ? WHERE id = ?");
  const credit = db.prepare("UPDATE accounts SET balance = balance + ? WHERE id = ?");
  const log = db.prepare("INSERT INTO transfers (src, dst, amount) VALUES (?, ?, ?)");
  const transfer = db.transaction((src: number, dst: number, amount: number) => {
    debit.run(amount, src);
    credit.run(amount, dst);
    log.run(src, dst, amount);
  });
  let stop = false;
  let count = 0;
  const done = (async () => {
    while (!stop) {
      for (let i = 0; i < 10; i++) {
        const src = 1 + Math.floor(Math.random() * ACCOUNTS);
        const dst = 1 + Math.floor(Math.random() * ACCOUNTS);
        transfer(src, dst, 1 + Math.floor(Math.random() * 50));
        count++;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    db.close();
  })();
  return {
    get count() {
      return count;
    },
    async stop() {
      stop = true;
      await done;
    },
  };
}

function checkRestored(file: string, expectedTransfers?: number): void {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
    const { total, n } = db.prepare("SELECT sum(balance) AS total, count(*) AS n FROM accounts").get() as {
      total: number;
      n: number;
    };
    assert.equal(n, ACCOUNTS);
    assert.equal(total, TOTAL, "the restored balances do not add up: the copy is not consistent");
    if (expectedTransfers !== undefined) {
      const t = db.prepare("SELECT count(*) AS n FROM transfers").get() as { n: number };
      assert.equal(t.n, expectedTransfers);
    }
  } finally {
    db.close();
  }
}

for (const mode of ["wal", "delete"] as const) {
  test(`backup sqlite: (${mode} journal) while transfers run, restore adds up exactly`, async () => {
    const file = path.join(base, `bank-${mode}.db`);
    createBank(file, mode, mode === "wal" ? 50_000 : 10_000);
    const writer = startTransfers(file);
    await new Promise((r) => setTimeout(r, 300));
    const before = writer.count;
    const started = Date.now();
    const r = await run(["backup", `sqlite:${file}`, "--json", "--tag", mode], { env });
    const secs = (Date.now() - started) / 1000;
    const during = writer.count - before;
    await new Promise((res) => setTimeout(res, 200));
    await writer.stop();
    assert.equal(r.code, 0, show(r));
    const s = summary(r);
    const meta = s.source_meta as {
      tables: Record<string, number>;
      pageCount: number;
      schemaVersion: number;
    };
    assert.equal(s.source, "sqlite");
    assert.equal(meta.tables.accounts, ACCOUNTS);
    assert.ok(meta.pageCount > 0 && meta.schemaVersion > 0, JSON.stringify(meta));
    const rate = during / secs;
    console.log(
      `sqlite ${mode}: ${(Number(s.total_bytes_processed) / 2 ** 20).toFixed(1)} MiB backed up in ${secs.toFixed(2)}s while ${during} transfers committed (${rate.toFixed(0)} tx/s)`,
    );
    assert.ok(during > 20, `the writer made only ${during} transfers during the backup`);
    // Writes went on after the copy: the restored database must be the copy, not the live file.
    assert.ok(writer.count > meta.tables.transfers!, "no transfer after the copy was taken");

    const out = path.join(base, `restored-${mode}.db`);
    const rr = await run(["restore", String(s.snapshot_id), "--target", out, "--json"], { env });
    assert.equal(rr.code, 0, show(rr));
    const rs = summary(rr);
    assert.equal(rs.integrity_check, "ok");
    // Nothing but the database itself is left next to it (no temporary file, no -wal).
    const names = (await fs.readdir(base)).filter((n) => n.startsWith(`restored-${mode}`));
    assert.deepEqual(names, [`restored-${mode}.db`]);
    checkRestored(out, meta.tables.transfers);
  });
}

test("a second backup of a 20+ MB database with small changes adds a small fraction", async () => {
  const file = path.join(base, "dedup.db");
  createBank(file, "wal", 55_000);
  const size = (await fs.stat(file)).size;
  assert.ok(size > 20 * 2 ** 20 && size < 50 * 2 ** 20, `database is ${size} bytes`);
  const r1 = await run(["backup", `sqlite:${file}`, "--json"], { env });
  assert.equal(r1.code, 0, show(r1));
  const first = summary(r1);

  const db = new Database(file);
  db.transaction(() => {
    for (let i = 0; i < 100; i++) {
      db.prepare("UPDATE accounts SET balance = balance - 1 WHERE id = ?").run(1 + i * 17);
      db.prepare("UPDATE accounts SET balance = balance + 1 WHERE id = ?").run(2 + i * 17);
    }
    for (let i = 0; i < 50; i++) db.prepare("INSERT INTO documents (body) VALUES (randomblob(300))").run();
    db.prepare("UPDATE documents SET body = randomblob(400) WHERE id IN (10, 20000, 40000)").run();
  })();
  db.close();

  const r2 = await run(["backup", `sqlite:${file}`, "--json"], { env });
  assert.equal(r2.code, 0, show(r2));
  const second = summary(r2);
  const added = Number(second.data_added);
  const processed = Number(second.total_bytes_processed);
  console.log(
    `sqlite dedup: first backup added ${first.data_added} bytes, second (small changes) added ${added} of ${processed} bytes (${((100 * added) / processed).toFixed(2)}%)`,
  );
  assert.ok(processed >= size);
  assert.ok(Number(first.data_added) > size / 2, "the first backup should store the database");
  assert.ok(added < processed * 0.05, `second backup added ${added} of ${processed} bytes`);

  // `restore sqlite:PATH` picks the latest snapshot of that source.
  const out = path.join(base, "dedup-restored.db");
  const rr = await run(["restore", `sqlite:${file}`, "--target", out], { env });
  assert.equal(rr.code, 0, show(rr));
  assert.equal(second.snapshot_id !== first.snapshot_id, true);
  const check = new Database(out, { readonly: true });
  const docs = check.prepare("SELECT count(*) AS n FROM documents").get() as { n: number };
  check.close();
  assert.equal(docs.n, 55_050);
  checkRestored(out);
});

test("sqlite errors: missing file, not a database, stale -wal next to the target", async () => {
  const missing = await run(["backup", `sqlite:${path.join(base, "nope.db")}`], { env });
  assert.equal(missing.code, 2, show(missing));
  assert.match(missing.stderr, /^error: .*nope\.db does not exist$/m);

  const text = path.join(base, "notes.txt");
  await fs.writeFile(text, "hello, not a database\n");
  const notDb = await run(["backup", `sqlite:${text}`], { env });
  assert.equal(notDb.code, 2, show(notDb));
  assert.match(notDb.stderr, /not an SQLite database/);

  const file = path.join(base, "small.db");
  createBank(file, "wal", 10);
  const b = await run(["backup", `sqlite:${file}`], { env });
  assert.equal(b.code, 0, show(b));
  const target = path.join(base, "busy.db");
  await fs.writeFile(`${target}-wal`, "stale");
  const r = await run(["restore", `sqlite:${file}`, "--target", target], { env });
  assert.equal(r.code, 1, show(r));
  assert.match(r.stderr, /busy\.db-wal exists/);
  await assert.rejects(fs.stat(target), "nothing may be restored next to a stale -wal");
});
