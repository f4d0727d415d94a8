/**
 * One fleet over several repositories, end to end through the built CLI: folder accounts and
 * rows accounts (PostgreSQL) spread over two local repositories, a third one (S3, s3rver, with a
 * password file of its own) added later, every account command finding each account in its own
 * repository through the fleet's state, then the state deleted (the 3 a.m. disk) and the
 * accounts found anyway through the repositories' catalogues: restores, a whole-service restore
 * and a night that keeps every account's series where it was.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import pg from "pg";
import { placeAccount } from "../../src/app/fleet/repos.js";
import { assertTreesEqual, jsonLines, removeTempDir, repoEnv, run, show, tempDir } from "../support/cli.js";
import { ConsoleClient, startConsole } from "../support/console.js";
import { type PostgresServer, startPostgres } from "../support/db-servers.js";
import { type S3Server, startS3rver } from "../support/servers.js";

const OLD = 12;
const NEW = 12;
const id = (i: number) => `u${String(i).padStart(2, "0")}`;
const rid = (i: number) => `r${i}`;

let base: string;
let env: Record<string, string>;
let cfg: string;
let A: string;
let B: string;
let C: string;
let G: string;
let cPw: string;
let s3: S3Server;
let server: PostgresServer;
let state: string;
let rowsState: string;

const cli = (args: string[]) => run(["--config", cfg, ...args], { env, timeoutMs: 600_000 });
const ok = async (args: string[]) => {
  const r = await cli(args);
  assert.equal(r.code, 0, show(r));
  return r;
};
const folder = (i: number) => path.join(base, "srv", id(i));

/** The account snapshots stored in one repository: account -> snapshot ids (oldest first). */
async function accountsIn(repo: string): Promise<Map<string, string[]>> {
  const args = repo === C ? ["--password-file", cPw] : [];
  const r = await run(["-r", repo, ...args, "--json", "snapshots"], { env, timeoutMs: 120_000 });
  assert.equal(r.code, 0, show(r));
  const snaps = (jsonLines(r.stdout)[0] as unknown as { id: string; account?: string; time: string }[])
    .filter((s) => s.account)
    .sort((a, b) => (a.time < b.time ? -1 : 1));
  const out = new Map<string, string[]>();
  for (const s of snaps) out.set(s.account!, [...(out.get(s.account!) ?? []), s.id]);
  return out;
}

/** Folders for accounts [0, n) (existing ones left as they are) and the accounts file. */
async function writeAccounts(n: number): Promise<void> {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const dir = folder(i);
    lines.push(JSON.stringify({ id: id(i), timezone: "UTC", path: dir }));
    if (
      await fs.stat(dir).then(
        () => true,
        () => false,
      )
    )
      continue;
    await fs.mkdir(path.join(dir, "cur"), { recursive: true });
    await fs.writeFile(path.join(dir, "cur", "1.eml"), `From: ${id(i)}@example.org\n\nhello ${i}\n`);
    await fs.writeFile(path.join(dir, "signature.txt"), "-- \nshared by every account\n");
  }
  await fs.writeFile(path.join(base, "mail.jsonl"), `${lines.join("\n")}\n`);
}

async function writeConfig(repos: unknown[]): Promise<void> {
  await fs.writeFile(
    cfg,
    JSON.stringify({
      fleets: [
        {
          name: "mail",
          accounts: { file: path.join(base, "mail.jsonl") },
          timezone: "UTC",
          repositories: repos,
          state,
          drillSample: 1,
          // One at a time: with two, the first snapshots into the fresh S3 repository both enable
          // its fleet-accounts feature (a config rewrite), and one run read the config from
          // s3rver as "bad magic" meanwhile (seen once in 7 runs; not investigated further).
          concurrency: 1,
        },
        {
          name: "contacts",
          kind: "rows",
          accounts: { sql: server.url("svc"), query: "SELECT id, 'UTC' AS timezone FROM users" },
          rows: { url: server.url("svc"), tables: [{ table: "contacts", owner: "owner" }] },
          repositories: [A, B],
          state: rowsState,
          drillSample: 0,
        },
      ],
    }),
  );
}

