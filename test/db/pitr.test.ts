/**
 * PostgreSQL point-in-time recovery through the built CLI against a real server on 127.0.0.1:
 * the server archives with `lifeboat pg wal-push %p`, a base backup is streamed while money
 * moves between accounts, and `lifeboat pg restore --time T1` gives a data folder that
 * PostgreSQL (pg_ctl) recovers to exactly the transactions committed at or before T1.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import pg from "pg";
import { baseEnv, CLI, PROJECT_ROOT, type RunResult, tempDir } from "../support/cli.js";
import {
  type PostgresCluster,
  pgCtlStart,
  postgresIds,
  startPostgresCluster,
} from "../support/db-servers.js";
import { startPgTransfers } from "../support/transfers.js";

const ACCOUNTS = 1000;
const START_BALANCE = 1000;
const TOTAL = ACCOUNTS * START_BALANCE;

let server: PostgresCluster;
let base: string;
let repo: string;
let pwfile: string;
let env: Record<string, string>;
/** Node and the CLI as the postgres user can run them (see postgresCanUse). */
let nodeBin = process.execPath;
let cliPath = CLI;
const ids = postgresIds();

/** Whether the postgres OS user can reach a file (checkouts or Node under /root cannot be). */
function postgresCanUse(file: string): boolean {
  return spawnSync("runuser", ["-u", "postgres", "--", "test", "-r", file], { stdio: "ignore" }).status === 0;
}

/**
 * archive_command and restore_command run as postgres. When this Node (e.g. `npx node@22` under
 * /root) or this checkout is out of its reach, copies go into the test folder, which it owns.
 */
async function reachableCli(dir: string): Promise<void> {
  if (!postgresCanUse(process.execPath)) {
    nodeBin = path.join(dir, "node");
    await fs.copyFile(process.execPath, nodeBin);
    await fs.chmod(nodeBin, 0o755);
  }
  if (!postgresCanUse(CLI)) {
    const root = PROJECT_ROOT;
    const app = path.join(dir, "app");
    await fs.mkdir(app);
    await fs.cp(path.join(root, "dist"), path.join(app, "dist"), { recursive: true });
    await fs.cp(path.join(root, "node_modules"), path.join(app, "node_modules"), { recursive: true });
    await fs.copyFile(path.join(root, "package.json"), path.join(app, "package.json"));
    cliPath = path.join(app, path.relative(root, CLI));
    spawnSync("chmod", ["-R", "a+rX", app]);
  }
}

const show = (r: RunResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
const jsonOf = (r: RunResult, type = "summary") => {
  const line = r.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((m) => m.message_type === type);
  assert.ok(line, `no ${type} in\n${show(r)}`);
  return line;
};

/** The CLI as the `postgres` user, as archive_command and restore_command run it. */
function runPg(args: string[], extraEnv: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(nodeBin, [cliPath, ...args], {
      env: { ...env, ...extraEnv },
      cwd: base,
      uid: ids.uid,
      gid: ids.gid,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => err.push(d));
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      }),
    );
  });
}

async function connect(port: number, database: string): Promise<pg.Client> {
  const c = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password: server.password, database });
  await c.connect();
  return c;
}

before(async () => {
  base = await tempDir("lifeboat-pitr-");
  await fs.chown(base, ids.uid, ids.gid);
  await reachableCli(base);
  repo = path.join(base, "repo");
  pwfile = path.join(base, "repo-password");
  await fs.writeFile(pwfile, "pitr-test\n", { mode: 0o600 });
  await fs.chown(pwfile, ids.uid, ids.gid);
  env = baseEnv({ LIFEBOAT_REPOSITORY: repo, LIFEBOAT_PASSWORD_FILE: pwfile });
  const init = await runPg(["init"]);
  assert.equal(init.code, 0, show(init));
  const archiveCommand = `LIFEBOAT_KDF_N=1024 ${nodeBin} ${cliPath} -r ${repo} --password-file ${pwfile} --json pg wal-push %p >> ${path.join(base, "wal-push.log")}`;
  server = await startPostgresCluster({
    wal_level: "replica",
    archive_mode: "on",
    archive_command: archiveCommand,
    track_commit_timestamp: "on",
  });
  const c = await connect(server.port, "postgres");
  await c.query("CREATE DATABASE bank");
  await c.end();
  const b = await connect(server.port, "bank");
  await b.query(`
    CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
    CREATE TABLE transfers (id bigserial PRIMARY KEY, src int, dst int, amount int);
    INSERT INTO accounts SELECT g, ${START_BALANCE} FROM generate_series(1, ${ACCOUNTS}) g;
  `);
  await b.end();
});

