/**
 * Fleets on a real MariaDB on 127.0.0.1 (through the `mariadb` client): accounts listed by an
 * SQL query (ids, timezones where NULL falls back to the fleet's, paths, `updated_at` for change
 * detection; a query that fails is one clear line naming the account source and the fix), and
 * rows accounts in a shared MariaDB table: backed up per account, unchanged ones skipped by a
 * server-side digest, one account's rows restored without touching the others'; tables with a
 * custom query (`?` placeholders, a join), restored by their `delete`, and deletes that would
 * reach other accounts' rows refused with nothing changed.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { assertCleanError, jsonLines, removeTempDir, repoEnv, run, show, tempDir } from "../support/cli.js";
import { type MariadbServer, startMariadb } from "../support/db-servers.js";

let base: string;
let env: Record<string, string>;
let maria: MariadbServer;

const fleetFlags = (query: string, url = maria.url("sidekick")) => {
  const cfg = path.join(base, "fleet.json");
  return fs
    .writeFile(
      cfg,
      JSON.stringify({
        fleets: [
          {
            name: "mail",
            accounts: { sql: url, query },
            timezone: "UTC",
            state: path.join(base, "mail.db"),
            drillSample: 0,
          },
        ],
      }),
    )
    .then(() => cfg);
};
const summary = (stdout: string) => jsonLines(stdout).find((m) => m.message_type === "fleet_summary")!;

before(async () => {
  base = await tempDir("lifeboat-fleet-maria-");
  env = repoEnv(path.join(base, "repo"), "fleet-pw", { XDG_STATE_HOME: path.join(base, "state") });
  const init = await run(["init"], { env });
  assert.equal(init.code, 0, show(init));
  maria = await startMariadb();
  const ids = ["ann", "bob", "NULL", "zoë"];
  for (const id of ids) {
    await fs.mkdir(path.join(base, "srv", id), { recursive: true });
    await fs.writeFile(path.join(base, "srv", id, "inbox.txt"), `mail of ${id}\n`);
  }
  maria.sql(`SET NAMES utf8mb4;
    CREATE DATABASE sidekick CHARACTER SET utf8mb4;
    USE sidekick;
    CREATE TABLE users (id varchar(64) PRIMARY KEY, tz varchar(64) NULL, home varchar(255) NOT NULL,
      updated_at datetime NOT NULL);
    INSERT INTO users VALUES
      ('ann', 'Europe/Berlin', '${base}/srv/ann', '2026-01-01 10:00:00'),
      ('bob', NULL, '${base}/srv/bob', '2026-01-01 10:00:00'),
      ('NULL', 'UTC', '${base}/srv/NULL', '2026-01-01 10:00:00'),
      ('zoë', 'Asia/Tokyo', '${base}/srv/zoë', '2026-01-01 10:00:00');
    CREATE TABLE contacts (id int AUTO_INCREMENT PRIMARY KEY, owner varchar(64) NOT NULL,
      name varchar(100) CHARACTER SET utf8mb4 NOT NULL, phone varchar(40) NULL, photo blob NULL,
      amount decimal(30,10) NOT NULL, born date NULL, updated datetime(6) NOT NULL, tags json NULL);
    INSERT INTO contacts (owner, name, phone, photo, amount, born, updated, tags) VALUES
      ('ann', 'Jörg Müller ✓', '+49 30 1', UNHEX('00FF10EE0A0D'), 12345678901234567890.0123456789, '1980-02-29', '2026-01-01 10:00:00.123456', '["a", "b"]'),
      ('ann', 'tab\there "quoted" \\ back', NULL, NULL, 0.5, NULL, '2026-01-02 00:00:00', NULL),
      ('ann', 'line\nbreak', '+49 30 3', UNHEX(''), -1, '2000-01-01', '2026-01-03 00:00:00', '{"k": 1}'),
      ('bob', 'Bob 1', '+1 555', UNHEX('CAFE'), 1, '1990-05-05', '2026-01-01 00:00:00', NULL),
      ('bob', 'Bob 2', NULL, NULL, 2, NULL, '2026-01-01 00:00:00', NULL),
      ('NULL', 'of the account NULL', NULL, NULL, 3, NULL, '2026-01-01 00:00:00', NULL);`);
});

after(async () => {
  await maria?.stop();
  if (base) await removeTempDir(base);
});

test("accounts listed by a MariaDB query: NULL timezone takes the fleet's, updated_at skips unchanged accounts", async () => {
  const cfg = await fleetFlags("SELECT id, tz AS timezone, home AS path, updated_at FROM users ORDER BY id");
  const n1 = await run(["--config", cfg, "--json", "fleet", "run", "--now", "2026-01-14T03:30:00Z"], { env });
  assert.equal(n1.code, 0, show(n1));
  assert.equal(summary(n1.stdout).snapshot, 3, show(n1));
  const st = JSON.parse(
    (
      await run(
        ["--config", cfg, "--json", "fleet", "status", "--account", "bob", "--now", "2026-01-14T03:31:00Z"],
        { env },
      )
    ).stdout,
  );
  assert.equal(st.timezone, "UTC");
  const ann = JSON.parse(
    (
      await run(
        ["--config", cfg, "--json", "fleet", "status", "--account", "ann", "--now", "2026-01-14T03:31:00Z"],
        { env },
      )
    ).stdout,
  );
  assert.equal(ann.timezone, "Europe/Berlin");
  const zoe = JSON.parse(
    (
      await run(
        ["--config", cfg, "--json", "fleet", "status", "--account", "zoë", "--now", "2026-01-14T03:31:00Z"],
        { env },
      )
    ).stdout,
  );
  assert.equal(zoe.timezone, "Asia/Tokyo");
  // The account whose id is the text "NULL" is an account like any other.
  const mine = jsonLines(
    (await run(["--json", "snapshots", "--account", "NULL"], { env })).stdout,
  )[0] as unknown as unknown[];
  assert.equal(mine.length, 1);
  // Night 2: bob's row says he changed (and he did); the others are skipped by updated_at.
  await fs.writeFile(path.join(base, "srv", "bob", "new.txt"), "new mail\n");
  maria.sql("UPDATE users SET updated_at = '2026-01-15 01:00:00' WHERE id = 'bob'", "sidekick");
  const n2 = await run(["--config", cfg, "--json", "fleet", "run", "--now", "2026-01-15T03:30:00Z"], { env });
  assert.equal(n2.code, 0, show(n2));
  const s2 = summary(n2.stdout);
  assert.equal(s2.snapshot, 1, show(n2));
  assert.equal(s2.unchanged, 2, show(n2));
});

test("a MariaDB account source that fails is one line naming the source and the fix", async () => {
  const bad = await fleetFlags("SELECT id, tz AS timezone FROM no_such_table");
  const r = await run(["--config", bad, "fleet", "run", "--now", "2026-01-16T03:30:00Z"], { env });
  assert.notEqual(r.code, 0, show(r));
  assertCleanError(
    r,
    r.code!,
    /account source query on mysql:\/\/root:\*\*\*@127\.0\.0\.1:\d+\/sidekick: .*no_such_table/,
  );
  assert.ok(!r.stderr.includes(maria.password), "the password is not shown");
  const down = await fleetFlags("SELECT id FROM users", maria.url("sidekick", "root", "wrong-password"));
  const d = await run(["--config", down, "fleet", "run", "--now", "2026-01-16T03:30:00Z"], { env });
  assertCleanError(d, d.code!, /account source query on mysql:\/\/root:\*\*\*@.*refused the login/);
  assert.match(d.stderr, /hint: check that the database is up and the accounts URL is right/);
});

/** A digest of every contact row per owner (all columns, binary ones in hex). */
const rowDigests = () =>
  maria.sql(
    "SELECT owner, MD5(GROUP_CONCAT(CONCAT_WS('|', id, name, IFNULL(phone, '<null>'), IFNULL(HEX(photo), '<null>'), amount, IFNULL(born, '<null>'), updated, IFNULL(tags, '<null>')) ORDER BY id SEPARATOR '#')) FROM contacts GROUP BY owner ORDER BY owner",
    "sidekick",
  );