async function contacts(owner?: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: server.url("svc") });
  await c.connect();
  try {
    const r = await c.query<{ t: string }>(
      `SELECT row_to_json(x)::text AS t FROM contacts x ${owner ? "WHERE owner = $1" : ""} ORDER BY id`,
      owner ? [owner] : [],
    );
    return r.rows.map((x) => x.t);
  } finally {
    await c.end();
  }
}

async function sql(q: string, p: unknown[] = []): Promise<void> {
  const c = new pg.Client({ connectionString: server.url("svc") });
  await c.connect();
  try {
    await c.query(q, p);
  } finally {
    await c.end();
  }
}

/**
 * Both fleets have accounts in A and in B; some old mail account would hash to C once C is
 * added (the mover); at least two new ones go to C (one is erased, one is restored with no state).
 */
function goodLayout(): boolean {
  const count = (ids: string[], keys: string[], fleet: string, want: string) =>
    ids.filter((a) => placeAccount(fleet, a, keys) === want).length;
  const old = [...Array(OLD).keys()].map(id);
  const fresh = [...Array(NEW).keys()].map((i) => id(OLD + i));
  const rows = [...Array(8).keys()].map(rid);
  return (
    count(old, [A, B], "mail", A) > 0 &&
    count(old, [A, B], "mail", B) > 0 &&
    count(rows, [A, B], "contacts", A) > 0 &&
    count(rows, [A, B], "contacts", B) > 0 &&
    count(old, [A, B, C], "mail", C) > 0 &&
    count(fresh, [A, B, C], "mail", C) >= 2
  );
}

before(async () => {
  base = await tempDir("lifeboat-fleet-repos-");
  s3 = await startS3rver(["fleet"]);
  // Placement hashes the repositories' URLs, which hold a random temp folder and port: pick
  // names whose layout has what every test below needs, so that none depends on luck (one CI
  // run had all 8 rows accounts in A, about 1 in 128 layouts).
  for (let k = 0; ; k++) {
    assert.ok(k < 10_000, "no repository layout found");
    A = path.join(base, `repo-a${k}`);
    B = path.join(base, `repo-b${k}`);
    C = s3.url("fleet", `c${k}`);
    if (goodLayout()) break;
  }
  G = path.join(base, "repo-global");
  state = path.join(base, "state", "mail.db");
  rowsState = path.join(base, "state", "contacts.db");
  cfg = path.join(base, "fleet.json");
  // The global repository (-r) must stay free of account snapshots: every account lives in the
  // fleet's own repositories.
  env = repoEnv(G, "fleet-pw", { XDG_STATE_HOME: path.join(base, "xdg") });
  env = { ...env, ...s3.env() };
  cPw = path.join(base, "c.pw");
  await fs.writeFile(cPw, "another-password\n");
  for (const r of [G, A, B]) assert.equal((await run(["-r", r, "init"], { env })).code, 0);
  const ci = await run(["-r", C, "--password-file", cPw, "init"], { env });
  assert.equal(ci.code, 0, show(ci));
  server = await startPostgres();
  const admin = new pg.Client({ connectionString: server.url("postgres") });
  await admin.connect();
  await admin.query("CREATE DATABASE svc");
  await admin.end();
  await sql(`CREATE TABLE users (id text PRIMARY KEY);
    CREATE TABLE contacts (id serial PRIMARY KEY, owner text NOT NULL REFERENCES users(id), name text, phone text)`);
  for (let i = 0; i < 8; i++) {
    await sql("INSERT INTO users VALUES ($1)", [rid(i)]);
    await sql(
      "INSERT INTO contacts (owner, name, phone) SELECT $1, 'c' || n || ' of ' || $1, '+49 ' || n FROM generate_series(1, 3) n",
      [rid(i)],
    );
  }
  await writeAccounts(OLD);
  await writeConfig([A, B]);
});

