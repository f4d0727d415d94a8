/**
 * Rows accounts on a real PostgreSQL with a custom query per table (a join through another
 * table, `$1` the account id): the snapshot holds exactly the account's rows; restoring into the
 * shared tables uses the table's `delete`, and a `delete` that reaches further than its `query`
 * is refused inside the transaction, with nothing changed.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import pg from "pg";
import { jsonLines, removeTempDir, repoEnv, run, show, tempDir } from "../support/cli.js";
import { type PostgresServer, startPostgres } from "../support/db-servers.js";

let base: string;
let env: Record<string, string>;
let server: PostgresServer;
let db: pg.Client;

const q = async (sql: string) => (await db.query(sql)).rows as Record<string, string>[];
/** A digest of every note, per owner of its contact. */
const noteDigests = async () =>
  new Map(
    (
      await q(`SELECT c.owner, md5(string_agg(n.id || '|' || n.contact || '|' || n.body, '#' ORDER BY n.id)) AS d
        FROM notes n JOIN contacts c ON c.id = n.contact GROUP BY c.owner`)
    ).map((r) => [r.owner!, r.d!]),
  );
const errorOf = (r: { stderr: string }) =>
  String(jsonLines(r.stderr).find((m) => m.message_type === "error")?.message ?? r.stderr);

const notes = {
  table: "notes",
  query: "SELECT n.* FROM notes n JOIN contacts c ON c.id = n.contact WHERE c.owner = $1",
  delete: "DELETE FROM notes n USING contacts c WHERE c.id = n.contact AND c.owner = $1",
};

async function fleet(name: string, tables: unknown[]) {
  const cfg = path.join(base, `${name}.json`);
  await fs.writeFile(
    cfg,
    JSON.stringify({
      fleets: [
        {
          name: "notes",
          kind: "rows",
          accounts: { sql: server.url("sidekick"), query: "SELECT id, 'UTC' AS timezone FROM users" },
          rows: { url: server.url("sidekick"), tables },
          timezone: "UTC",
          state: path.join(base, "notes.db"),
          drillSample: 0,
        },
      ],
    }),
  );
  return (args: string[]) => run(["--config", cfg, "--json", ...args], { env });
}

before(async () => {
  base = await tempDir("lifeboat-fleet-pgq-");
  env = repoEnv(path.join(base, "repo"), "fleet-pw", { XDG_STATE_HOME: path.join(base, "state") });
  const init = await run(["init"], { env });
  assert.equal(init.code, 0, show(init));
  server = await startPostgres();
  const admin = new pg.Client({ connectionString: server.url("postgres") });
  await admin.connect();
  await admin.query("CREATE DATABASE sidekick");
  await admin.end();
  db = new pg.Client({ connectionString: server.url("sidekick") });
  await db.connect();
  await db.query(`
    CREATE TABLE users (id text PRIMARY KEY);
    INSERT INTO users VALUES ('ann'), ('bob');
    CREATE TABLE contacts (id int PRIMARY KEY, owner text NOT NULL);
    INSERT INTO contacts VALUES (1, 'ann'), (2, 'ann'), (3, 'bob');
    CREATE TABLE notes (id int PRIMARY KEY, contact int NOT NULL REFERENCES contacts DEFERRABLE, body text NOT NULL);
    INSERT INTO notes SELECT c.id * 10 + k, c.id, 'note ' || k || ' of ' || c.owner || ' — ✓'
      FROM contacts c, generate_series(1, 2) k;`);
});

after(async () => {
  await db?.end().catch(() => {});
  await server?.stop();
  if (base) await removeTempDir(base);
});

test("rows accounts on PostgreSQL with a custom query: exported through a join, restored alone, deletes that reach further refused", async () => {
  const cli = await fleet("notes", [{ table: "contacts", owner: "owner" }, notes]);
  const r0 = await cli(["fleet", "run", "--now", "2026-02-14T03:30:00Z"]);
  assert.equal(r0.code, 0, show(r0));
  const out = path.join(base, "ann");
  const files = await run(["--json", "restore", "--account", "ann", "--fleet", "notes", "--target", out], {
    env,
  });
  assert.equal(files.code, 0, show(files));
  const lines = (await fs.readFile(path.join(out, "rows", "notes.jsonl"), "utf8")).trim().split("\n");
  assert.equal(lines.length, 4, lines.join("\n"));
  assert.ok(lines.every((l) => / of ann — ✓$/.test(JSON.parse(l).body)));

  const before = await noteDigests();
  await q("DELETE FROM notes WHERE id = 11; UPDATE notes SET body = 'changed' WHERE id = 22");
  await q("UPDATE notes SET body = 'bob changed' WHERE id = 31");
  const changed = await noteDigests();

  // A delete that also removes bob's notes: refused, nothing changed.
  const wide = await fleet("wide", [
    {
      ...notes,
      delete:
        "DELETE FROM notes n USING contacts c WHERE c.id = n.contact AND (c.owner = $1 OR c.owner = 'bob')",
    },
  ]);
  const r1 = await wide(["restore", "--account", "ann", "--fleet", "notes", "--into-shared-db"]);
  assert.notEqual(r1.code, 0, show(r1));
  assert.match(
    errorOf(r1),
    /the "delete" of table notes removed a different number of rows than its query selects/,
  );
  assert.deepEqual(await noteDigests(), changed, "the refused restore changed nothing");
  // A delete that leaves some of them: refused too.
  const narrow = await fleet("narrow", [
    { ...notes, delete: "DELETE FROM notes WHERE contact = 1 AND $1 = $1" },
  ]);
  const r2 = await narrow(["restore", "--account", "ann", "--fleet", "notes", "--into-shared-db"]);
  assert.notEqual(r2.code, 0, show(r2));
  assert.match(errorOf(r2), /removed a different number of rows|still selects/);
  assert.deepEqual(await noteDigests(), changed);

  // The right delete: ann's notes back exactly, bob's as he changed them.
  const r3 = await cli(["restore", "--account", "ann", "--fleet", "notes", "--into-shared-db"]);
  assert.equal(r3.code, 0, show(r3));
  const now = await noteDigests();
  assert.equal(now.get("ann"), before.get("ann"));
  assert.equal(now.get("bob"), changed.get("bob"));
});