test("rows accounts in a shared MariaDB table: once per night, unchanged skipped, one account restored alone", async () => {
  const cfg = path.join(base, "rows.json");
  await fs.writeFile(
    cfg,
    JSON.stringify({
      fleets: [
        {
          name: "contacts",
          kind: "rows",
          accounts: { sql: maria.url("sidekick"), query: "SELECT id, tz AS timezone FROM users" },
          rows: { url: maria.url("sidekick"), tables: [{ table: "contacts", owner: "owner" }] },
          timezone: "UTC",
          state: path.join(base, "contacts.db"),
          drillSample: 0,
        },
      ],
    }),
  );
  const cli = (args: string[]) => run(["--config", cfg, "--json", ...args], { env });
  const n1 = await cli(["fleet", "run", "--now", "2026-01-14T03:30:00Z"]);
  assert.equal(n1.code, 0, show(n1));
  assert.equal(summary(n1.stdout).snapshot, 3, show(n1));
  const before = rowDigests();

  // Night 2: one of bob's rows changed; ann's and NULL's are checked by the server's digest.
  maria.sql("UPDATE contacts SET phone = '+1 555 0' WHERE name = 'Bob 1'", "sidekick");
  const n2 = await cli(["fleet", "run", "--now", "2026-01-15T03:30:00Z"]);
  assert.equal(n2.code, 0, show(n2));
  assert.equal(summary(n2.stdout).snapshot, 1, show(n2));
  assert.equal(summary(n2.stdout).unchanged, 2, show(n2));
  const bobNow = rowDigests()
    .split("\n")
    .find((l) => l.startsWith("bob\t"));
  // ann loses a row and another is changed; her restore brings exactly her rows back.
  maria.sql(
    "DELETE FROM contacts WHERE name LIKE 'tab%'; UPDATE contacts SET amount = 7 WHERE owner = 'ann'",
    "sidekick",
  );
  const r = await cli(["restore", "--account", "ann", "--fleet", "contacts", "--into-shared-db"]);
  assert.equal(r.code, 0, show(r));
  const after = rowDigests().split("\n");
  const annBefore = before.split("\n").find((l) => l.startsWith("ann\t"));
  assert.equal(
    after.find((l) => l.startsWith("ann\t")),
    annBefore,
    "ann's rows are back as they were, every column",
  );
  assert.equal(
    after.find((l) => l.startsWith("bob\t")),
    bobNow,
    "bob's rows untouched",
  );
  assert.equal(
    after.find((l) => l.startsWith("NULL\t")),
    before.split("\n").find((l) => l.startsWith("NULL\t")),
  );
});