after(async () => {
  await server?.stop();
  await s3?.stop();
  if (base) await removeTempDir(base);
});

let placed: Map<string, string>;
/** An old account that a hash over three repositories would put in the new one; it changes. */
let mover: string;

test("accounts are spread over two repositories and their placement is in the fleet's state", async () => {
  const r = await ok(["--json", "fleet", "run", "--now", "2026-03-02T03:30:00Z"]);
  const sums = jsonLines(r.stdout).filter((m) => m.message_type === "fleet_summary");
  assert.deepEqual(
    sums.map((s) => [s.fleet, s.snapshot, s.failed]).sort(),
    [
      ["contacts", 8, 0],
      ["mail", OLD, 0],
    ],
    show(r),
  );
  const inA = await accountsIn(A);
  const inB = await accountsIn(B);
  assert.equal((await accountsIn(G)).size, 0, "nothing in the global repository");
  placed = new Map();
  for (const [acc] of inA) placed.set(acc, A);
  for (const [acc] of inB) {
    assert.ok(!placed.has(acc), `${acc} is in one repository only`);
    placed.set(acc, B);
  }
  assert.equal(placed.size, OLD + 8);
  for (let i = 0; i < OLD; i++) assert.ok(placed.has(id(i)));
  assert.ok(inA.size > 0 && inB.size > 0, "both repositories hold accounts");
  // The state records where each one is (and the placement is the hash the docs describe).
  for (let i = 0; i < OLD; i++) {
    const s = jsonLines(
      (
        await ok([
          "--json",
          "fleet",
          "status",
          "--name",
          "mail",
          "--account",
          id(i),
          "--now",
          "2026-03-02T03:31:00Z",
        ])
      ).stdout,
    )[0]!;
    assert.equal(s.repository, placed.get(id(i)));
    assert.equal(placed.get(id(i)), placeAccount("mail", id(i), [A, B]));
  }
  // Drills of the night (sample 1: every mail account) each read the account's own repository.
  const st = jsonLines(
    (await ok(["--json", "fleet", "status", "--name", "mail", "--now", "2026-03-02T03:31:00Z"])).stdout,
  )[0]!;
  assert.equal((st.drills as { proven_30d: number }).proven_30d, OLD);
});

test("a repository added later takes only new accounts; old ones stay with their series", async () => {
  await writeConfig([A, B, { url: C, passwordFile: cPw }]);
  await writeAccounts(OLD + NEW);
  // One old account whose hash over three repositories now says C changes: it must stay put.
  const found = [...Array(OLD).keys()].map(id).find((a) => placeAccount("mail", a, [A, B, C]) === C);
  assert.ok(found, "some old account hashes to the new repository (the test needs one)");
  mover = found;
  await fs.writeFile(path.join(folder(Number(mover.slice(1))), "cur", "2.eml"), "From: x\n\nnew mail\n");
  const r = await ok(["--json", "fleet", "run", "--name", "mail", "--now", "2026-03-03T03:30:00Z"]);
  const sum = jsonLines(r.stdout).find((m) => m.message_type === "fleet_summary")!;
  assert.equal(sum.snapshot, NEW + 1, show(r));
  assert.equal(sum.unchanged, OLD - 1);
  const inC = await accountsIn(C);
  const inA = await accountsIn(A);
  const inB = await accountsIn(B);
  for (const acc of inC.keys()) assert.ok(Number(acc.slice(1)) >= OLD, `${acc} in C is a new account`);
  assert.ok(inC.size > 0, "the new repository holds new accounts");
  for (let i = OLD; i < OLD + NEW; i++) {
    const where = [inA, inB, inC].filter((m) => m.has(id(i))).length;
    assert.equal(where, 1, `${id(i)} in exactly one repository`);
    placed.set(id(i), inA.has(id(i)) ? A : inB.has(id(i)) ? B : C);
  }
  // The changed old account's second snapshot is in its old repository, next to its parent.
  const series = (placed.get(mover) === A ? inA : inB).get(mover)!;
  assert.equal(series.length, 2);
  const s = await cli(["-r", placed.get(mover)!, "cat", "snapshot", series[1]!]);
  assert.equal(s.code, 0, show(s));
  assert.equal((JSON.parse(s.stdout) as { parent?: string }).parent, series[0]);
});

