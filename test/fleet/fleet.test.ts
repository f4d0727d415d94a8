/**
 * A fleet end to end, through the built CLI: 500 folder accounts over 20 timezones (embedded
 * SQLite state) and 200 accounts whose rows live in one shared PostgreSQL table (schedule and
 * queue in PostgreSQL with pg-boss, three worker processes, one of them SIGKILLed mid-account),
 * driven through two simulated nights with `--now`. Then: one account's rows restored without
 * touching the others', a whole-service restore of all 700 after their data is deleted, `fleet
 * erase` of exactly one account, and the bad inputs of an account source.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import pg from "pg";
import {
  assertCleanError,
  assertTreesEqual,
  jsonLines,
  removeTempDir,
  repoEnv,
  run,
  runCmd,
  show,
  startCli,
  tempDir,
  waitFor,
} from "../support/cli.js";
import { type PostgresServer, startPostgres } from "../support/db-servers.js";

const ZONES = [
  "Pacific/Kiritimati",
  "Pacific/Auckland",
  "Australia/Sydney",
  "Asia/Tokyo",
  "Asia/Shanghai",
  "Asia/Kolkata",
  "Asia/Kathmandu",
  "Asia/Dubai",
  "Europe/Moscow",
  "Europe/Berlin",
  "Europe/London",
  "Atlantic/Azores",
  "America/Sao_Paulo",
  "America/St_Johns",
  "America/New_York",
  "America/Chicago",
  "America/Denver",
  "America/Los_Angeles",
  "Pacific/Honolulu",
  "Etc/GMT+12",
];
/** All UTC+1 in January: the rows fleet's windows open together, so one tick starts them all. */
const ROW_ZONES = ["Europe/Berlin", "Europe/Paris", "Africa/Lagos", "Europe/Oslo"];
const FOLDERS = 500;
const ROWS = 200;
const folderId = (i: number) => `u${String(i).padStart(3, "0")}`;
const rowsId = (i: number) => `r${String(i).padStart(3, "0")}`;
const BIG = rowsId(17);

let base: string;
let env: Record<string, string>;
let server: PostgresServer;
let cfg: string;

const cli = (args: string[], timeoutMs = 600_000) => run(["--config", cfg, ...args], { env, timeoutMs });
const ok = async (args: string[]) => {
  const r = await cli(args);
  assert.equal(r.code, 0, show(r));
  return r;
};
async function db(name = "sidekick"): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: server.url(name) });
  await c.connect();
  return c;
}
async function q<T extends pg.QueryResultRow>(
  sql: string,
  params: unknown[] = [],
  name = "sidekick",
): Promise<T[]> {
  const c = await db(name);
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}
/** md5 of every contact row per owner (the rows compared after restores). */
async function rowDigests(): Promise<Map<string, string>> {
  const rows = await q<{ owner: string; d: string }>(
    "SELECT owner, md5(string_agg(row_to_json(c)::text, ',' ORDER BY id)) AS d FROM contacts c GROUP BY owner",
  );
  return new Map(rows.map((r) => [r.owner, r.d]));
}
const summaries = (stdout: string) => jsonLines(stdout).filter((m) => m.message_type === "fleet_summary");
const sum = (stdouts: string[], k: string) =>
  stdouts.flatMap(summaries).reduce((a, s) => a + Number(s[k] ?? 0), 0);

/** One simulated night of the folder fleet: a tick every hour across a whole UTC day. */
async function folderNight(dayIso: string): Promise<string[]> {
  const outs: string[] = [];
  for (let h = 0; h < 24; h++) {
    const now = new Date(Date.parse(`${dayIso}T00:10:00Z`) + h * 3_600_000).toISOString();
    const r = await cli(["--json", "fleet", "run", "--name", "mail", "--now", now, "--no-drills"]);
    assert.equal(r.code, 0, show(r));
    outs.push(r.stdout);
  }
  return outs;
}