/** Every note per contact owner (a digest of all columns). */
const noteDigests = () =>
  maria.sql(
    "SELECT c.owner, MD5(GROUP_CONCAT(CONCAT_WS('|', n.id, n.contact, n.body) ORDER BY n.id SEPARATOR '#')) FROM notes n JOIN contacts c ON c.id = n.contact GROUP BY c.owner ORDER BY c.owner",
    "sidekick",
  );
/** The one-line error of a failed `--json` command. */
const errorOf = (r: { stderr: string }) =>
  String(jsonLines(r.stderr).find((m) => m.message_type === "error")?.message ?? r.stderr);
const ownerLine = (digests: string, owner: string) =>
  digests.split("\n").find((l) => l.startsWith(`${owner}\t`));

test("rows accounts on MariaDB with a custom query per table (? placeholders): exported, restored alone, unsafe deletes refused", async () => {
  maria.sql(
    `SET NAMES utf8mb4;
     CREATE TABLE notes (id int PRIMARY KEY, contact int NOT NULL, body text NOT NULL);
     INSERT INTO notes SELECT c.id * 10 + k.k, c.id, CONCAT('note ', k.k, ' of ', c.owner, ' — ✓')
       FROM contacts c JOIN (SELECT 1 AS k UNION SELECT 2) AS k;`,
    "sidekick",
  );
  const notes = {
    table: "notes",
    // A ? inside a comment and a string is not a placeholder.
    query:
      "SELECT n.* FROM notes n JOIN contacts c ON c.id = n.contact /* whose? */ WHERE c.owner = ? AND n.body <> 'why?'",
    delete: "DELETE n FROM notes n JOIN contacts c ON c.id = n.contact WHERE c.owner = ?",
  };
  const write = async (name: string, tables: unknown[]) => {
    const cfg = path.join(base, `${name}.json`);
    await fs.writeFile(
      cfg,
      JSON.stringify({
        fleets: [
          {
            name: "notes",
            kind: "rows",
            accounts: { sql: maria.url("sidekick"), query: "SELECT id, tz AS timezone FROM users" },
            rows: { url: maria.url("sidekick"), tables },
            timezone: "UTC",
            state: path.join(base, "notes.db"),
            drillSample: 0,
          },
        ],
      }),
    );
    return (args: string[]) => run(["--config", cfg, "--json", ...args], { env });
  };
  const cli = await write("notes", [{ table: "contacts", owner: "owner" }, notes]);
  const n1 = await cli(["fleet", "run", "--now", "2026-02-14T03:30:00Z"]);
  assert.equal(n1.code, 0, show(n1));
  assert.equal(summary(n1.stdout).snapshot, 3, show(n1));

  // The snapshot holds exactly ann's notes, found through the join.
  const out = path.join(base, "ann-notes");
  const files = await run(["--json", "restore", "--account", "ann", "--fleet", "notes", "--target", out], {
    env,
  });
  assert.equal(files.code, 0, show(files));
  const lines = (await fs.readFile(path.join(out, "rows", "notes.jsonl"), "utf8")).trim().split("\n");
  assert.equal(lines.length, 6, lines.join("\n"));
  assert.ok(
    lines.every((l) => /note \d of ann — ✓/.test(JSON.parse(l).body)),
    lines.join("\n"),
  );

  const before = noteDigests();
  maria.sql(
    `SET NAMES utf8mb4;
     DELETE FROM notes WHERE id = 11; UPDATE notes SET body = 'changed' WHERE id = 32;
     UPDATE notes SET body = 'bob changed' WHERE id = 41;`,
    "sidekick",
  );
  const bobNow = ownerLine(noteDigests(), "bob");

  // Unsafe: a custom query without a delete; a delete that reaches another account's notes.
  const noDelete = await write("no-delete", [{ table: "notes", query: notes.query }]);
  const r1 = await noDelete(["restore", "--account", "ann", "--fleet", "notes", "--into-shared-db"]);
  assert.notEqual(r1.code, 0, show(r1));
  assert.match(errorOf(r1), /rows table notes has a custom query and no "delete" statement/);
  const tooWide = await write("too-wide", [
    {
      ...notes,
      delete: "DELETE FROM notes WHERE contact IN (SELECT id FROM contacts WHERE owner = ? OR owner = 'bob')",
    },
  ]);
  const r2 = await tooWide(["restore", "--account", "ann", "--fleet", "notes", "--into-shared-db"]);
  assert.notEqual(r2.code, 0, show(r2));
  assert.match(
    errorOf(r2),
    /the "delete" of table notes removed a different number of rows than its query selects/,
  );
  assert.match(errorOf(r2), /nothing was changed/);
  assert.equal(ownerLine(noteDigests(), "bob"), bobNow, "the refused restore deleted none of bob's notes");
  assert.notEqual(ownerLine(noteDigests(), "ann"), ownerLine(before, "ann"), "nor restored ann's");
  const dollar = await write("dollar", [{ ...notes, query: "SELECT * FROM notes WHERE contact = $1" }]);
  const r3 = await dollar(["restore", "--account", "ann", "--fleet", "notes", "--into-shared-db"]);
  assert.match(
    errorOf(r3),
    /its "query" has no \? placeholder for the account id \(\$1 is PostgreSQL's; MariaDB\/MySQL use \?\)/,
  );

  // Safe: ann's notes come back exactly; bob's stay as he changed them.
  const r = await cli(["restore", "--account", "ann", "--fleet", "notes", "--into-shared-db"]);
  assert.equal(r.code, 0, show(r));
  const after = noteDigests();
  assert.equal(ownerLine(after, "ann"), ownerLine(before, "ann"), "ann's notes are back, every column");
  assert.equal(ownerLine(after, "bob"), bobNow, "bob's notes untouched");
  assert.equal(ownerLine(after, "NULL"), ownerLine(before, "NULL"));

  // Night 2: the server's digest over the custom query sees bob's change and ann's restore.
  const n2 = await cli(["fleet", "run", "--now", "2026-02-15T03:30:00Z"]);
  assert.equal(n2.code, 0, show(n2));
  assert.equal(summary(n2.stdout).snapshot, 1, show(n2));
  assert.equal(summary(n2.stdout).unchanged, 2, show(n2));
});