test("every account command finds the account's repository through the fleet's state", async () => {
  const inC = [...placed].find(([, r]) => r === C)![0];
  const inB = [...placed].find(([a, r]) => r === B && a.startsWith("u"))![0];
  // mover: the old account changed in night 2 (two snapshots).
  for (const acc of [inC, inB, mover]) {
    const snaps = jsonLines((await ok(["--json", "snapshots", "--account", acc])).stdout)[0] as unknown as {
      account: string;
    }[];
    assert.ok(snaps.length > 0 && snaps.every((x) => x.account === acc), acc);
    const target = path.join(base, "restored", acc);
    await ok(["restore", "--account", acc, "--target", target]);
    await assertTreesEqual(folder(Number(acc.slice(1))), target);
    await ok(["drill", "--account", acc]);
  }
  // forget --account: the account's own series, in its own repository.
  const fr = await ok(["--json", "forget", "--account", mover, "--keep-last", "1"]);
  const f = jsonLines(fr.stdout).find((m) => m.message_type === "summary")!;
  assert.equal((f.removed as string[]).length, 1, show(fr));
  assert.equal((await accountsIn(placed.get(mover)!)).get(mover)!.length, 1);
  // fleet erase --account: dry run, then for real, in the S3 repository.
  const dry = await ok(["fleet", "erase", "--name", "mail", "--account", inC]);
  assert.match(dry.stdout, /would forget 1 snapshot/);
  await ok(["fleet", "erase", "--name", "mail", "--account", inC, "--yes"]);
  assert.ok(!(await accountsIn(C)).has(inC));
  placed.delete(inC);
  // A rows account back into the shared table from its repository, other accounts untouched.
  const rowsAcc = [...placed].find(([a, r]) => a.startsWith("r") && r === B)![0];
  const before = await contacts(rowsAcc);
  const others = (await contacts()).filter((x) => !before.includes(x));
  await sql("DELETE FROM contacts WHERE owner = $1", [rowsAcc]);
  await ok(["restore", "--account", rowsAcc, "--fleet", "contacts", "--into-shared-db"]);
  assert.deepEqual(await contacts(rowsAcc), before);
  assert.deepEqual(
    (await contacts()).filter((x) => !before.includes(x)),
    others,
  );
});

test("the console's account pages read each account from its own repository", async () => {
  const server = await startConsole({ ...env, LIFEBOAT_CONFIG: cfg });
  try {
    const admin = await ConsoleClient.signIn(server.url, "admin", server.token);
    const repoOf = new Map<string, string>();
    for (const want of [A, B, C]) {
      const acc = [...placed].find(([a, r]) => r === want && a.startsWith("u"))![0];
      const h = await admin.get<{ repo: string; snapshots: { account: string }[] }>(
        `/api/fleets/mail/accounts/${acc}/history`,
      );
      assert.equal(h.status, 200, JSON.stringify(h.body));
      assert.ok(h.body.snapshots.length > 0 && h.body.snapshots.every((x) => x.account === acc), acc);
      const d = await admin.get<{ repo: string }>(`/api/fleets/mail/accounts/${acc}`);
      assert.equal(d.body.repo, h.body.repo);
      repoOf.set(want, h.body.repo);
    }
    assert.equal(new Set(repoOf.values()).size, 3, "three repositories, three console repository ids");
  } finally {
    await server.stop();
  }
});