before(async () => {
  base = await tempDir("lifeboat-fleet-");
  env = repoEnv(path.join(base, "repo"), "fleet-pw", { XDG_STATE_HOME: path.join(base, "state") });
  const init = await run(["init"], { env });
  assert.equal(init.code, 0, show(init));
  // 500 mail folders, two small files each (one shared by every account: dedup across accounts).
  const lines: string[] = [];
  for (let i = 0; i < FOLDERS; i++) {
    const dir = path.join(base, "srv", "mail", folderId(i));
    await fs.mkdir(path.join(dir, "cur"), { recursive: true });
    await fs.writeFile(
      path.join(dir, "cur", `${i}.eml`),
      `From: ${folderId(i)}@example.org\n\nmessage ${i}\n`,
    );
    await fs.writeFile(path.join(dir, "signature.txt"), "-- \nsent by sidekick\n");
    lines.push(
      JSON.stringify({ id: folderId(i), timezone: ZONES[i % ZONES.length], path: dir, priority: i % 7 }),
    );
  }
  await fs.writeFile(path.join(base, "mail.jsonl"), `${lines.join("\n")}\n`);
  server = await startPostgres();
  const admin = await db("postgres");
  await admin.query("CREATE DATABASE sidekick");
  await admin.query("CREATE DATABASE fleetq");
  await admin.end();
  const c = await db();
  await c.query(`CREATE TABLE users (id text PRIMARY KEY, tz text NOT NULL);
    CREATE TABLE contacts (id serial PRIMARY KEY, owner text NOT NULL REFERENCES users(id), name text NOT NULL,
      phone text, birthday date, photo bytea, tags text[], updated timestamptz NOT NULL DEFAULT now())`);
  for (let i = 0; i < ROWS; i++)
    await c.query("INSERT INTO users VALUES ($1, $2)", [rowsId(i), ROW_ZONES[i % 4]]);
  await c.query(`INSERT INTO contacts (owner, name, phone, birthday, photo, tags)
    SELECT u.id, 'contact ' || n || ' of ' || u.id, '+49 30 ' || n, date '1980-01-01' + n, decode(md5(u.id || n), 'hex'), ARRAY['a', u.id]
    FROM users u, generate_series(1, 4) n`);
  // One big account: its export takes long enough to be killed in the middle of it.
  await c.query(
    `INSERT INTO contacts (owner, name, phone, photo)
    SELECT $1, 'bulk ' || n, repeat('x', 200), decode(repeat(md5(n::text), 8), 'hex') FROM generate_series(1, 150000) n`,
    [BIG],
  );
  await c.end();
  cfg = path.join(base, "fleet.json");
  await fs.writeFile(
    cfg,
    JSON.stringify({
      fleets: [
        {
          name: "mail",
          accounts: { file: path.join(base, "mail.jsonl") },
          window: "01:00-05:00",
          rpo: "26h",
          concurrency: 4,
          state: path.join(base, "mail-state.db"),
          priority: "priority",
          drillSample: 0.01,
        },
        {
          name: "contacts",
          kind: "rows",
          accounts: {
            sql: server.url("sidekick"),
            query: "SELECT id, tz AS timezone FROM users ORDER BY id",
          },
          rows: { url: server.url("sidekick"), tables: [{ table: "contacts", owner: "owner" }] },
          queue: server.url("fleetq"),
          lease: "4s",
          concurrency: 2,
          drillSample: 0.01,
        },
      ],
    }),
  );
});

after(async () => {
  await server?.stop();
  if (base) await removeTempDir(base);
});

