/**
 * `lifeboat backup mysql://...` and `restore --target-db mysql://...` through the built CLI
 * against a real MariaDB server on 127.0.0.1: a consistent dump while transfers commit,
 * restore into a new database, and the errors a user meets.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { baseEnv, jsonLines, type RunResult, run, tempDir } from "../support/cli.js";
import { freePort, type MariadbServer, startMariadb } from "../support/db-servers.js";

let server: MariadbServer;
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
const assertOneLineError = (r: RunResult, code: number, re: RegExp) => {
  assert.equal(r.code, code, show(r));
  const lines = r.stderr.trim().split("\n");
  assert.match(lines[0]!, /^error: /, show(r));
  assert.ok(lines.length <= 2 && (lines.length === 1 || /^ {2}hint: /.test(lines[1]!)), show(r));
  assert.match(r.stderr, re);
};

before(async () => {
  server = await startMariadb();
  base = await tempDir("lifeboat-db-maria-");
  env = baseEnv({ LIFEBOAT_REPOSITORY: path.join(base, "repo"), LIFEBOAT_PASSWORD: "db-test" });
  const r = await run(["init"], { env });
  assert.equal(r.code, 0, show(r));
  server.sql(`
    CREATE DATABASE bank;
    USE bank;
    CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB;
    CREATE TABLE transfers (id BIGINT AUTO_INCREMENT PRIMARY KEY, src INT, dst INT, amount INT) ENGINE=InnoDB;
    CREATE TABLE documents (id INT AUTO_INCREMENT PRIMARY KEY, body BLOB) ENGINE=InnoDB;
    INSERT INTO accounts SELECT seq, ${START_BALANCE} FROM seq_1_to_${ACCOUNTS};
    INSERT INTO documents (body) SELECT RANDOM_BYTES(512) FROM seq_1_to_4000;
    CREATE FUNCTION total_balance() RETURNS BIGINT READS SQL DATA RETURN (SELECT SUM(balance) FROM accounts);
    CREATE TRIGGER no_negative BEFORE INSERT ON transfers FOR EACH ROW SET NEW.amount = ABS(NEW.amount);
  `);
});

after(async () => {
  await server?.stop();
  if (base) await fs.rm(base, { recursive: true, force: true });
});

/** One `mariadb` client session fed batches of transfers; each batch is acknowledged before the next. */
function startTransfers() {
  const child = spawn(
    "mariadb",
    [
      "--no-defaults",
      "-h127.0.0.1",
      `-P${server.port}`,
      "-uroot",
      "--batch",
      "--unbuffered",
      "--skip-column-names",
      "bank",
    ],
    { env: { ...process.env, MYSQL_PWD: server.password }, stdio: ["pipe", "pipe", "pipe"] },
  );
  let stop = false;
  let count = 0;
  let out = "";
  let waiting: (() => void) | undefined;
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
    if (out.includes("tick")) {
      out = "";
      waiting?.();
    }
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const died = new Promise((_, rej) =>
    child.once("exit", () => rej(new Error(`workload client died: ${stderr}`))),
  );
  died.catch(() => {});
  const done = (async () => {
    while (!stop) {
      let batch = "";
      for (let i = 0; i < 20; i++) {
        const src = 1 + Math.floor(Math.random() * ACCOUNTS);
        const dst = 1 + Math.floor(Math.random() * ACCOUNTS);
        const amount = 1 + Math.floor(Math.random() * 50);
        batch += `START TRANSACTION; UPDATE accounts SET balance = balance - ${amount} WHERE id = ${src}; UPDATE accounts SET balance = balance + ${amount} WHERE id = ${dst}; INSERT INTO transfers (src, dst, amount) VALUES (${src}, ${dst}, ${amount}); COMMIT;\n`;
      }
      const acked = new Promise<void>((r) => {
        waiting = r;
      });
      child.stdin.write(`${batch}SELECT 'tick';\n`);
      await Promise.race([acked, died]);
      count += 20;
    }
    child.stdin.end();
    await new Promise((r) => child.once("close", r));
  })();
  return {
    get count() {
      return count;
    },
    async stop() {
      stop = true;
      await done;
    },
  };
}