test("with the fleet's state deleted, accounts are found in the repositories' catalogues", async () => {
  await fs.rm(path.dirname(state), { recursive: true, force: true });
  const inC = [...placed].find(([, r]) => r === C)![0];
  const inB = [...placed].find(([a, r]) => r === B && a.startsWith("u"))![0];
  for (const acc of [inC, inB]) {
    const target = path.join(base, "restored-nostate", acc);
    await ok(["restore", "--account", acc, "--target", target]);
    await assertTreesEqual(folder(Number(acc.slice(1))), target);
    const snaps = jsonLines(
      (await ok(["--json", "snapshots", "--account", acc])).stdout,
    )[0] as unknown as unknown[];
    assert.equal(snaps.length, 1);
  }
  const rowsAcc = [...placed].find(([a, r]) => a.startsWith("r") && r === B)![0];
  await sql("DELETE FROM contacts WHERE owner = $1", [rowsAcc]);
  await ok(["restore", "--account", rowsAcc, "--fleet", "contacts", "--into-shared-db"]);
  assert.equal((await contacts(rowsAcc)).length, 3);
});

test("whole-service restore with no state: every account from its own repository", async () => {
  const saved = path.join(base, "saved");
  execFileSync("cp", ["-a", path.join(base, "srv"), saved]); // folder mtimes too
  const rowsBefore = await contacts();
  for (const acc of placed.keys())
    if (acc.startsWith("u")) await fs.rm(folder(Number(acc.slice(1))), { recursive: true });
  await sql("DELETE FROM contacts");
  const r = await ok(["--json", "fleet", "restore", "--all"]);
  const sums = jsonLines(r.stdout).filter((m) => m.message_type === "fleet_restore_summary");
  assert.deepEqual(
    sums.map((s) => [s.fleet, s.restored, s.failed]),
    [
      ["mail", OLD + NEW - 1, 0],
      ["contacts", 8, 0],
    ],
  );
  for (const acc of placed.keys())
    if (acc.startsWith("u")) await assertTreesEqual(path.join(saved, acc), folder(Number(acc.slice(1))));
  assert.deepEqual(await contacts(), rowsBefore);
});

test("a night after the state was lost keeps every account in the repository that holds it", async () => {
  for (const acc of placed.keys())
    if (acc.startsWith("u"))
      await fs.writeFile(path.join(folder(Number(acc.slice(1))), "cur", "3.eml"), "again\n");
  const r = await ok([
    "--json",
    "fleet",
    "run",
    "--name",
    "mail",
    "--now",
    "2026-03-04T03:30:00Z",
    "--no-drills",
  ]);
  const sum = jsonLines(r.stdout).find((m) => m.message_type === "fleet_summary")!;
  const mail = [...placed.keys()].filter((a) => a.startsWith("u"));
  // The erased account is still in the account source: it joins again, as a new series.
  assert.equal(sum.snapshot, mail.length + 1, show(r));
  assert.equal(sum.failed, 0);
  const held = new Map<string, Map<string, string[]>>();
  for (const repo of [A, B, C]) held.set(repo, await accountsIn(repo));
  for (const acc of mail) {
    const repo = placed.get(acc)!;
    for (const [other, m] of held) if (other !== repo) assert.ok(!m.has(acc), `${acc} also in ${other}`);
    assert.ok(held.get(repo)!.get(acc)!.length >= 2, `${acc}: its new snapshot is in ${repo}`);
    const s = jsonLines(
      (
        await ok([
          "--json",
          "fleet",
          "status",
          "--name",
          "mail",
          "--account",
          acc,
          "--now",
          "2026-03-04T03:31:00Z",
        ])
      ).stdout,
    )[0]!;
    assert.equal(s.repository, repo, `${acc}: the rebuilt state records where it is`);
  }
});