test("two nights of 500 folder accounts over 20 timezones: each once in its own window, then unchanged ones skipped", async () => {
  const n1 = await folderNight("2026-01-14");
  assert.equal(sum(n1, "snapshot"), FOLDERS, "each folder account backed up once in night 1");
  assert.equal(sum(n1, "failed"), 0);
  const snaps = jsonLines(
    (await ok(["--json", "snapshots", "--host", "mail"])).stdout,
  )[0] as unknown as Record<string, unknown>[];
  assert.equal(snaps.length, FOLDERS);
  assert.equal(new Set(snaps.map((s) => s.account)).size, FOLDERS);
  assert.ok(snaps.every((s) => s.fleet === "mail" && s.hostname === "mail"));
  // Each snapshot was taken inside its account's own window (01:00-05:00 local).
  for (const s of snaps) {
    const i = Number(String(s.account).slice(1));
    const local = new Intl.DateTimeFormat("en-GB", {
      timeZone: ZONES[i % ZONES.length],
      hour: "2-digit",
      hourCycle: "h23",
    }).format(new Date(String(s.time)));
    assert.ok(Number(local) >= 1 && Number(local) < 5, `${s.account} at ${s.time} is ${local}h local`);
  }
  // Running a tick again in the same window does nothing (state survives between processes).
  const again = await cli([
    "--json",
    "fleet",
    "run",
    "--name",
    "mail",
    "--now",
    "2026-01-14T03:10:00Z",
    "--no-drills",
  ]);
  assert.equal(sum([again.stdout], "snapshot"), 0, show(again));
  // Night 2: ten accounts changed; the other 490 are checked and skipped.
  for (let i = 0; i < 10; i++)
    await fs.writeFile(path.join(base, "srv", "mail", folderId(i * 37), "cur", "new.eml"), `new mail ${i}\n`);
  const n2 = await folderNight("2026-01-15");
  assert.equal(sum(n2, "snapshot"), 10);
  assert.equal(sum(n2, "unchanged"), FOLDERS - 10);
  const st = JSON.parse(
    (
      await ok(["--json", "fleet", "status", "--name", "mail", "--now", "2026-01-16T00:30:00Z"])
    ).stdout.trim(),
  );
  assert.equal(st.accounts, FOLDERS);
  assert.equal(st.never_backed_up, 0);
  assert.equal(st.over_rpo, 0, JSON.stringify(st));
  const one = JSON.parse(
    (
      await ok([
        "--json",
        "fleet",
        "status",
        "--name",
        "mail",
        "--account",
        folderId(37),
        "--now",
        "2026-01-16T00:30:00Z",
      ])
    ).stdout.trim(),
  );
  assert.equal(one.runs.filter((r: { outcome: string }) => r.outcome === "snapshot").length, 2);
  const mine = jsonLines(
    (await ok(["--json", "snapshots", "--account", folderId(37)])).stdout,
  )[0] as unknown as unknown[];
  assert.equal(mine.length, 2);
  // The account's own retention and drill, through its catalogue.
  const fg = await ok(["forget", "--account", folderId(37), "--keep-last", "1", "--dry-run"]);
  assert.match(fg.stdout, new RegExp(`would remove snapshot [0-9a-f]{8} of account ${folderId(37)}`));
  const dr = await ok(["--json", "drill", "--account", folderId(37)]);
  assert.match(dr.stdout, /"ok":true/);
});

