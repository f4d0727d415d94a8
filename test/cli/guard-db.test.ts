/**
 * `lifeboat guard` with database sources through the built CLI: an SQLite database (beside a
 * folder) that loses most of its rows fails the guard (exit 4), pins every snapshot and prints
 * a rollback that restores the rows; a real PostgreSQL server on 127.0.0.1: a harmless change
 * passes, a mass delete fails with a rollback into a new database that holds the old rows.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { after, before, test } from "node:test";
import Database from "better-sqlite3";
import pg from "pg";
import { pinnedIds } from "../../src/ops/acks/acks.js";
import { openRepository } from "../../src/ops/open.js";
import { baseEnv, jsonLines, type RunResult, run, tempDir } from "../support/cli.js";
import { type PostgresServer, startPostgres } from "../support/db-servers.js";

const PASSWORD = "guard-db";
const require = createRequire(import.meta.url);
let server: PostgresServer;
let dir: string;

const show = (r: RunResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
type GuardSummary = {
  ok: boolean;
  rollback: string;
  rollbacks: string[];
  reasons: string[];
  pairs: {
    source: string;
    type: string;
    before: string;
    after: string;
    reasons: string[];
    rollback: string;
  }[];
};
const summary = (r: RunResult) => {
  const s = jsonLines(r.stdout).find((m) => m.action === "guard");
  assert.ok(s, `no guard summary in\n${show(r)}`);
  return s as unknown as GuardSummary;
};

async function newRepo(name: string): Promise<Record<string, string>> {
  const env = baseEnv({ LIFEBOAT_REPOSITORY: path.join(dir, name), LIFEBOAT_PASSWORD: PASSWORD });
  const r = await run(["init"], { env });
  assert.equal(r.code, 0, show(r));
  return env;
}

async function pinned(env: Record<string, string>): Promise<Set<string>> {
  const r = await openRepository(env.LIFEBOAT_REPOSITORY!, PASSWORD);
  try {
    return await pinnedIds(r);
  } finally {
    await r.close();
  }
}

/** A script that runs SQL on an SQLite file with better-sqlite3 (the machine may have no sqlite3). */
async function sqliteScript(name: string, file: string, sql: string): Promise<string> {
  const script = path.join(dir, name);
  await fs.writeFile(
    script,
    `const Database = require(${JSON.stringify(require.resolve("better-sqlite3"))});
const db = new Database(${JSON.stringify(file)});
db.exec(${JSON.stringify(sql)});
db.close();
`,
  );
  return script;
}

const countRows = (file: string) => {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare("SELECT count(*) AS n FROM notes").get() as { n: number }).n;
  } finally {
    db.close();
  }
};

