/**
 * Mail, calendars and server databases from a write-only host (docs/format.md, "What needs a
 * full key, and why"): `pull imap://` (Dovecot), `pull dav://` (Radicale), `backup postgres://`
 * and `backup mysql://` (MariaDB) with a write-only key, through the built CLI against real
 * servers on 127.0.0.1; the owner, with a full key, exports the mail and restores the rest. The
 * host cannot read any of it back (exit 19).
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { ImapFlow } from "imapflow";
import pg from "pg";
import { ExitCode } from "../../src/core/errors.js";
import { seedAccount } from "../dav/seed.js";
import { appendTo, flagsFor, makeMessage } from "../mail/seed.js";
import { assertCleanError, baseEnv, run, runOk, show, summaryOf, tempDir } from "../support/cli.js";
import {
  type MariadbServer,
  type PostgresServer,
  startMariadb,
  startPostgres,
} from "../support/db-servers.js";
import { type Dovecot, startDovecot } from "../support/dovecot.js";
import { type Radicale, startRadicale } from "../support/radicale.js";

const FULL = "the owner's full password";
const WO = "the host's write-only password";

let dir = "";
let dv: Dovecot | undefined;
let admin: ImapFlow | undefined;
let server: PostgresServer | undefined;
let maria: MariadbServer | undefined;
let rad: Radicale | undefined;

const owner = () => baseEnv({ LIFEBOAT_REPOSITORY: path.join(dir, "repo"), LIFEBOAT_PASSWORD: FULL });
const host = () =>
  baseEnv({
    LIFEBOAT_REPOSITORY: path.join(dir, "repo"),
    LIFEBOAT_PASSWORD: WO,
    LIFEBOAT_CACHE_DIR: path.join(dir, "host-cache"),
    LIFEBOAT_SOURCE_PASSWORD: dv?.password ?? "",
  });

before(async () => {
  dir = await tempDir("lifeboat-wo-sources-");
  await runOk(["init"], { env: owner() });
  await runOk(["key", "add", "--write-only"], { env: { ...owner(), LIFEBOAT_NEW_PASSWORD: WO } });
});

after(async () => {
  await admin?.logout().catch(() => {});
  await dv?.stop();
  await server?.stop();
  await maria?.stop();
  await rad?.stop();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test("mail from a write-only host: pull works (each pull fetches everything again), the owner exports it, the host cannot", async () => {
  dv = await startDovecot();
  admin = await dv.client();
  for (let i = 0; i < 12; i++)
    await appendTo(admin, "INBOX", makeMessage(`wo${i}`, "plain", i), flagsFor(i), new Date(2020, 0, i + 1));

  const first = await run(["--json", "pull", dv.url], { env: host() });
  assert.equal(first.code, 0, show(first));
  assert.equal(summaryOf(first).messages_fetched, 12);
  // The pull's state is data the key cannot read back: the next pull is complete, not incremental.
  await appendTo(admin, "INBOX", makeMessage("wo-new", "plain", 99), [], new Date(2021, 0, 1));
  const second = await run(["--json", "pull", dv.url], { env: host() });
  assert.equal(second.code, 0, show(second));
  assert.equal(summaryOf(second).messages_fetched, 13);

  const out = path.join(dir, "maildir");
  const ex = await run(["--json", "export", "mail", "latest", "--maildir", out], { env: owner() });
  assert.equal(ex.code, 0, show(ex));
  const names = await fs.readdir(path.join(out, "cur")).catch(() => [] as string[]);
  const fresh = await fs.readdir(path.join(out, "new")).catch(() => [] as string[]);
  assert.equal(names.length + fresh.length, 13, "every message, the new one too");
  assertCleanError(
    await run(["export", "mail", "latest", "--maildir", path.join(dir, "nope")], { env: host() }),
    ExitCode.needsFullKey,
  );
});

test("a PostgreSQL database from a write-only host: backup works, the owner restores it, the host cannot", async () => {
  server = await startPostgres();
  const client = async (database: string) => {
    const c = new pg.Client({
      host: "127.0.0.1",
      port: server!.port,
      user: "postgres",
      password: server!.password,
      database,
    });
    await c.connect();
    return c;
  };
  const a = await client("postgres");
  await a.query("CREATE DATABASE shop");
  await a.end();
  const c = await client("shop");
  await c.query(
    "CREATE TABLE orders (id serial PRIMARY KEY, item text); INSERT INTO orders (item) SELECT 'item ' || g FROM generate_series(1, 300) g",
  );
  await c.end();

  const b = await run(["backup", server.url("shop"), "--json"], { env: host() });
  assert.equal(b.code, 0, show(b));
  const id = summaryOf(b).snapshot_id as string;
  assertCleanError(
    await run(["restore", id, "--target-db", server.url("nope")], { env: host() }),
    ExitCode.needsFullKey,
  );
  await runOk(["restore", id, "--target-db", server.url("shop_restored")], { env: owner() });
  const r = await client("shop_restored");
  const n = await r.query("SELECT count(*)::int AS n FROM orders");
  await r.end();
  assert.equal(n.rows[0].n, 300);
});

test("calendars and contacts from a write-only host: pull works (each pull fetches everything again), the owner restores them", async () => {
  rad = await startRadicale({ users: { ann: "dav-secret" } });
  const cols = await seedAccount(rad, "ann");
  const items = cols.reduce((n, c) => n + c.items.length, 0);
  const env = { ...host(), LIFEBOAT_SOURCE_PASSWORD: "dav-secret" };
  for (let i = 0; i < 2; i++) {
    const p = await run(["--json", "pull", rad.url("ann")], { env });
    assert.equal(p.code, 0, show(p));
    assert.equal(summaryOf(p).items_fetched, items, `pull ${i + 1} fetches every item`);
  }
  const target = path.join(dir, "dav");
  await runOk(["restore", "latest", "--target", target], { env: owner() });
  const restored = (await fs.readdir(target, { recursive: true, withFileTypes: true })).filter((f) =>
    f.isFile(),
  );
  assert.ok(restored.length >= items, `${restored.length} files for ${items} items`);
});

test("a MariaDB database from a write-only host: backup works, the owner restores it, the host cannot", async () => {
  maria = await startMariadb();
  maria.sql("CREATE DATABASE wiki");
  maria.sql(
    "CREATE TABLE pages (id INT PRIMARY KEY AUTO_INCREMENT, title TEXT); INSERT INTO pages (title) SELECT CONCAT('page ', seq) FROM seq_1_to_200",
    "wiki",
  );
  const b = await run(["backup", maria.url("wiki"), "--json"], { env: host() });
  assert.equal(b.code, 0, show(b));
  const id = summaryOf(b).snapshot_id as string;
  assertCleanError(
    await run(["restore", id, "--target-db", maria.url("nope")], { env: host() }),
    ExitCode.needsFullKey,
  );
  await runOk(["restore", id, "--target-db", maria.url("wiki_restored")], { env: owner() });
  assert.equal(maria.sql("SELECT count(*) FROM wiki_restored.pages").trim(), "200");
});