after(async () => {
  await server?.stop();
  await server?.remove();
  if (base) await fs.rm(base, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Switches to a new WAL segment and waits until the finished one is archived. */
async function switchAndWaitArchived(c: pg.Client): Promise<string> {
  const f = (await c.query<{ f: string }>("SELECT pg_walfile_name(pg_switch_wal()) AS f")).rows[0]!.f;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const s = (
      await c.query<{ w: string | null; failed: string | null }>(
        "SELECT last_archived_wal AS w, last_failed_wal AS failed FROM pg_stat_archiver",
      )
    ).rows[0]!;
    if (s.w && s.w.slice(0, 24) >= f) return f;
    if (Date.now() > deadline)
      throw new Error(`segment ${f} not archived (last ${s.w}, failed ${s.failed}):\n${await server.log()}`);
    await sleep(100);
  }
}

/**
 * Starts PostgreSQL on a restored data folder, waits for recovery to end, and checks the bank:
 * exactly the `expected` transfers, balances that add up and agree with them. Returns the
 * seconds from `started` until the server was promoted.
 */
async function recoverAndCheck(
  dir: string,
  logName: string,
  expected: string[],
  started: number,
): Promise<number> {
  let recovered = 0;
  const logFile = path.join(base, logName);
  const restored = await pgCtlStart(dir, { socketDir: base, logFile }).catch(async (e: Error) => {
    throw new Error(`${e.message}\n${await fs.readFile(logFile, "utf8").catch(() => "")}`);
  });
  try {
    const c = await connect(restored.port, "postgres");
    const deadline = Date.now() + 120_000;
    while ((await c.query<{ r: boolean }>("SELECT pg_is_in_recovery() AS r")).rows[0]!.r) {
      if (Date.now() > deadline) throw new Error(`still in recovery:\n${await fs.readFile(logFile, "utf8")}`);
      await sleep(200);
    }
    await c.end();
    recovered = (Date.now() - started) / 1000;
    const log = await fs.readFile(logFile, "utf8");
    assert.match(log, /recovery stopping before commit of transaction \d+, time/, log);
    const b = await connect(restored.port, "bank");
    try {
      const total = await b.query<{ t: string; n: string }>(
        "SELECT sum(balance)::text AS t, count(*)::text AS n FROM accounts",
      );
      assert.equal(Number(total.rows[0]!.n), ACCOUNTS);
      assert.equal(Number(total.rows[0]!.t), TOTAL, "restored balances do not add up");
      const got = (await b.query<{ id: string }>("SELECT id::text FROM transfers ORDER BY id")).rows.map(
        (r) => r.id,
      );
      assert.deepEqual(got, expected, "the restored transfers are not exactly those committed by T1");
      const replay = await b.query<{ bad: string }>(`
        WITH moved AS (
          SELECT id, sum(delta) AS d FROM (
            SELECT src AS id, -amount AS delta FROM transfers UNION ALL SELECT dst, amount FROM transfers
          ) x GROUP BY id)
        SELECT count(*)::text AS bad FROM accounts a LEFT JOIN moved m USING (id)
        WHERE a.balance <> ${START_BALANCE} + coalesce(m.d, 0)`);
      assert.equal(replay.rows[0]!.bad, "0", "balances and the transfer log disagree");
    } finally {
      await b.end();
    }
  } finally {
    await restored.stop();
  }
  return recovered;
}

let restoredDir: string;
/** T1 of the first test and the transfers committed by then. */
let pitrT1: { t1: string; expected: string[] } | undefined;

test("base backup while transfers commit; restore --time T1 recovers exactly what committed by T1", async () => {
  const writer = startPgTransfers(() => connect(server.port, "bank"), ACCOUNTS);
  await sleep(300);
  const bb = await runPg(["pg", "base-backup", "--dsn", server.url("postgres"), "--json"]);
  assert.equal(bb.code, 0, `${show(bb)}\n${await server.log()}`);
  const bs = jsonOf(bb);
  const meta = bs.meta as Record<string, unknown>;
  assert.match(String(meta.startWalFile), /^[0-9A-F]{24}$/);
  assert.equal(meta.timeline, 1);
  assert.match(String(meta.serverVersion), /^\d+/);
  assert.ok(!bb.stdout.includes(server.password), "the password must not be stored");
  console.log(
    `pitr: base backup ${(Number(bs.bytes) / 2 ** 20).toFixed(1)} MiB in ${(Number(bs.duration_ms) / 1000).toFixed(2)}s while ${writer.count} transfers had committed; WAL from ${meta.startWalFile}, stop ${meta.stopWalFile ?? "?"}`,
  );

  const admin = await connect(server.port, "postgres");
  await sleep(300);
  await switchAndWaitArchived(admin); // one more segment before T1 (a middle one for the gap test)
  await sleep(300);
  const t1 = (
    await admin.query<{ t: string }>(
      `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`,
    )
  ).rows[0]!.t;
  const atT1 = writer.count;
  await sleep(700);
  await writer.stop();
  assert.ok(writer.count - atT1 > 20, `only ${writer.count - atT1} transfers after T1`);
  await switchAndWaitArchived(admin);
  await admin.end();

  const bank = await connect(server.port, "bank");
  const expected = (
    await bank.query<{ id: string }>(
      "SELECT id::text FROM transfers WHERE pg_xact_commit_timestamp(xmin) <= $1::timestamptz ORDER BY id",
      [t1],
    )
  ).rows.map((r) => r.id);
  const all = Number(
    (await bank.query<{ n: string }>("SELECT count(*)::text AS n FROM transfers")).rows[0]!.n,
  );
  await bank.end();
  assert.ok(expected.length > 20 && expected.length < all, `${expected.length} of ${all} transfers by T1`);
  await server.stop();

  const chk = await runPg(["pg", "check", "--json"]);
  assert.equal(chk.code, 0, show(chk));
  const cs = jsonOf(chk);
  assert.equal(cs.ok, true);
  assert.ok(Number(cs.segments) >= 3, show(chk));

  restoredDir = path.join(base, "restored");
  const started = Date.now();
  const rr = await runPg(["pg", "restore", "--time", t1, "--target-dir", restoredDir, "--json"]);
  assert.equal(rr.code, 0, show(rr));
  const rs = jsonOf(rr);
  assert.equal(rs.snapshot, bs.snapshot_id);
  const conf = await fs.readFile(path.join(restoredDir, "postgresql.auto.conf"), "utf8");
  assert.match(conf, /restore_command = '.* pg wal-fetch %f %p'/);
  assert.ok(conf.includes(`recovery_target_time = '${t1.replace("T", " ").replace("Z", "+00:00")}'`), conf);
  await fs.stat(path.join(restoredDir, "recovery.signal"));
  const unpacked = (Date.now() - started) / 1000;

  const recovered = await recoverAndCheck(restoredDir, "restored.log", expected, started);
  console.log(
    `pitr: restore unpacked ${(Number(rs.bytes) / 2 ** 20).toFixed(1)} MiB in ${unpacked.toFixed(2)}s; recovered to T1 and promoted after ${recovered.toFixed(2)}s`,
  );
  pitrT1 = { t1, expected };
});

test("copy: a second repository alone recovers to T1 (base backup and archived WAL copied once)", async () => {
  assert.ok(pitrT1, "the first test ran");
  const copyRepo = path.join(base, "copy-repo");
  const copyPw = path.join(base, "copy-password");
  await fs.writeFile(copyPw, "the copy's own password\n", { mode: 0o600 });
  await fs.chown(copyPw, ids.uid, ids.gid);
  const copyEnv = { LIFEBOAT_REPOSITORY: copyRepo, LIFEBOAT_PASSWORD_FILE: copyPw };
  assert.equal((await runPg(["init"], copyEnv)).code, 0);
  const from = ["--from-repo", repo, "--from-password-file", pwfile, "--json"];
  const first = await runPg(["copy", ...from], copyEnv);
  assert.equal(first.code, 0, show(first));
  const fs1 = jsonOf(first) as { copied: unknown[]; records: { wal: { copied: number; skipped: number } } };
  assert.equal(fs1.copied.length, 1, "the base backup");
  const archived = (await runPg(["pg", "wal-list", "--json"])).stdout
    .split("\n")
    .filter((l) => l.startsWith("{"));
  assert.equal(fs1.records.wal.copied, archived.length, "every archived file");
  const again = jsonOf(await runPg(["copy", ...from], copyEnv)) as typeof fs1;
  assert.deepEqual(again.records.wal, { copied: 0, skipped: archived.length }, "nothing copied twice");
  assert.equal(again.copied.length, 0);

  // The original is out of reach from here on: only the copy is used.
  await fs.rename(repo, `${repo}.away`);
  try {
    const chk = await runPg(["pg", "check", "--json"], copyEnv);
    assert.equal(chk.code, 0, show(chk));
    assert.equal(jsonOf(chk).ok, true);
    const dir = path.join(base, "restored-from-copy");
    const rr = await runPg(["pg", "restore", "--time", pitrT1.t1, "--target-dir", dir, "--json"], copyEnv);
    assert.equal(rr.code, 0, show(rr));
    const conf = await fs.readFile(path.join(dir, "postgresql.auto.conf"), "utf8");
    assert.ok(conf.includes(copyRepo), conf);
    await recoverAndCheck(dir, "restored-from-copy.log", pitrT1.expected, Date.now());
  } finally {
    await fs.rename(`${repo}.away`, repo);
  }
});

test("wal-push is idempotent and refuses other bytes; wal-fetch of a missing file exits 1 quietly", async () => {
  const list = await runPg(["pg", "wal-list", "--json"]);
  assert.equal(list.code, 0, show(list));
  const files = list.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { name: string; kind: string; size: number; object: string });
  const segment = files.find((f) => f.kind === "segment")!;
  assert.ok(segment, show(list));
  const scratch = path.join(base, "scratch");
  await fs.mkdir(scratch);
  await fs.chown(scratch, ids.uid, ids.gid);
  const copy = path.join(scratch, segment.name);
  const fetched = await runPg(["pg", "wal-fetch", segment.name, copy]);
  assert.equal(fetched.code, 0, show(fetched));
  assert.equal((await fs.stat(copy)).size, segment.size);

  const again = await runPg(["pg", "wal-push", copy, "--json"]);
  assert.equal(again.code, 0, show(again));
  assert.equal(jsonOf(again).status, "already-archived");

  const bytes = await fs.readFile(copy);
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
  await fs.writeFile(copy, bytes);
  const other = await runPg(["pg", "wal-push", copy]);
  assert.equal(other.code, 1, show(other));
  assert.match(other.stderr, new RegExp(`${segment.name} is already archived with different content`));

  const missing = await runPg(["pg", "wal-fetch", "00000001000000FF000000FF", path.join(scratch, "x")]);
  assert.equal(missing.code, 1, show(missing));
  assert.equal(missing.stderr, "");
  await assert.rejects(fs.stat(path.join(scratch, "x")));

  // Could not fetch (here: wrong password) is not "not archived": exit 126 stops recovery.
  const wrong = await runPg(["pg", "wal-fetch", segment.name, path.join(scratch, "y")], {
    LIFEBOAT_PASSWORD_FILE: "",
    LIFEBOAT_PASSWORD: "not-the-password",
  });
  assert.equal(wrong.code, 126, show(wrong));
  assert.match(wrong.stderr, /wrong password/);

  // A password given only in LIFEBOAT_PASSWORD: restore writes it into the data folder, and the
  // restore_command it configures works through /bin/sh as the postgres user.
  const dir2 = path.join(base, "restored-latest");
  const r2 = await runPg(["pg", "restore", "--target-dir", dir2], {
    LIFEBOAT_PASSWORD_FILE: "",
    LIFEBOAT_PASSWORD: "pitr-test",
  });
  assert.equal(r2.code, 0, show(r2));
  assert.match(r2.stdout, /lifeboat-restore\.password: delete it once recovery has finished/);
  const conf = await fs.readFile(path.join(dir2, "postgresql.auto.conf"), "utf8");
  assert.doesNotMatch(conf, /recovery_target_time =/);
  const cmd = /^restore_command = '(.*)'$/m.exec(conf)![1]!.replace(/''/g, "'");
  assert.equal((await fs.readFile(path.join(dir2, "lifeboat-restore.password"), "utf8")).trim(), "pitr-test");
  const viaShell = await new Promise<number | null>((resolve) => {
    const sh = spawn(
      "/bin/sh",
      ["-c", cmd.replace("%f", segment.name).replace("%p", "pg_wal/RECOVERYXLOG").replace(/%%/g, "%")],
      { cwd: dir2, uid: ids.uid, gid: ids.gid, env: { PATH: "/usr/bin:/bin" }, stdio: "ignore" },
    );
    sh.on("close", resolve);
  });
  assert.equal(viaShell, 0, cmd);
  assert.equal((await fs.stat(path.join(dir2, "pg_wal", "RECOVERYXLOG"))).size, segment.size);
  const notEmpty = await runPg(["pg", "restore", "--target-dir", dir2]);
  assert.equal(notEmpty.code, 1, show(notEmpty));
  assert.match(notEmpty.stderr, /is not empty/);

  // A fresh push of a 16 MiB segment (another archive name, so the chain is untouched).
  const started = Date.now();
  const fresh = await runPg(["pg", "wal-push", copy, "--cluster", "scratch", "--json"]);
  const secs = (Date.now() - started) / 1000;
  assert.equal(fresh.code, 0, show(fresh));
  assert.equal(jsonOf(fresh).status, "stored");
  const log = (await fs.readFile(path.join(base, "wal-push.log"), "utf8"))
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { ms: number; kind?: string; size: number });
  const segMs = log.filter((l) => l.size >= 1 << 24).map((l) => l.ms);
  console.log(
    `pitr: wal-push of a ${(segment.size / 2 ** 20).toFixed(0)} MiB segment: ${secs.toFixed(2)}s wall (process start included); archive_command pushes of ${segMs.length} segments took ${Math.min(...segMs)}-${Math.max(...segMs)} ms inside the process`,
  );
});

