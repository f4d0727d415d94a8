/**
 * `lifeboat backup postgres://...` and `restore --target-db` through the built CLI against a real
 * PostgreSQL server on 127.0.0.1: a consistent dump while transfers keep committing, restore
 * into a new database, and the errors a user meets (wrong password, nothing listening, no
 * pg_dump, a restore that fails half-way).
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import pg from "pg";
import { baseEnv, jsonLines, type RunResult, run, tempDir } from "../support/cli.js";
import { freePort, type PostgresServer, startPostgres } from "../support/db-servers.js";
import { startPgTransfers } from "../support/transfers.js";

let server: PostgresServer;
let base: string;
let env: Record<string, string>;

const ACCOUNTS = 1000;
const START_BALANCE = 1000;
const TOTAL = ACCOUNTS * START_BALANCE;

const show = (r: RunResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
const summary = (r: RunResult) => {
  const s = jsonLines(r.stdout).find((m) => m.message_type === "summary");
  assert.ok(s, `no summary in\n${show(r)}`);
  return s as Record<string, unknown>;
};
/** Errors are one line (plus an optional hint line), never a stack trace. */
const assertOneLineError = (r: RunResult, code: number, re: RegExp) => {
  assert.equal(r.code, code, show(r));
  const lines = r.stderr.trim().split("\n");
  assert.match(lines[0]!, /^error: /, show(r));
  assert.ok(lines.length <= 2 && (lines.length === 1 || /^ {2}hint: /.test(lines[1]!)), show(r));
  assert.match(r.stderr, re);
};

async function client(database: string): Promise<pg.Client> {
  const c = new pg.Client({
    host: "127.0.0.1",
    port: server.port,
    user: "postgres",
    password: server.password,
    database,
  });
  await c.connect();
  return c;
}

async function databaseExists(name: string): Promise<boolean> {
  const c = await client("postgres");
  try {
    return ((await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [name])).rowCount ?? 0) > 0;
  } finally {
    await c.end();
  }
}

before(async () => {
  server = await startPostgres();
  base = await tempDir("lifeboat-db-pg-");
  env = baseEnv({ LIFEBOAT_REPOSITORY: path.join(base, "repo"), LIFEBOAT_PASSWORD: "db-test" });
  const r = await run(["init"], { env });
  assert.equal(r.code, 0, show(r));
  const c = await client("postgres");
  await c.query("CREATE DATABASE bank");
  await c.end();
  const b = await client("bank");
  await b.query(`
    CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
    CREATE TABLE transfers (id bigserial PRIMARY KEY, src int, dst int, amount int, at timestamptz DEFAULT now());
    CREATE TABLE documents (id serial PRIMARY KEY, body text);
    INSERT INTO accounts SELECT g, ${START_BALANCE} FROM generate_series(1, ${ACCOUNTS}) g;
    INSERT INTO documents (body) SELECT repeat(md5(g::text), 20) FROM generate_series(1, 8000) g;
    CREATE VIEW balances AS SELECT sum(balance) AS total FROM accounts;
    CREATE FUNCTION total_balance() RETURNS bigint LANGUAGE sql AS 'SELECT sum(balance) FROM accounts';
  `);
  await b.end();
});

after(async () => {
  await server?.stop();
  if (base) await fs.rm(base, { recursive: true, force: true });
});