test("mariadb-dump --single-transaction while transfers commit; restore --target-db adds up exactly", async () => {
  const writer = startTransfers();
  await new Promise((r) => setTimeout(r, 500));
  const before = writer.count;
  const started = Date.now();
  const r = await run(["backup", server.url("bank"), "--json", "--tag", "maria"], { env });
  const secs = (Date.now() - started) / 1000;
  const during = writer.count - before;
  await new Promise((res) => setTimeout(res, 200));
  await writer.stop();
  assert.equal(r.code, 0, show(r));
  const s = summary(r);
  console.log(
    `mariadb: ${(Number(s.total_bytes_processed) / 2 ** 20).toFixed(1)} MiB dump backed up in ${secs.toFixed(2)}s while ${during} transfers committed (${(during / secs).toFixed(0)} tx/s)`,
  );
  assert.ok(during > 20, `only ${during} transfers committed during the backup`);
  assert.equal(s.source, "mysql");
  assert.equal(s.source_name, `mysql://root@127.0.0.1:${server.port}/bank`);
  assert.ok(!JSON.stringify(s).includes(server.password), "the password must not be stored");

  const rr = await run(
    ["restore", String(s.snapshot_id), "--target-db", server.url("bank_restored"), "--json"],
    {
      env,
    },
  );
  assert.equal(rr.code, 0, show(rr));
  assert.equal(summary(rr).database, "bank_restored");
  const [total, n] = server
    .sql("SELECT SUM(balance), COUNT(*) FROM accounts", "bank_restored")
    .trim()
    .split("\t")
    .map(Number);
  assert.equal(n, ACCOUNTS);
  assert.equal(total, TOTAL, "restored balances do not add up: the dump is not consistent");
  const bad = server
    .sql(
      `SELECT COUNT(*) FROM accounts a LEFT JOIN (
         SELECT id, SUM(d) AS d FROM (SELECT src AS id, -amount AS d FROM transfers UNION ALL SELECT dst, amount FROM transfers) x GROUP BY id
       ) m USING (id) WHERE a.balance <> ${START_BALANCE} + COALESCE(m.d, 0)`,
      "bank_restored",
    )
    .trim();
  assert.equal(bad, "0", "balances and the transfer log disagree");
  const transfers = Number(server.sql("SELECT COUNT(*) FROM transfers", "bank_restored").trim());
  assert.ok(transfers > 0 && transfers < writer.count, `${transfers} of ${writer.count}`);
  assert.equal(server.sql("SELECT total_balance()", "bank_restored").trim(), String(TOTAL));
  assert.match(server.sql("SHOW TRIGGERS", "bank_restored"), /no_negative/);
  assert.equal(server.sql("SELECT COUNT(*) FROM documents", "bank_restored").trim(), "4000");

  const again = await run(
    ["restore", `mysql://root@127.0.0.1:${server.port}/bank`, "--target-db", server.url("bank_restored")],
    { env },
  );
  assertOneLineError(again, 1, /bank_restored already exists/);
});

test("a restore that fails half-way drops the database it created and says so", async () => {
  server.sql(`CREATE DATABASE broken; USE broken; CREATE TABLE t (x INT); INSERT INTO t VALUES (1), (2);`);
  const b = await run(["backup", server.url("broken"), "--json"], { env });
  assert.equal(b.code, 0, show(b));
  // A user that may create databases but not insert: the dump's INSERT fails half-way.
  server.sql(`
    CREATE USER 'creator'@'127.0.0.1' IDENTIFIED BY 'pw';
    GRANT CREATE, DROP, ALTER, SELECT, LOCK TABLES ON *.* TO 'creator'@'127.0.0.1';
  `);
  const r = await run(
    [
      "restore",
      `mysql://root@127.0.0.1:${server.port}/broken`,
      "--target-db",
      server.url("broken2", "creator", "pw"),
    ],
    { env },
  );
  assertOneLineError(
    r,
    1,
    /restore into database broken2 failed: .*denied.*; the incomplete database broken2 was dropped/,
  );
  assert.equal(server.sql("SHOW DATABASES LIKE 'broken2'").trim(), "");
});

test("errors: wrong password, nothing listening, no dump tool — one line, documented exit codes", async () => {
  const wrong = await run(["backup", server.url("bank", "root", "not-the-password")], { env });
  assertOneLineError(wrong, 16, /refused the login of root: .*Access denied/);
  assert.ok(!wrong.stderr.includes("not-the-password"));

  const port = await freePort();
  const down = await run(["backup", `mysql://root:x@127.0.0.1:${port}/bank`], { env });
  assertOneLineError(down, 16, new RegExp(`127\\.0\\.0\\.1:${port} cannot be reached`));

  const unknown = await run(["backup", server.url("no_such_db")], { env });
  assertOneLineError(unknown, 1, /Unknown database/);

  const emptyBin = path.join(base, "empty-bin");
  await fs.mkdir(emptyBin, { recursive: true });
  const noTool = await run(["backup", server.url("bank")], { env: { ...env, PATH: emptyBin } });
  assertOneLineError(noTool, 1, /mariadb-dump is not installed[\s\S]*mariadb-client/);
});