test("200 rows accounts through the PostgreSQL queue: a SIGKILLed worker's account is retried, three workers share the rest, once per window", async () => {
  const now = "2026-01-14T02:30:00Z";
  const args = ["--config", cfg, "--json", "fleet", "run", "--name", "contacts", "--now", now, "--no-drills"];
  const first = startCli(args, { env });
  // Wait until a worker holds the big account's job, then kill it mid-export.
  await waitFor(
    async () =>
      (
        await q<{ n: string }>(
          "SELECT count(*)::text AS n FROM lifeboat_pgboss.job WHERE state = 'active' AND data->>'account' = $1",
          [BIG],
          "fleetq",
        ).catch(() => [{ n: "0" }])
      )[0]!.n === "1",
    120_000,
    50,
  );
  first.child.kill("SIGKILL");
  const killed = await first.done;
  assert.equal(killed.signal, "SIGKILL");
  const killedPid = String(first.child.pid);
  const workers = [0, 1, 2].map(() => startCli(args, { env }));
  const outs = await Promise.all(workers.map((w) => w.done));
  for (const o of outs) assert.equal(o.code, 0, show(o));
  const events = [killed, ...outs]
    .flatMap((o) => jsonLines(o.stdout))
    .filter((m) => m.message_type === "fleet_account");
  const byWorker = new Map<string, number>();
  for (const e of outs.flatMap((o) => jsonLines(o.stdout)).filter((m) => m.message_type === "fleet_account"))
    byWorker.set(String(e.worker), (byWorker.get(String(e.worker)) ?? 0) + 1);
  // Three workers share what the killed one left, when it left enough to share: on a loaded
  // machine the killed worker's second slot may finish nearly every small account before the
  // big one's job becomes active (CI once saw 2 accounts left, both taken by one worker).
  const left = [...byWorker.values()].reduce((a, b) => a + b, 0);
  if (left >= 12)
    assert.equal(byWorker.size, 3, `every worker took a share: ${JSON.stringify([...byWorker])}`);
  else assert.ok(byWorker.size >= 1, `the workers took what was left: ${JSON.stringify([...byWorker])}`);
  const big = events.filter((e) => e.account === BIG && e.outcome === "snapshot");
  assert.equal(big.length, 1, "the killed worker's account was backed up once, by another worker");
  assert.ok(!String(big[0]!.worker).endsWith(`:${killedPid}`));
  // Exactly one snapshot per account for this window.
  const snaps = jsonLines(
    (await ok(["--json", "snapshots", "--host", "contacts"])).stdout,
  )[0] as unknown as Record<string, unknown>[];
  assert.equal(snaps.length, ROWS);
  assert.equal(new Set(snaps.map((s) => s.account)).size, ROWS);
  // Night 2: five accounts change, the rest are unchanged.
  await q("UPDATE contacts SET phone = phone || '9' WHERE owner IN ('r001', 'r002', 'r003', 'r004', 'r005')");
  const n2 = await cli([
    "--json",
    "fleet",
    "run",
    "--name",
    "contacts",
    "--now",
    "2026-01-15T02:30:00Z",
    "--no-drills",
  ]);
  assert.equal(n2.code, 0, show(n2));
  assert.equal(sum([n2.stdout], "snapshot"), 5);
  assert.equal(sum([n2.stdout], "unchanged"), ROWS - 5);
});

test("one account's rows restored into the shared table leave every other account's rows untouched", async () => {
  const before = await rowDigests();
  await q("DELETE FROM contacts WHERE owner = 'r005' AND name LIKE 'contact 1 %'");
  await q("INSERT INTO contacts (owner, name) VALUES ('r005', 'junk')");
  assert.notEqual((await rowDigests()).get("r005"), before.get("r005"));
  const r = await ok(["--json", "restore", "--account", "r005", "--into-shared-db"]);
  assert.match(r.stdout, /"rows":4/);
  assert.deepEqual(await rowDigests(), before);
});

test("whole-service restore brings all 700 accounts back identical after their data is deleted", async () => {
  const copy = path.join(base, "srv-before");
  assert.equal((await runCmd("cp", ["-a", path.join(base, "srv", "mail"), copy])).code, 0);
  const rowsBefore = await rowDigests();
  await fs.rm(path.join(base, "srv", "mail"), { recursive: true });
  await q("DELETE FROM contacts");
  const mail = await ok(["--json", "fleet", "restore", "--all", "--name", "mail", "--parallel", "8"]);
  const ms = jsonLines(mail.stdout).find((m) => m.message_type === "fleet_restore_summary")!;
  assert.equal(ms.restored, FOLDERS);
  const order = jsonLines(mail.stdout)
    .filter((m) => m.message_type === "fleet_restore_account")
    .map((m) => String(m.account));
  assert.equal(order.length, FOLDERS);
  await assertTreesEqual(copy, path.join(base, "srv", "mail"));
  const contacts = await ok(["--json", "fleet", "restore", "--all", "--name", "contacts", "--parallel", "8"]);
  const cs = jsonLines(contacts.stdout).find((m) => m.message_type === "fleet_restore_summary")!;
  assert.equal(cs.restored, ROWS);
  assert.ok(Number(cs.seconds) > 0);
  assert.deepEqual(await rowDigests(), rowsBefore);
  // Resumable: the same run again skips every account already back.
  const again = await ok(["--json", "fleet", "restore", "--all", "--name", "contacts"]);
  assert.equal(
    jsonLines(again.stdout).find((m) => m.message_type === "fleet_restore_summary")!.skipped,
    ROWS,
  );
});

