/**
 * `node dist/bench/replicate-lag.js [--mb 256] [--rate 350] [--seconds 40] [--interval 1s]
 *  [--snapshot-interval 20s] [--dir DIR]`: the lag of `lifeboat replicate sqlite:` while its
 * full snapshots are taken. Builds a database of about MB MiB (incompressible rows plus a small
 * bank), starts a writer process at RATE transactions/s, then `replicate` (so the initial
 * snapshot is taken under load), and lets it run for SECONDS with a generation switch every
 * --snapshot-interval. Prints, per generation, how long its snapshot took and the lag bounds of
 * its first segments (replicate's own: lag_max = stored − when the previous read began, i.e.
 * an upper bound for every transaction in the segment), and the largest lag of all.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, "..", "src", "cli", "main.js");

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}
const MB = Number(arg("mb", "256"));
const RATE = Number(arg("rate", "350"));
const SECONDS = Number(arg("seconds", "40"));
const INTERVAL = arg("interval", "1s");
const SNAPSHOT_INTERVAL = arg("snapshot-interval", "20s");

const WRITER = `
import Database from ${JSON.stringify(createRequire(import.meta.url).resolve("better-sqlite3"))};
const [file, rate] = [process.argv[2], Number(process.argv[3])];
const db = new Database(file, { timeout: 60000 });
const debit = db.prepare("UPDATE accounts SET balance = balance - ? WHERE id = ?");
const credit = db.prepare("UPDATE accounts SET balance = balance + ? WHERE id = ?");
const log = db.prepare("INSERT INTO transfers (src, dst, amount, t) VALUES (?, ?, ?, ?)");
const tx = db.transaction((s, d, a) => { debit.run(a, s); credit.run(a, d); log.run(s, d, a, Date.now()); });
let stop = false;
process.stdin.on("data", () => {});
process.stdin.on("end", () => { stop = true; });
let n = 0;
const t0 = Date.now();
while (!stop) {
  const due = Math.floor(((Date.now() - t0) * rate) / 1000);
  while (n < due) { tx(1 + Math.floor(Math.random() * 500), 1 + Math.floor(Math.random() * 500), 1); n++; }
  await new Promise((r) => setTimeout(r, 2));
}
db.close();
process.stdout.write(JSON.stringify({ n, seconds: (Date.now() - t0) / 1000 }) + "\\n");
`;

function createDatabase(file: string): void {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.exec(`
    CREATE TABLE filler (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
    CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
    CREATE TABLE transfers (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER, t INTEGER);
  `);
  const fill = db.prepare("INSERT INTO filler (data) VALUES (?)");
  const rows = Math.ceil((MB * 1024 * 1024) / 4000);
  for (let done = 0; done < rows; ) {
    db.transaction(() => {
      for (let i = 0; i < 1000 && done < rows; i++, done++) fill.run(randomBytes(4000));
    })();
  }
  const acc = db.prepare("INSERT INTO accounts (id, balance) VALUES (?, 1000)");
  db.transaction(() => {
    for (let i = 1; i <= 500; i++) acc.run(i);
  })();
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
}

interface Line {
  message_type: string;
  [k: string]: unknown;
}

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(arg("dir", os.tmpdir()), "lifeboat-replicate-lag-"));
  const env = { ...process.env, LIFEBOAT_REPOSITORY: path.join(dir, "repo"), LIFEBOAT_PASSWORD: "bench" };
  try {
    const file = path.join(dir, "app.db");
    const t0 = Date.now();
    createDatabase(file);
    const size = (await fs.stat(file)).size;
    console.log(
      `database: ${(size / 2 ** 20).toFixed(0)} MiB built in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    await new Promise<void>((resolve, reject) => {
      const p = spawn(process.execPath, [cli, "init"], { env, stdio: "ignore" });
      p.on("close", (c) => (c === 0 ? resolve() : reject(new Error(`init exited ${c}`))));
    });
    await fs.writeFile(path.join(dir, "writer.mjs"), WRITER);
    const writer = spawn(process.execPath, [path.join(dir, "writer.mjs"), file, String(RATE)], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    let wout = "";
    writer.stdout!.on("data", (d: Buffer) => {
      wout += d.toString();
    });
    const writerDone = new Promise<void>((r) => writer.on("close", () => r()));
    await new Promise((r) => setTimeout(r, 1000));
    const rep = spawn(
      process.execPath,
      [
        cli,
        "replicate",
        `sqlite:${file}`,
        "--interval",
        INTERVAL,
        "--snapshot-interval",
        SNAPSHOT_INTERVAL,
        "--retention",
        "1h",
        "--json",
      ],
      { env, stdio: ["ignore", "pipe", "inherit"] },
    );
    const started = Date.now();
    const lines: (Line & { at: number })[] = [];
    let buf = "";
    rep.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const l = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (l.startsWith("{")) lines.push({ ...(JSON.parse(l) as Line), at: Date.now() - started });
      }
    });
    const repDone = new Promise<number>((r) => rep.on("close", (c) => r(c ?? -1)));
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    writer.stdin!.end();
    await writerDone;
    rep.kill("SIGINT");
    const code = await repDone;
    if (code !== 0) throw new Error(`replicate exited ${code}`);
    const w = JSON.parse(wout.trim().split("\n").at(-1)!) as { n: number; seconds: number };
    console.log(
      `writer: ${w.n} transactions in ${w.seconds.toFixed(1)} s = ${(w.n / w.seconds).toFixed(0)} tx/s; replicate --interval ${INTERVAL} --snapshot-interval ${SNAPSHOT_INTERVAL}`,
    );
    const segs = lines.filter((l) => l.message_type === "segment");
    for (const s of lines.filter((l) => l.message_type === "snapshot")) {
      const gen = String(s.generation);
      const mine = segs.filter((x) => x.generation === gen);
      const first = mine.slice(0, 6).map((x) => `${x.lag_max_ms}`);
      console.log(
        `generation ${gen.slice(0, 8)} (${s.reason}): snapshot ${Number(s.seconds).toFixed(1)} s, reported at +${(s.at / 1000).toFixed(1)} s; ` +
          `its segments: ${mine.length}, first ones shipped at +${mine
            .slice(0, 6)
            .map((x) => (x.at / 1000).toFixed(1))
            .join(", +")} s with lag_max ${first.join(", ")} ms`,
      );
    }
    const lags = segs.map((x) => Number(x.lag_max_ms)).sort((a, b) => a - b);
    const q = (p: number) => lags[Math.min(lags.length - 1, Math.floor(p * lags.length))];
    console.log(
      `all ${segs.length} segments: lag_max p50 ${q(0.5)} ms, p90 ${q(0.9)} ms, max ${lags.at(-1)} ms; ` +
        `first segment at +${((segs[0]?.at ?? 0) / 1000).toFixed(1)} s`,
    );
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();