async function pgClient(database: string): Promise<pg.Client> {
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

before(async () => {
  dir = await tempDir("lifeboat-guard-db-");
  server = await startPostgres();
  const admin = await pgClient("postgres");
  await admin.query("CREATE DATABASE app");
  await admin.end();
  const c = await pgClient("app");
  await c.query(`
    CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);
    CREATE TABLE events (id serial PRIMARY KEY, kind text);
    INSERT INTO users (name) SELECT 'user ' || g FROM generate_series(1, 600) g;
    INSERT INTO events (kind) SELECT 'login' FROM generate_series(1, 400) g;
  `);
  await c.end();
});

after(async () => {
  await server?.stop();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test("SQLite (beside a folder) losing 90% of its rows: exit 4, all snapshots pinned, the rollback restores the rows", async () => {
  const env = await newRepo("sqlite");
  const db = path.join(dir, "app.db");
  const conf = path.join(dir, "conf");
  await fs.mkdir(conf);
  await fs.writeFile(path.join(conf, "app.ini"), "[app]\nversion = 1\n");
  const h = new Database(db);
  h.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
  const ins = h.prepare("INSERT INTO notes (body) VALUES (?)");
  h.transaction(() => {
    for (let i = 0; i < 1000; i++) ins.run(`note ${i}`);
  })();
  h.close();

  // A harmless change first: a few rows more and a config edit pass.
  const add = await sqliteScript(
    "add.cjs",
    db,
    "INSERT INTO notes (body) VALUES ('one more'), ('and another')",
  );
  const ok = await run(["guard", "--source", `sqlite:${db}`, "--source", conf, "--", process.execPath, add], {
    env,
  });
  assert.equal(ok.code, 0, show(ok));
  assert.match(ok.stdout, /guard: OK — snapshots [0-9a-f]{8} \(before\) and [0-9a-f]{8} \(after\) of /);
  assert.equal(countRows(db), 1002);

  const wipe = await sqliteScript("wipe.cjs", db, "DELETE FROM notes WHERE id > 100");
  const r = await run(
    ["guard", "--source", conf, "--source", `sqlite:${db}`, "--json", "--", process.execPath, wipe],
    { env },
  );
  assert.equal(r.code, 4, show(r));
  assert.equal(countRows(db), 100);
  const s = summary(r);
  assert.equal(s.ok, false);
  assert.equal(s.pairs.length, 2);
  const dbPair = s.pairs.find((p) => p.type === "sqlite")!;
  assert.equal(dbPair.source, `sqlite:${db}`);
  assert.match(dbPair.reasons.join(), /the database lost 90% of its rows \(1002 to 100\)/);
  assert.deepEqual(s.pairs.find((p) => p.type === "files")!.reasons, []);
  assert.match(s.reasons.join("; "), new RegExp(`sqlite:${db}: the database lost 90% of its rows`));
  // Only the affected source is rolled back, into its own file.
  assert.deepEqual(s.rollbacks, [dbPair.rollback]);
  assert.equal(
    s.rollback.replace(/^lifeboat -r \S+ /, "lifeboat "),
    `lifeboat restore ${dbPair.before.slice(0, 8)} --target ${db}`,
  );
  const pins = await pinned(env);
  for (const p of s.pairs) {
    assert.ok(pins.has(p.before), "before snapshot pinned");
    assert.ok(pins.has(p.after), "after snapshot pinned");
  }
  const back = await run(s.rollback.split(" ").slice(1), { env });
  assert.equal(back.code, 0, show(back));
  assert.equal(countRows(db), 1002, "the rollback restored the rows");

  // Human output: the verdict and a rollback line naming --target.
  const wipe2 = await run(["guard", "--source", `sqlite:${db}`, "--", process.execPath, wipe], { env });
  assert.equal(wipe2.code, 4, show(wipe2));
  assert.match(wipe2.stdout, /guard: FAILED — sqlite:.*lost 90% of its rows .*are pinned/);
  assert.match(
    wipe2.stdout,
    /\n {2}to roll back: lifeboat (-r \S+ )?restore [0-9a-f]{8} --target \S+app\.db\n/,
  );
});

test("PostgreSQL: a harmless change passes; a mass delete exits 4 and its rollback restores the rows into a new database", async () => {
  const env = await newRepo("pg");
  const url = server.url("app");
  const display = `postgres://postgres@127.0.0.1:${server.port}/app`;
  const pgModule = JSON.stringify(require.resolve("pg"));
  const pgScript = async (name: string, sql: string) => {
    const script = path.join(dir, name);
    await fs.writeFile(
      script,
      `const pg = require(${pgModule});
const c = new pg.Client(${JSON.stringify(url)});
c.connect().then(() => c.query(${JSON.stringify(sql)})).then(() => c.end()).catch((e) => { console.error(e.message); process.exit(1); });
`,
    );
    return script;
  };

  const harmless = await pgScript(
    "pg-add.cjs",
    "UPDATE users SET name = name || '!' WHERE id < 50; INSERT INTO events (kind) VALUES ('upgrade')",
  );
  const ok = await run(["guard", "--source", url, "--json", "--", process.execPath, harmless], { env });
  assert.equal(ok.code, 0, show(ok));
  const s = summary(ok);
  assert.equal(s.ok, true);
  assert.equal(s.pairs.length, 1);
  assert.equal(s.pairs[0]!.source, display);
  assert.equal(
    s.rollback.replace(/^lifeboat -r \S+ /, "lifeboat "),
    `lifeboat restore ${s.pairs[0]!.before.slice(0, 8)} --target-db ${display}_restored`,
  );
  assert.ok(!ok.stdout.includes(server.password), "no password in the output");

  const wipe = await pgScript(
    "pg-wipe.cjs",
    "DELETE FROM users WHERE id > 60; DELETE FROM events WHERE id > 40",
  );
  const bad = await run(["guard", "--source", url, "--", process.execPath, wipe], { env });
  assert.equal(bad.code, 4, show(bad));
  assert.match(
    bad.stdout,
    /guard: FAILED — postgres:\/\/postgres@127\.0\.0\.1:\d+\/app: the database lost 90% of its rows \(1001 to 100\)/,
  );
  const line = bad.stdout.split("\n").find((l) => l.startsWith("  to roll back: "));
  assert.ok(line, show(bad));
  const cmd = line.slice("  to roll back: ".length);
  assert.match(
    cmd,
    new RegExp(
      `^lifeboat (-r \\S+ )?restore [0-9a-f]{8} --target-db ${display.replace(/[./]/g, "\\$&")}_restored$`,
    ),
  );
  // The URL printed has no password: the restore takes it from PGPASSWORD, as documented.
  const back = await run(cmd.split(" ").slice(1), { env: { ...env, PGPASSWORD: server.password } });
  assert.equal(back.code, 0, show(back));
  const c = await pgClient("app_restored");
  try {
    assert.equal((await c.query("SELECT count(*)::int AS n FROM users")).rows[0].n, 600);
    assert.equal((await c.query("SELECT count(*)::int AS n FROM events")).rows[0].n, 401);
  } finally {
    await c.end();
  }
});