test("fleet erase forgets exactly one account; the others keep their snapshots and data", async () => {
  const all = (
    jsonLines((await ok(["--json", "snapshots"])).stdout)[0] as unknown as Record<string, unknown>[]
  ).length;
  const dry = await ok(["fleet", "erase", "--name", "mail", "--account", "u007"]);
  assert.match(dry.stdout, /would forget 1 snapshot/);
  assert.equal(
    (jsonLines((await ok(["--json", "snapshots"])).stdout)[0] as unknown as unknown[]).length,
    all,
  );
  await ok(["fleet", "erase", "--name", "mail", "--account", "u007", "--yes"]);
  assert.equal(
    (jsonLines((await ok(["--json", "snapshots"])).stdout)[0] as unknown as unknown[]).length,
    all - 1,
  );
  assert.equal(
    (jsonLines((await ok(["--json", "snapshots", "--account", "u007"])).stdout)[0] as unknown as unknown[])
      .length,
    0,
  );
  const target = path.join(base, "u008-back");
  await ok(["restore", "--account", "u008", "--target", target]);
  await assertTreesEqual(path.join(base, "srv", "mail", "u008"), target);
  const gone = await cli(["restore", "--account", "u007", "--target", path.join(base, "u007-back")]);
  assertCleanError(gone, 13, /account u007 has no snapshot/);
  const check = await run(["check"], { env });
  assert.equal(check.code, 0, show(check));
});

test("bad account sources: one clear line naming the source and the fix; one bad account never stops the rest", async () => {
  const f = path.join(base, "bad.jsonl");
  const dir = path.join(base, "srv", "mail", folderId(1));
  await fs.writeFile(
    f,
    [
      { id: "good1", timezone: "Europe/Berlin", path: dir },
      { id: "dup", timezone: "Europe/Berlin", path: dir },
      { id: "dup", timezone: "Europe/Paris", path: dir },
      { id: "mars", timezone: "Mars/Olympus_Mons", path: dir },
    ]
      .map((x) => JSON.stringify(x))
      .join("\n"),
  );
  const bad = await run(
    [
      "fleet",
      "run",
      "--name",
      "bad",
      "--accounts",
      f,
      "--state",
      path.join(base, "bad.db"),
      "--now",
      "2026-01-14T03:30:00Z",
    ],
    { env },
  );
  assert.equal(bad.code, 3, show(bad));
  const warnings = bad.stderr.split("\n").filter((l) => l.startsWith("warning: "));
  assert.equal(warnings.length, 2, show(bad));
  assert.match(warnings.join("\n"), new RegExp(`account source file ${f}: account id "dup" appears 2 times`));
  assert.match(
    warnings.join("\n"),
    /account mars: unknown timezone "Mars\/Olympus_Mons"; set the account's timezone to an IANA name/,
  );
  assert.match(bad.stdout, /1 snapshots/);
  const glob = await run(
    [
      "fleet",
      "run",
      "--name",
      "g",
      "--accounts",
      path.join(base, "nothing", "*"),
      "--state",
      path.join(base, "g.db"),
      "--once",
    ],
    { env },
  );
  assertCleanError(glob, 2, /account source glob .*nothing\/\* matches no folder/);
  const c2 = path.join(base, "down.json");
  await fs.writeFile(
    c2,
    JSON.stringify({
      fleets: [
        {
          name: "down",
          kind: "rows",
          state: path.join(base, "down.db"),
          accounts: { sql: "postgres://postgres:x@127.0.0.1:1/nothing", query: "SELECT 1 AS id" },
          rows: { url: "postgres://postgres:x@127.0.0.1:1/nothing", tables: [{ table: "t", owner: "o" }] },
        },
      ],
    }),
  );
  const dr = await run(["--config", c2, "fleet", "run", "--once"], { env });
  assertCleanError(
    dr,
    16,
    /account source query on postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/nothing: .*cannot be reached/,
  );
});
