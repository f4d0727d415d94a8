/**
 * A fleet whose accounts come from an SQL query against a real MariaDB on 127.0.0.1 (through
 * the `mariadb` client): ids, timezones (NULL falls back to the fleet's), paths and
 * `updated_at` for change detection; and a query that fails is one clear line naming the
 * account source and the fix.
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
  const ids = ["ann", "bob", "NULL"];
  for (const id of ids) {
    await fs.mkdir(path.join(base, "srv", id), { recursive: true });
    await fs.writeFile(path.join(base, "srv", id, "inbox.txt"), `mail of ${id}\n`);
  }
  maria.sql(`CREATE DATABASE sidekick;
    USE sidekick;
    CREATE TABLE users (id varchar(64) PRIMARY KEY, tz varchar(64) NULL, home varchar(255) NOT NULL,
      updated_at datetime NOT NULL);
    INSERT INTO users VALUES
      ('ann', 'Europe/Berlin', '${base}/srv/ann', '2026-01-01 10:00:00'),
      ('bob', NULL, '${base}/srv/bob', '2026-01-01 10:00:00'),
      ('NULL', 'UTC', '${base}/srv/NULL', '2026-01-01 10:00:00');`);
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
