/**
 * Kill points for the sources that are not folders: `replicate sqlite:` (while a writer commits),
 * `pg wal-push` (as archive_command runs it) and `pull imap://` (against a real dovecot), each
 * SIGKILLed after the Nth storage write or after a random delay. After every kill: `check
 * --read-data` exits 0, what was restorable before still restores the same, and the next run
 * completes (and stores nothing again that the killed run had made durable).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import type { ImapFlow } from "imapflow";
import { appendTo, makeMessage, type SeededMessage, seedMailbox } from "../mail/seed.js";
import { prng, removeTempDir, show, tempDir, treeEntries } from "../support/cli.js";
import { startDovecot } from "../support/dovecot.js";
import { Killer } from "./killer.js";
import {
  assertSameTree,
  between,
  checkClean,
  envFor,
  figure,
  HOOKED_CLI,
  indexedBlobs,
  initSmall,
  lb,
  lbOk,
  newBlobs,
  PROFILE,
  rng,
  SEED,
  SMALL,
  sized,
  rounds as sizedRounds,
  summary,
  timeUp,
} from "./support.js";

const PW = "torture-sources";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

// --- replicate sqlite: -------------------------------------------------------------------------

const ACCOUNTS = 200;
const START = 1000;

const WRITER = `
import Database from ${JSON.stringify(createRequire(import.meta.url).resolve("better-sqlite3"))};
const [file, rate] = [process.argv[2], Number(process.argv[3])];
const db = new Database(file, { timeout: 60000 });
db.pragma("busy_timeout = 60000");
const debit = db.prepare("UPDATE accounts SET balance = balance - ? WHERE id = ?");
const credit = db.prepare("UPDATE accounts SET balance = balance + ? WHERE id = ?");
const log = db.prepare("INSERT INTO transfers (src, dst, amount, t) VALUES (?, ?, ?, ?)");
const tx = db.transaction((s, d, a) => { debit.run(a, s); credit.run(a, d); return log.run(s, d, a, Date.now()).lastInsertRowid; });
let stop = false;
process.stdin.on("data", () => {});
process.stdin.on("end", () => { stop = true; });
let n = 0, last = 0;
const t0 = Date.now();
while (!stop) {
  const due = Math.floor(((Date.now() - t0) * rate) / 1000);
  while (n < due) {
    last = Number(tx(1 + Math.floor(Math.random() * ${ACCOUNTS}), 1 + Math.floor(Math.random() * ${ACCOUNTS}), 1 + Math.floor(Math.random() * 50)));
    n++;
  }
  await new Promise((r) => setTimeout(r, 5));
}
db.close();
process.stdout.write(JSON.stringify({ n, last }) + "\\n");
`;

function createBank(file: string): void {
  const db = new Database(file);
  db.pragma("journal_mode = wal");
  db.exec(`
    CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
    CREATE TABLE transfers (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER, t INTEGER);
  `);
  const ins = db.prepare("INSERT INTO accounts (id, balance) VALUES (?, ?)");
  db.transaction(() => {
    for (let i = 1; i <= ACCOUNTS; i++) ins.run(i, START);
  })();
  db.close();
}

/** A consistent bank: integrity, the total, balances against the log, ids 1..n. Returns n and a digest. */
function checkBank(file: string): { n: number; digest: string } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
    const { total } = db.prepare("SELECT sum(balance) AS total FROM accounts").get() as { total: number };
    assert.equal(total, ACCOUNTS * START, "balances do not add up: a torn transaction");
    const wrong = db
      .prepare(
        `SELECT count(*) AS n FROM accounts a WHERE a.balance != ${START}
           - coalesce((SELECT sum(amount) FROM transfers WHERE src = a.id), 0)
           + coalesce((SELECT sum(amount) FROM transfers WHERE dst = a.id), 0)`,
      )
      .get() as { n: number };
    assert.equal(wrong.n, 0, "balances disagree with the transfer log");
    const rows = db.prepare("SELECT id, src, dst, amount, t FROM transfers ORDER BY id").all() as {
      id: number;
    }[];
    for (const [i, r] of rows.entries()) assert.equal(r.id, i + 1, "the transfer ids have a gap");
    return { n: rows.length, digest: sha(Buffer.from(JSON.stringify(rows))) };
  } finally {
    db.close();
  }
}