test("prune merges wal-push's small packs into full-size ones; pg restore --time T1 still recovers exactly", async () => {
  assert.ok(pitrT1, "needs the first test");
  // Enough small packs: small files (timeline history files of another archive, any bytes),
  // each pushed into a pack of its own.
  const scratch = path.join(base, "scratch-merge");
  await fs.mkdir(scratch);
  await fs.chown(scratch, ids.uid, ids.gid);
  for (let i = 2; i < 14; i++) {
    const file = path.join(scratch, `${i.toString(16).toUpperCase().padStart(8, "0")}.history`);
    await fs.writeFile(file, randomBytes(30_000).toString("base64"));
    await fs.chown(file, ids.uid, ids.gid);
    const pushed = await runPg(["pg", "wal-push", file, "--cluster", "merge-test"]);
    assert.equal(pushed.code, 0, show(pushed));
  }
  const packs = async () => {
    let n = 0;
    for (const d of await fs.readdir(path.join(repo, "data")))
      n += (await fs.readdir(path.join(repo, "data", d))).length;
    return n;
  };
  const before = await packs();
  const pr = await runPg(["prune", "--json"]);
  assert.equal(pr.code, 0, show(pr));
  const mark = (jsonOf(pr) as { mark: { smallPacks: string[] } }).mark;
  assert.ok(mark.smallPacks.length >= 12, show(pr));
  const afterPrune = await packs();
  console.log(
    `pitr: prune merged ${mark.smallPacks.length} small packs; ${before} packs before, ${afterPrune} after`,
  );
  assert.ok(afterPrune <= before - 10, `${before} packs before prune, ${afterPrune} after`);

  // The WAL records remember where their blobs were: wal-fetch falls back to the index.
  const dir = path.join(base, "restored-after-prune");
  const started = Date.now();
  const rr = await runPg(["pg", "restore", "--time", pitrT1.t1, "--target-dir", dir, "--json"]);
  assert.equal(rr.code, 0, show(rr));
  await recoverAndCheck(dir, "restored-after-prune.log", pitrT1.expected, started);
});