test("pg_dump while transfers commit; restore --target-db into a new database adds up exactly", async () => {
  const writer = startPgTransfers(() => client("bank"), ACCOUNTS);
  await new Promise((r) => setTimeout(r, 500));
  const before = writer.count;
  const started = Date.now();
  const r = await run(["backup", server.url("bank"), "--json", "--tag", "pg"], { env });
  const secs = (Date.now() - started) / 1000;
  const during = writer.count - before;
  await new Promise((res) => setTimeout(res, 200));
  await writer.stop();
  assert.equal(r.code, 0, show(r));
  const s = summary(r);
  console.log(
    `postgres: ${(Number(s.total_bytes_processed) / 2 ** 20).toFixed(1)} MiB dump backed up in ${secs.toFixed(2)}s while ${during} transfers committed (${(during / secs).toFixed(0)} tx/s)`,
  );
  assert.ok(during > 20, `only ${during} transfers committed during the backup`);
  assert.equal(s.source, "postgres");
  assert.equal(s.source_name, `postgres://postgres@127.0.0.1:${server.port}/bank`);
  assert.ok(!JSON.stringify(s).includes(server.password), "the password must not be stored");
  const meta = s.source_meta as { databases: { name: string; file: string; tables: number }[] };
  assert.deepEqual(
    meta.databases.map((d) => [d.name, d.file, d.tables]),
    [["bank", "bank.dump", 3]],
  );

  const rr = await run(
    ["restore", String(s.snapshot_id), "--target-db", server.url("bank_restored"), "--json"],
    { env },
  );
  assert.equal(rr.code, 0, show(rr));
  assert.equal(summary(rr).database, "bank_restored");
  const c = await client("bank_restored");
  try {
    const total = await c.query<{ t: string; n: string }>(
      "SELECT sum(balance)::text AS t, count(*)::text AS n FROM accounts",
    );
    assert.equal(Number(total.rows[0]!.n), ACCOUNTS);
    assert.equal(
      Number(total.rows[0]!.t),
      TOTAL,
      "restored balances do not add up: the dump is not consistent",
    );
    // Every logged transfer belongs to a transaction whose balance changes are there too:
    // replaying the log from the start balances gives the restored balances exactly.
    const replay = await c.query<{ bad: string }>(`
      WITH moved AS (
        SELECT id, sum(delta) AS d FROM (
          SELECT src AS id, -amount AS delta FROM transfers UNION ALL SELECT dst, amount FROM transfers
        ) x GROUP BY id)
      SELECT count(*)::text AS bad FROM accounts a LEFT JOIN moved m USING (id)
      WHERE a.balance <> ${START_BALANCE} + coalesce(m.d, 0)`);
    assert.equal(replay.rows[0]!.bad, "0", "balances and the transfer log disagree");
    const transfers = await c.query<{ n: string }>("SELECT count(*)::text AS n FROM transfers");
    assert.ok(Number(transfers.rows[0]!.n) > 0 && Number(transfers.rows[0]!.n) < writer.count);
    assert.equal(
      (await c.query<{ t: string }>("SELECT total_balance()::text AS t")).rows[0]!.t,
      String(TOTAL),
    );
    assert.equal(
      (await c.query<{ t: string }>("SELECT total::text AS t FROM balances")).rows[0]!.t,
      String(TOTAL),
    );
  } finally {
    await c.end();
  }

  // The same source name restores its latest snapshot; an existing database is never written.
  const again = await run(
    [
      "restore",
      `postgres://postgres@127.0.0.1:${server.port}/bank`,
      "--target-db",
      server.url("bank_restored"),
    ],
    { env },
  );
  assertOneLineError(again, 1, /bank_restored already exists/);
});

test("--all: globals and every database; restore one with --database", async () => {
  const c = await client("postgres");
  await c.query("CREATE DATABASE shop");
  await c.end();
  const s = await client("shop");
  await s.query(
    "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'boat'), (2, 'oar')",
  );
  await s.end();
  const r = await run(["backup", "--all", server.url("postgres"), "--json"], { env });
  assert.equal(r.code, 0, show(r));
  const sum = summary(r);
  assert.equal(sum.source_name, `postgres://postgres@127.0.0.1:${server.port}/*`);
  const ls = await run(["ls", String(sum.snapshot_id)], { env });
  assert.equal(ls.code, 0, show(ls));
  for (const p of [
    "/globals.sql",
    "/databases/bank.dump",
    "/databases/shop.dump",
    "/databases/postgres.dump",
  ])
    assert.ok(ls.stdout.split("\n").includes(p), `${p} missing in\n${ls.stdout}`);

  const many = await run(["restore", String(sum.snapshot_id), "--target-db", server.url("shop2")], { env });
  assertOneLineError(many, 2, /holds \d+ databases/);
  const rr = await run(
    [
      "restore",
      `postgres://postgres@127.0.0.1:${server.port}/*`,
      "--database",
      "shop",
      "--target-db",
      server.url("shop2"),
    ],
    { env },
  );
  assert.equal(rr.code, 0, show(rr));
  const s2 = await client("shop2");
  const rows = await s2.query<{ name: string }>("SELECT name FROM items ORDER BY id");
  await s2.end();
  assert.deepEqual(
    rows.rows.map((x) => x.name),
    ["boat", "oar"],
  );
  // The raw dump files restore as files too.
  const out = path.join(base, "dumps");
  const files = await run(["restore", String(sum.snapshot_id), "--target", out], { env });
  assert.equal(files.code, 0, show(files));
  assert.match(await fs.readFile(path.join(out, "globals.sql"), "utf8"), /CREATE ROLE postgres/);
});