/** Runs `lifeboat replicate` through the hooked CLI; kill() is SIGKILL, stop() SIGINT. */
function replicate(env: Record<string, string>, file: string, killAfterWrites?: number) {
  const e = { ...env };
  if (killAfterWrites) e.LIFEBOAT_TORTURE_KILL_AFTER_WRITES = String(killAfterWrites);
  const child: ChildProcess = spawn(
    process.execPath,
    [HOOKED_CLI, "replicate", `sqlite:${file}`, "--interval", "300ms", "--snapshot-interval", "8s", "--json"],
    { env: e, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const closed = new Promise<[number | null, NodeJS.Signals | null]>((r) =>
    child.on("close", (c, s) => r([c, s])),
  );
  return {
    closed,
    get output() {
      return `exit ${child.exitCode} ${child.signalCode}\n--- stdout\n${out.slice(-2000)}\n--- stderr\n${err.slice(-2000)}`;
    },
    async kill(): Promise<boolean> {
      const wasRunning = child.exitCode === null && child.signalCode === null;
      child.kill("SIGKILL");
      await closed;
      return wasRunning || child.signalCode === "SIGKILL";
    },
    async stop(): Promise<number | null> {
      // Its SIGINT handler (stop after shipping what is committed) is set once it says
      // "started"; before that, under load, SIGINT would interrupt the start (exit 130).
      for (let i = 0; i < 600 && !out.includes('"message_type":"started"') && child.exitCode === null; i++)
        await sleep(200);
      child.kill("SIGINT");
      return (await closed)[0];
    },
  };
}

test("replicate sqlite: killed again and again while a writer commits: every restore is a consistent prefix", async () => {
  const base = await tempDir("lifeboat-torture-replicate-");
  try {
    const repo = path.join(base, "repo");
    await initSmall(repo, PW);
    const env = envFor(repo, PW);
    const file = path.join(base, "bank.db");
    createBank(file);
    await fs.writeFile(path.join(base, "writer.mjs"), WRITER);
    const writer = spawn(process.execPath, [path.join(base, "writer.mjs"), file, "150"], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    let writerOut = "";
    writer.stdout!.on("data", (d: Buffer) => {
      writerOut += d.toString();
    });
    const r = rng(`${SEED}/replicate`);
    const rounds = sizedRounds(3, 30);
    let kills = 0;
    let byWrites = 0;
    let byDelay = 0;
    let lastN = 0;
    /** Points in time checked once, with what they restored: they must restore the same later. */
    const points: { time: string; digest: string; n: number }[] = [];
    const restoreAt = async (time: string | undefined, what: string) => {
      const out = path.join(base, `restored-${Date.now()}-${Math.random().toString(36).slice(2)}.db`);
      const args = ["restore", `sqlite:${file}`, "--target", out, ...(time ? ["--time", time] : [])];
      const x = await lb(args, { env });
      assert.equal(x.code, 0, `${what}:\n${show(x)}`);
      const got = checkBank(out);
      await fs.rm(out, { force: true });
      return got;
    };
    let roundsRun = 0;
    for (let round = 0; round < rounds && !timeUp(); round++) {
      roundsRun++;
      const byW = r() < 0.5;
      const rep = replicate(env, file, byW ? between(r, 1, 25) : undefined);
      let how: "writes" | "delay" | undefined;
      if (byW) {
        // Killed by its own hook after the Nth write, or (a slow round) by us after 20 s.
        const ended = await Promise.race([rep.closed, sleep(20_000).then(() => undefined)]);
        if (ended) assert.equal(ended[1], "SIGKILL", `replicate ended by itself:\n${rep.output}`);
        how = ended ? "writes" : (await rep.kill()) ? "delay" : undefined;
      } else {
        await sleep(between(r, 300, 6000));
        how = (await rep.kill()) ? "delay" : undefined;
      }
      if (!how) assert.fail(`replicate was not running when killed:\n${rep.output}`);
      kills++;
      if (how === "writes") byWrites++;
      else byDelay++;
      await checkClean(env, `replicate killed (round ${round})`);
      // Nothing restorable before is lost: the earlier points restore exactly as before.
      for (const p of points) {
        const again = await restoreAt(p.time, `restore --time ${p.time} after kill ${kills}`);
        assert.equal(again.digest, p.digest, `the point ${p.time} restores differently after kill ${kills}`);
      }
      const latest = await restoreAt(undefined, `restore latest after kill ${kills}`);
      assert.ok(latest.n >= lastN, `latest restore went back from ${lastN} to ${latest.n} transfers`);
      lastN = latest.n;
      if (latest.n > 0) points.push({ time: new Date().toISOString(), digest: latest.digest, n: latest.n });
      // Keep the per-kill cost bounded: the last few points in time.
      if (points.length > 4) points.splice(0, points.length - 4);
    }
    // The writer stops; a last replicate ships everything and stops cleanly.
    writer.stdin!.end();
    await new Promise((res) => writer.on("close", res));
    const w = JSON.parse(writerOut.trim().split("\n").at(-1)!) as { n: number; last: number };
    const last = replicate(env, file);
    await sleep(3000);
    const code = await last.stop();
    assert.equal(code, 0, last.output);
    await checkClean(env, "the last replicate");
    const all = await restoreAt(undefined, "restore latest at the end");
    assert.equal(all.n, w.last, "the last restore holds every committed transfer");
    await figure("kill/replicate-sqlite", {
      rounds: roundsRun,
      planned: rounds,
      killed: kills,
      byWrites,
      byDelay,
      transfers: w.n,
      pointsRechecked: points.length,
    });
    console.log(`# replicate (${PROFILE}): ${kills} kills, ${w.n} transfers`);
  } finally {
    await removeTempDir(base);
  }
});

// --- pg wal-push ---------------------------------------------------------------------------------

const WAL_SIZE = 16 * 1024 * 1024;

/** A WAL segment as PostgreSQL names and heads it: a long page header, some records, zeroes. */
function walSegment(n: number, seed: string): { name: string; bytes: Buffer } {
  const name = `00000001${"0".repeat(8)}${n.toString(16).toUpperCase().padStart(8, "0")}`;
  const bytes = Buffer.alloc(WAL_SIZE);
  bytes.writeUInt16LE(0xd116, 0); // xlp_magic (PostgreSQL 16)
  bytes.writeUInt16LE(0x0002, 2); // XLP_LONG_HEADER
  bytes.writeUInt32LE(1, 4); // timeline
  bytes.writeBigUInt64LE(BigInt(n) * BigInt(WAL_SIZE), 8);
  bytes.writeBigUInt64LE(7300000000000000000n, 24); // system identifier
  bytes.writeUInt32LE(WAL_SIZE, 32);
  bytes.writeUInt32LE(8192, 36);
  const used = (1 + (n % 4)) * 1024 * 1024;
  prng(used, `${seed}-wal-${n}`).copy(bytes, 40);
  return { name, bytes };
}

test("pg wal-push killed at random points: every archived file fetches byte for byte, the push finishes", async () => {
  const base = await tempDir("lifeboat-torture-wal-");
  try {
    const repo = path.join(base, "repo");
    await initSmall(repo, PW);
    const env = envFor(repo, PW);
    const wal = path.join(base, "pg_wal");
    await fs.mkdir(wal);
    const r = rng(`${SEED}/wal`);
    const killer = new Killer(r);
    const files = sizedRounds(4, 40);
    const archived = new Map<string, string>();
    let reused = 0;
    let storedAgain = 0;
    const fetchAll = async (what: string) => {
      for (const [name, digest] of archived) {
        const dest = path.join(base, `fetched-${name}`);
        const f = await lb(["pg", "wal-fetch", name, dest], { env });
        assert.equal(f.code, 0, `wal-fetch ${name} ${what}:\n${show(f)}`);
        assert.equal(sha(await fs.readFile(dest)), digest, `${name} fetched ${what} differs`);
        await fs.rm(dest);
      }
    };
    let roundsRun = 0;
    for (let i = 1; i <= files && !timeUp(); i++) {
      roundsRun++;
      const seg =
        i % 10 === 0
          ? { name: "00000002.history", bytes: Buffer.from("1\t0/3000000\tno recovery target specified\n") }
          : walSegment(i, `${SEED}`);
      const p = path.join(wal, seg.name);
      await fs.writeFile(p, seg.bytes);
      const args = ["pg", "wal-push", p, "--json"];
      const b0 = await indexedBlobs(repo, PW);
      const x = await killer.run("pg wal-push", args, { env }, i === 1 ? "none" : killer.mode(0.8));
      if (x.killed) {
        await checkClean(env, `wal-push ${seg.name} killed`);
        await fetchAll(`after the kill at ${seg.name}`);
        const b1 = await indexedBlobs(repo, PW);
        // PostgreSQL runs archive_command again until it succeeds.
        const again = await lbOk(args, { env });
        killer.learn("pg wal-push", again);
        assert.ok(["stored", "already-archived"].includes(summary(again).status as string), show(again));
        // wal-push reads no index (it runs once per 16 MiB file), so what a killed push stored
        // is stored again: at most one copy of this file's blobs, which prune later removes
        // (docs/reliability.md). Counted, and bounded: never more than the file holds.
        const stored = newBlobs(b1, await indexedBlobs(repo, PW));
        const durable = newBlobs(b0, b1);
        const twice = [...durable].filter((id) => stored.has(id));
        assert.ok(
          twice.length <= Math.ceil(seg.bytes.length / SMALL.chunker.min),
          `the push after the kill stored again ${twice.length} blob(s), more than the file holds`,
        );
        storedAgain += twice.length;
        reused += durable.size - twice.length;
      } else assert.equal(x.code, 0, show(x));
      archived.set(seg.name, sha(seg.bytes));
    }
    await checkClean(env, "the last push");
    await fetchAll("at the end");
    const t = killer.totals();
    await figure("kill/pg-wal-push", {
      files: roundsRun,
      planned: files,
      ...t,
      perCommand: killer.summary(),
      blobsReusedAfterKill: reused,
      blobsStoredAgainAfterKill: storedAgain,
    });
    console.log(`# wal-push (${PROFILE}): ${t.killed} kills in ${t.runs} pushes`);
  } finally {
    await removeTempDir(base);
  }
});

// --- pull imap:// --------------------------------------------------------------------------------

test("pull imap:// killed at random points: earlier snapshots restore the same, the next pull completes", async () => {
  const base = await tempDir("lifeboat-torture-pull-");
  const dv = await startDovecot();
  let admin: ImapFlow | undefined;
  try {
    admin = await dv.client();
    let onServer: SeededMessage[] = await seedMailbox(admin, sized(60, 200));
    const repo = path.join(base, "repo");
    await initSmall(repo, PW);
    const env = envFor(repo, PW, { LIFEBOAT_SOURCE_PASSWORD: dv.password });
    const r = rng(`${SEED}/pull`);
    const killer = new Killer(r);
    const rounds = sizedRounds(4, 30);
    /** Each finished pull's snapshot and its first restore (what later restores must equal). */
    const done = new Map<string, string>();
    let reused = 0;
    const restoreInto = async (id: string, target: string) => {
      const x = await lb(["restore", id, "--target", target], { env });
      assert.equal(x.code, 0, `restore ${id}:\n${show(x)}`);
    };
    const record = async (id: string) => {
      const target = path.join(base, "states", id);
      await restoreInto(id, target);
      // The INBOX messages are the server's bytes.
      for (const m of onServer.filter((x) => x.folder === "INBOX")) {
        const got = await fs.readFile(path.join(target, "INBOX", `${m.uid}.eml`));
        assert.equal(sha(got), sha(m.raw), `INBOX/${m.uid}.eml of ${id}`);
      }
      done.set(id, target);
    };
    let roundsRun = 0;
    for (let round = 0; round < rounds && !timeUp(); round++) {
      roundsRun++;
      // The mailbox changes: new messages (one large), some removed.
      if (round > 0) {
        // A fresh connection each round: a long round under load can outlast the server's
        // idle timeout.
        await admin.logout().catch(() => {});
        admin = await dv.client();
        for (let k = 0; k < 6; k++)
          onServer.push(
            await appendTo(
              admin,
              "INBOX",
              makeMessage(`r${round}-${k}`, k === 0 ? "large" : "plain", round * 10 + k),
              [],
              new Date(),
            ),
          );
        const inbox = onServer.filter((m) => m.folder === "INBOX");
        const gone = inbox.slice(0, 3).map((m) => m.uid);
        await admin.mailboxOpen("INBOX");
        await admin.messageDelete(gone.join(","), { uid: true });
        onServer = onServer.filter((m) => !(m.folder === "INBOX" && gone.includes(m.uid)));
      }
      const b0 = await indexedBlobs(repo, PW);
      const args = ["--json", "pull", dv.url];
      const x = await killer.run("pull imap://", args, { env }, round === 0 ? "none" : killer.mode(0.8));
      if (!x.killed) {
        assert.equal(x.code, 0, show(x));
        await record(summary(x).snapshot_id as string);
        continue;
      }
      await checkClean(env, `pull killed (round ${round})`);
      for (const [id, state] of done) {
        const target = path.join(base, `again-${id}-${round}`);
        await restoreInto(id, target);
        await assertSameTree(state, target, `mail snapshot ${id} after kill`);
        await removeTempDir(target);
      }
      const b1 = await indexedBlobs(repo, PW);
      const again = await lbOk(args, { env });
      killer.learn("pull imap://", again);
      const stored = newBlobs(b1, await indexedBlobs(repo, PW));
      const twice = [...newBlobs(b0, b1)].filter((id) => stored.has(id));
      assert.deepEqual(twice, [], `the pull after the kill stored again ${twice.length} blob(s)`);
      reused += newBlobs(b0, b1).size;
      await record(summary(again).snapshot_id as string);
    }
    await checkClean(env, "the last pull");
    const t = killer.totals();
    const entries = (await treeEntries(path.join(base, "states", [...done.keys()].at(-1)!))).size;
    await figure("kill/pull-imap", {
      rounds: roundsRun,
      planned: rounds,
      ...t,
      perCommand: killer.summary(),
      blobsReusedAfterKill: reused,
      lastSnapshotEntries: entries,
    });
    console.log(`# pull (${PROFILE}): ${t.killed} kills in ${t.runs} pulls`);
  } finally {
    await admin?.logout().catch(() => {});
    await dv.stop();
    await removeTempDir(base);
  }
});