test("pg check names a missing segment", async () => {
  const chk = await runPg(["pg", "check", "--json"]);
  assert.equal(chk.code, 0, show(chk));
  const cs = jsonOf(chk);
  const startName = (cs.base as { startWalFile: string }).startWalFile;
  // WAL from before the (only) base backup is not needed: wal-expire removes exactly that.
  const before = await runPg(["pg", "wal-list", "--json"]);
  const older = before.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { name: string; kind: string })
    .filter((f) => f.kind !== "history" && f.name.slice(0, 24) < startName)
    .map((f) => f.name);
  assert.ok(older.length > 0, `nothing archived before ${startName}:\n${before.stdout}`);
  const dry = await runPg(["pg", "wal-expire", "--dry-run", "--json"]);
  assert.equal(dry.code, 0, show(dry));
  assert.deepEqual(jsonOf(dry).expired, older);
  const exp = await runPg(["pg", "wal-expire", "--json"]);
  assert.deepEqual(jsonOf(exp).expired, older);
  const list = await runPg(["pg", "wal-list", "--json"]);
  for (const n of older) assert.ok(!list.stdout.includes(`"${n}"`), `${n} still listed`);
  const still = await runPg(["pg", "check"]);
  assert.equal(still.code, 0, show(still));
  const segs = list.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { name: string; kind: string; object: string })
    .filter((f) => f.kind === "segment" && f.name > startName && f.name < String(cs.newest));
  assert.ok(segs.length > 0, `no segment between ${startName} and ${cs.newest}`);
  const victim = segs[0]!;
  await fs.rm(path.join(repo, victim.object));
  const broken = await runPg(["pg", "check"]);
  assert.equal(broken.code, 1, show(broken));
  assert.match(broken.stderr, new RegExp(`missing WAL segment ${victim.name}`));
  assert.match(broken.stderr, /the WAL chain has 1 gap/);
});