test("a restore that fails half-way drops the database it created and says so", async () => {
  const c = await client("postgres");
  await c.query("CREATE ROLE ghost LOGIN");
  await c.query("CREATE DATABASE haunted OWNER ghost");
  await c.end();
  const h = await client("haunted");
  await h.query("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2); ALTER TABLE t OWNER TO ghost");
  await h.end();
  const b = await run(["backup", server.url("haunted"), "--json"], { env });
  assert.equal(b.code, 0, show(b));
  const c2 = await client("postgres");
  await c2.query("DROP DATABASE haunted");
  await c2.query("DROP ROLE ghost");
  await c2.end();

  const r = await run(
    ["restore", server.url("haunted").replace(/:[^:@/]*@/, "@"), "--target-db", server.url("haunted2")],
    {
      env,
    },
  );
  assertOneLineError(
    r,
    1,
    /restore into database haunted2 failed: .*ghost.*; the incomplete database haunted2 was dropped/,
  );
  assert.equal(await databaseExists("haunted2"), false);

  const ok = await run(
    [
      "restore",
      `postgres://postgres@127.0.0.1:${server.port}/haunted`,
      "--no-owner",
      "--target-db",
      server.url("haunted2"),
    ],
    { env },
  );
  assert.equal(ok.code, 0, show(ok));
  const h2 = await client("haunted2");
  const n = await h2.query<{ n: string }>("SELECT count(*)::text AS n FROM t");
  await h2.end();
  assert.equal(n.rows[0]!.n, "2");
});

test("errors: wrong password, nothing listening, no pg_dump — one line, documented exit codes", async () => {
  const snapsBefore = (await run(["snapshots", "--json"], { env })).stdout;
  const wrong = await run(["backup", server.url("bank", "postgres", "not-the-password")], { env });
  assertOneLineError(wrong, 16, /refused the login of postgres: .*password authentication failed/);
  assert.ok(!wrong.stderr.includes("not-the-password"));

  const port = await freePort();
  const down = await run(["backup", `postgres://postgres:x@127.0.0.1:${port}/bank`], { env });
  assertOneLineError(down, 16, new RegExp(`127\\.0\\.0\\.1:${port} cannot be reached`));

  const emptyBin = path.join(base, "empty-bin");
  await fs.mkdir(emptyBin, { recursive: true });
  const noTool = await run(["backup", server.url("bank")], { env: { ...env, PATH: emptyBin } });
  assertOneLineError(noTool, 1, /pg_dump is not installed[\s\S]*postgresql-client/);

  const noRestoreTool = await run(
    ["restore", `postgres://postgres@127.0.0.1:${server.port}/bank`, "--target-db", server.url("never")],
    { env: { ...env, PATH: emptyBin } },
  );
  assertOneLineError(noRestoreTool, 1, /pg_restore is not installed[\s\S]*postgresql-client/);
  assert.equal(await databaseExists("never"), false);

  const wrongTarget = await run(
    [
      "restore",
      `postgres://postgres@127.0.0.1:${server.port}/bank`,
      "--target-db",
      server.url("never", "postgres", "bad"),
    ],
    { env },
  );
  assertOneLineError(wrongTarget, 16, /refused the login/);
  // No failed attempt left a snapshot behind.
  assert.equal((await run(["snapshots", "--json"], { env })).stdout, snapsBefore);
});
