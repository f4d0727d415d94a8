/**
 * `lifeboat drill` of database dumps through the built CLI against real PostgreSQL and MariaDB
 * servers on 127.0.0.1: the dump is restored into a scratch database on the server given by
 * --scratch-db (or LIFEBOAT_DRILL_PG), checked by the engine, and dropped afterwards, also
 * when the restore or the check fails; without a scratch server the drill says what to pass.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import pg from "pg";
import { openRepository } from "../../src/ops/open.js";
import { findSnapshot } from "../../src/repo/find-snapshot.js";
import { listSnapshotFiles, readSnapshotFile } from "../../src/snapshot/snapshot-files.js";
import type { VirtualSource } from "../../src/snapshot/source.js";
import { takeSnapshot } from "../../src/snapshot/take.js";
import { baseEnv, jsonLines, type RunResult, run, tempDir } from "../support/cli.js";
import {
  type MariadbServer,
  type PostgresServer,
  startMariadb,
  startPostgres,
} from "../support/db-servers.js";

const PASSWORD = "drill-db";
let pgServer: PostgresServer;
let maria: MariadbServer;
let dir: string;
let repo: string;
let env: Record<string, string>;

const show = (r: RunResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
type Summary = {
  ok: boolean;
  engineCheck?: string;
  source: string;
  files: number;
  bytes: number;
  seconds: number;
  drill_id: string | null;
  scratch: string | null;
  failures: { path: string; reason: string }[];
  databases?: {
    name: string;
    scratch: string;
    tables: number;
    rows: number;
    check: string;
    seconds: number;
  }[];
};
const summary = (r: RunResult) => {
  const s = jsonLines(r.stdout).find((m) => m.message_type === "summary");
  assert.ok(s, `no summary in\n${show(r)}`);
  return s as unknown as Summary;
};

async function pgClient(database: string): Promise<pg.Client> {
  const c = new pg.Client({
    host: "127.0.0.1",
    port: pgServer.port,
    user: "postgres",
    password: pgServer.password,
    database,
  });
  await c.connect();
  return c;
}

async function pgDrillDatabases(): Promise<string[]> {
  const c = await pgClient("postgres");
  try {
    return (
      await c.query<{ d: string }>(
        "SELECT datname AS d FROM pg_database WHERE datname LIKE 'lifeboat_drill_%'",
      )
    ).rows.map((r) => r.d);
  } finally {
    await c.end();
  }
}

const mariaDrillDatabases = () =>
  maria
    .sql("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'lifeboat\\_drill\\_%'")
    .split("\n")
    .filter(Boolean);

const pgScratch = () => `postgres://postgres:${pgServer.password}@127.0.0.1:${pgServer.port}/`;
const pgShop = () => pgServer.url("shop");

before(async () => {
  [pgServer, maria] = await Promise.all([startPostgres(), startMariadb()]);
  dir = await tempDir("lifeboat-drill-db-");
  repo = path.join(dir, "repo");
  env = baseEnv({ LIFEBOAT_REPOSITORY: repo, LIFEBOAT_PASSWORD: PASSWORD });
  const init = await run(["init"], { env });
  assert.equal(init.code, 0, show(init));

  const admin = await pgClient("postgres");
  await admin.query("CREATE DATABASE shop");
  await admin.end();
  const shop = await pgClient("shop");
  await shop.query(`
    CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2));
    CREATE TABLE orders (id serial PRIMARY KEY, item int REFERENCES items(id), qty int);
    INSERT INTO items (name, price) SELECT 'item ' || g, g * 1.5 FROM generate_series(1, 500) g;
    INSERT INTO orders (item, qty) SELECT 1 + g % 500, g FROM generate_series(1, 200) g;
    CREATE VIEW big_orders AS SELECT * FROM orders WHERE qty > 100;
  `);
  await shop.end();
  const b = await run(["backup", pgShop()], { env });
  assert.equal(b.code, 0, show(b));

  maria.sql(`
    CREATE DATABASE wiki;
    USE wiki;
    CREATE TABLE pages (id INT PRIMARY KEY AUTO_INCREMENT, title VARCHAR(100), body TEXT) ENGINE=InnoDB;
    CREATE TABLE hits (page INT, at DATETIME) ENGINE=Aria;
    INSERT INTO pages (title, body) SELECT CONCAT('page ', seq), REPEAT('text ', 50) FROM seq_1_to_300;
    INSERT INTO hits SELECT seq % 300, NOW() FROM seq_1_to_120;
  `);
  const m = await run(["backup", maria.url("wiki")], { env });
  assert.equal(m.code, 0, show(m));
});

after(async () => {
  await Promise.all([pgServer?.stop(), maria?.stop()]);
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test("without a scratch server a database drill fails with one line naming --scratch-db", async () => {
  const r = await run(["drill", "--source", pgShop()], { env });
  assert.equal(r.code, 2, show(r));
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, show(r));
  assert.match(lines[0]!, /^error: .*PostgreSQL dump.*pass --scratch-db postgres:\/\/.*LIFEBOAT_DRILL_PG/);
  // A server of the other engine is refused just as clearly.
  const wrong = await run(["drill", "--source", maria.url("wiki"), "--scratch-db", pgScratch()], { env });
  assert.equal(wrong.code, 2, show(wrong));
  assert.match(wrong.stderr, /MariaDB\/MySQL dump but the scratch server .* is PostgreSQL/);
  assert.deepEqual(await pgDrillDatabases(), []);
});

test("PostgreSQL: restored into a scratch database, counted, checked, dropped, recorded", async () => {
  const r = await run(["drill", "--source", pgShop(), "--scratch-db", pgScratch(), "--json"], { env });
  assert.equal(r.code, 0, show(r));
  const s = summary(r);
  assert.equal(s.ok, true, show(r));
  assert.equal(s.engineCheck, "ok");
  assert.equal(s.source, "postgres");
  assert.equal(s.files, 1);
  assert.ok(s.bytes > 10_000, `dump bytes ${s.bytes}`);
  assert.ok(s.seconds > 0);
  assert.equal(s.scratch, null);
  assert.equal(s.databases?.length, 1);
  const d = s.databases![0]!;
  assert.equal(d.name, "shop");
  assert.match(d.scratch, /^lifeboat_drill_[0-9a-f]{8}$/);
  assert.equal(d.tables, 2);
  assert.equal(d.rows, 700);
  assert.deepEqual(await pgDrillDatabases(), [], "the scratch database is dropped");

  // Recorded: status shows the drill of that series with its engine check.
  const st = await run(["status", "--json"], { env });
  assert.equal(st.code, 0, show(st));
  const doc = jsonLines(st.stdout).find((m) => m.message_type === "status") as {
    series: { paths: string[]; lastDrill?: { id: string; ok: boolean; engineCheck?: string } }[];
  };
  const series = doc.series.find((x) => x.paths[0] === pgShop().replace(/:[^:@/]+@/, "@"));
  assert.ok(series, st.stdout);
  assert.equal(series.lastDrill?.id, s.drill_id);
  assert.equal(series.lastDrill?.ok, true);
  assert.equal(series.lastDrill?.engineCheck, "ok");

  // The environment works too; --keep-scratch keeps the database and names it.
  const k = await run(["drill", "--source", pgShop(), "--keep-scratch", "--json"], {
    env: { ...env, LIFEBOAT_DRILL_PG: pgScratch() },
  });
  assert.equal(k.code, 0, show(k));
  const kept = summary(k);
  const name = kept.databases![0]!.scratch;
  assert.equal(kept.scratch, `postgres://postgres@127.0.0.1:${pgServer.port}/${name}`);
  assert.deepEqual(await pgDrillDatabases(), [name]);
  const c = await pgClient(name);
  assert.equal((await c.query("SELECT count(*)::int AS n FROM items")).rows[0].n, 500);
  await c.end();
  const admin = await pgClient("postgres");
  await admin.query(`DROP DATABASE ${name}`);
  await admin.end();
});

test("PostgreSQL: a dump that does not restore, and a table the backup listed but the dump lacks, fail the drill (exit 14) and leave no scratch database", async () => {
  const r = await openRepository(repo, PASSWORD);
  const goodName = pgShop().replace(/:[^:@/]+@/, "@");
  let dump: Buffer;
  let meta: Record<string, unknown>;
  try {
    const snap = await findSnapshot(r, "latest", { paths: [goodName] });
    const [file] = await listSnapshotFiles(r, snap);
    const parts: Buffer[] = [];
    for await (const b of readSnapshotFile(r, file!)) parts.push(b);
    dump = Buffer.concat(parts);
    meta = snap.meta as Record<string, unknown>;
    const source = (name: string, bytes: Buffer, m: Record<string, unknown>): VirtualSource => ({
      name,
      type: "postgres",
      async *entries() {
        yield {
          kind: "file",
          path: "shop.dump",
          read: async function* () {
            yield bytes;
          },
        };
      },
      meta: () => m,
    });
    // The dump cut in half: pg_restore fails.
    await takeSnapshot(r, source(`${goodName}_cut`, dump.subarray(0, dump.length >> 1), meta), {
      anomaly: false,
    });
    // The whole dump, but the backup's table list names one more table.
    const dbs = meta.databases as { estimatedRows: Record<string, number> }[];
    const lying = {
      ...meta,
      databases: [{ ...dbs[0], estimatedRows: { ...dbs[0]!.estimatedRows, "public.gone": 5 } }],
    };
    await takeSnapshot(r, source(`${goodName}_lying`, dump, lying), { anomaly: false });
  } finally {
    await r.close();
  }

  const cut = await run(["drill", "--source", `${goodName}_cut`, "--scratch-db", pgScratch(), "--json"], {
    env,
  });
  assert.equal(cut.code, 14, show(cut));
  const cs = summary(cut);
  assert.equal(cs.ok, false);
  assert.equal(cs.failures[0]?.path, "/shop.dump");
  assert.match(cs.failures[0]!.reason, /restore into database lifeboat_drill_[0-9a-f]{8} failed/);
  assert.equal(cs.engineCheck, "not run: the database did not restore");
  assert.deepEqual(await pgDrillDatabases(), [], "dropped after a failed restore");

  const lie = await run(["drill", "--source", `${goodName}_lying`, "--scratch-db", pgScratch(), "--json"], {
    env,
  });
  assert.equal(lie.code, 14, show(lie));
  const ls = summary(lie);
  assert.equal(ls.ok, false);
  assert.match(ls.engineCheck ?? "", /table public\.gone of the backup is missing after restore/);
  assert.match(lie.stderr, /database check: table public\.gone/);
  assert.deepEqual(await pgDrillDatabases(), [], "dropped after a failed check");
});

test("MariaDB: restored into a scratch database, CHECK TABLE all OK, rows counted, dropped", async () => {
  const scratch = `mysql://root:${maria.password}@127.0.0.1:${maria.port}/`;
  const r = await run(["drill", "--source", maria.url("wiki"), "--scratch-db", scratch, "--json"], { env });
  assert.equal(r.code, 0, show(r));
  const s = summary(r);
  assert.equal(s.ok, true, show(r));
  assert.equal(s.engineCheck, "ok");
  assert.equal(s.source, "mysql");
  const d = s.databases![0]!;
  assert.equal(d.name, "wiki");
  assert.match(d.scratch, /^lifeboat_drill_[0-9a-f]{8}$/);
  assert.equal(d.tables, 2);
  assert.equal(d.rows, 420);
  assert.deepEqual(mariaDrillDatabases(), [], "the scratch database is dropped");
  // Human output names the database, the scratch database and the check.
  const h = await run(["drill", "--source", maria.url("wiki")], {
    env: { ...env, LIFEBOAT_DRILL_MYSQL: scratch },
  });
  assert.equal(h.code, 0, show(h));
  assert.match(h.stderr + h.stdout, /wiki -> lifeboat_drill_[0-9a-f]{8}: 2 tables, 420 rows, .*check ok/);
  assert.deepEqual(mariaDrillDatabases(), []);
});
