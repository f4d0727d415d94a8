/**
 * A repository holding one or more objects of every kind the format has (config, keys, packs,
 * index files, snapshots, a pending prune plan, sessions, drills, acks, archived WAL, SQLite
 * replication segments in levels, inline and as blobs, and their catalogs), built through the CLI
 * as users build them, with what each snapshot and archived file must restore to. The damage campaign copies it and damages the copies.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { localBackend } from "../../src/backend/local.js";
import { startSession } from "../../src/repo/gc-plan.js";
import { segmentKind } from "../../src/repo/records-segment.js";
import { catalogKind, segmentPagesKind, segmentRefKind } from "../../src/repo/records-segment-levels.js";
import { Repository } from "../../src/repo/repository.js";
import { storePages, writeSegment } from "../../src/sources/sqlite-replicate/segments.js";
import { show } from "../support/cli.js";
import { copyTree, envFor, HOOKED_CLI, initSmall, lb, lbOk, SEED, snapshots, summary } from "./support.js";
import { evolve } from "./tree.js";

export const GOLDEN_PW = "golden";
export const OTHER_PW = "golden-other";
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

export interface Golden {
  repo: string;
  env: Record<string, string>;
  /** Snapshot id → the folder it must restore to, and the path it was taken of. */
  files: Map<string, { state: string; path: string }>;
  /** Archived WAL: name → SHA-256 of its bytes. */
  wal: Map<string, string>;
  /** The replicated SQLite database, and what its latest restore holds (rows of `t`); what a
   * restore at `firstTime` (after the first generation, before the second) holds. */
  sqlite: { file: string; rows: number; firstTime: string; firstRows: number };
  /** Object names by kind (folder). */
  objects: Map<string, string[]>;
  /** Replication segment objects that are the newest of their generation. */
  newestSegments: Set<string>;
}

export const KINDS: Record<string, string> = {
  config: "config",
  keys: "key",
  data: "pack",
  index: "index",
  snapshots: "snapshot",
  gc: "gc plan",
  sessions: "session",
  drills: "drill",
  acks: "ack",
  wal: "WAL record",
  "sqlite-wal": "SQLite segment (before levels)",
  "sqlite-seg": "SQLite segment",
  "sqlite-segref": "SQLite segment (blobs)",
  "sqlite-gen": "SQLite catalog",
};

/**
 * Segments whose deletion looks like a segment not shipped yet: per generation in levels, those
 * no catalog lists that end at the generation's last interval (a coarser segment listed by the
 * catalog may end there too: it stays, and nothing is missing); before levels, the one with the
 * highest index of its generation.
 */
async function newestOf(repo: Repository): Promise<Set<string>> {
  const out = new Set<string>();
  const segs = [...(await repo.records.list(segmentPagesKind)), ...(await repo.records.list(segmentRefKind))];
  const listed = new Set(
    (await repo.records.list(catalogKind)).flatMap((c) => c.record.segments.map((e) => e.object)),
  );
  for (const s of segs)
    if (
      !listed.has(s.object) &&
      !segs.some((o) => o.record.generation === s.record.generation && o.record.last > s.record.last)
    )
      out.add(s.object);
  const legacy = await repo.records.list(segmentKind);
  for (const s of legacy)
    if (!legacy.some((o) => o.record.generation === s.record.generation && o.record.index > s.record.index))
      out.add(s.object);
  return out;
}

async function listObjects(repo: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const walk = async (dir: string) => {
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (!e.name.startsWith(".tmp-")) {
        const rel = path.relative(repo, p).split(path.sep).join("/");
        const top = rel.split("/")[0]!;
        out.set(top, [...(out.get(top) ?? []), rel]);
      }
    }
  };
  await walk(repo);
  for (const v of out.values()) v.sort();
  return out;
}

/** Builds the golden repository under `base` (and a second, unrelated one at base/other). */
export async function buildGolden(base: string): Promise<Golden> {
  const repo = path.join(base, "golden");
  const states = path.join(base, "states");
  await initSmall(repo, GOLDEN_PW);
  const env = envFor(repo, GOLDEN_PW);
  const files = new Map<string, { state: string; path: string }>();
  const backup = async (src: string, tag: string, expectCode = 0) => {
    const r = await lb(["backup", "--json", "--tag", tag, src], { env });
    assert.equal(r.code, expectCode, show(r));
    const id = summary(r).snapshot_id as string;
    await copyTree(src, path.join(states, tag));
    files.set(id, { state: path.join(states, tag), path: src });
    return id;
  };
  // Files: three rounds of a changing tree.
  const src = path.join(base, "src");
  const shape = { bigBytes: 2 * 1024 * 1024, docs: 20, media: 3 };
  for (let round = 0; round < 3; round++) {
    await evolve(src, round, `${SEED}-golden`, shape);
    await backup(src, `r${round}`);
  }
  // Two wipes (flagged, exit 4), each acknowledged: two acks.
  const office = path.join(base, "office");
  for (let w = 0; w < 2; w++) {
    await fs.rm(office, { recursive: true, force: true });
    await fs.mkdir(office);
    for (let i = 0; i < 40; i++)
      await fs.writeFile(path.join(office, `doc${i}.txt`), `letter ${i} ${w}\n`.repeat(50));
    await backup(office, `w${w}-full`);
    for (let i = 3; i < 40; i++) await fs.rm(path.join(office, `doc${i}.txt`));
    const wiped = await backup(office, `w${w}-wiped`, 4);
    await lbOk(["ack", wiped, "--note", `wipe ${w} was intended`], { env });
  }
  // Two drills.
  const ids = [...files.keys()];
  for (const id of [ids[2]!, ids[3]!]) await lbOk(["drill", id], { env });
  // Archived WAL: two segments and a history file.
  const wal = new Map<string, string>();
  const walDir = path.join(base, "pg_wal");
  await fs.mkdir(walDir);
  for (const [name, bytes] of [
    ["000000010000000000000001", walBytes(1)],
    ["000000010000000000000002", walBytes(2)],
    ["00000002.history", Buffer.from("1\t0/3000000\tno recovery target specified\n")],
  ] as const) {
    await fs.writeFile(path.join(walDir, name), bytes);
    await lbOk(["pg", "wal-push", path.join(walDir, name)], { env });
    wal.set(name, sha(bytes));
  }
  // SQLite replication in levels: two generations (two runs of replicate). The first with the
  // default levels (interval segments only, unless a 30 s window passes); the second merges 1 s
  // windows (so its catalog lists segments of two levels) and ships two transactions over
  // INLINE_MAX, stored as blobs (`sqlite-segref/`).
  const dbFile = path.join(base, "app.db");
  const db = new Database(dbFile);
  db.pragma("journal_mode = wal");
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
  db.close();
  let rows = 0;
  const replicate = async (args: string[], writes: (db: Database.Database) => Promise<number>) => {
    const child = spawn(
      process.execPath,
      [HOOKED_CLI, "replicate", `sqlite:${dbFile}`, "--interval", "200ms", "--json", ...args],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      out += d;
    });
    const closed = new Promise<number | null>((r) => child.on("close", (c) => r(c)));
    for (let i = 0; i < 30 && !out.includes('"message_type":"snapshot"'); i++) await sleep(200);
    const w = new Database(dbFile);
    rows += await writes(w);
    w.close();
    await sleep(600);
    child.kill("SIGINT");
    assert.equal(await closed, 0, out);
  };
  const small = async (w: Database.Database, n: number, tag: string) => {
    const ins = w.prepare("INSERT INTO t (v) VALUES (?)");
    for (let k = 0; k < n; k++) {
      w.transaction(() => {
        for (let i = 0; i < 50; i++) ins.run(`row ${tag}${k}-${i} ${"x".repeat(200)}`);
      })();
      await sleep(350);
    }
    return n * 50;
  };
  await replicate([], (w) => small(w, 8, "a"));
  // A point in time between the two generations: `restore --time` then reads the first one.
  const firstRows = rows;
  await sleep(100);
  const firstTime = new Date().toISOString();
  await sleep(100);
  await replicate(["--levels", "5m,1s"], async (w) => {
    let n = await small(w, 4, "b");
    // Twice 4.5 MiB of pages in one interval, in two windows: more than INLINE_MAX (4 MiB).
    for (let k = 0; k < 2; k++) {
      w.prepare("INSERT INTO t (v) VALUES (hex(randomblob(2359296)))").run();
      n += 1;
      await sleep(1100);
    }
    return n + (await small(w, 6, "c"));
  });
  // A pending prune plan, waiting for two live sessions (this process's: a backup running).
  const extra = await backup(src, "doomed");
  await lbOk(["forget", extra], { env });
  files.delete(extra);
  const r = await Repository.open(localBackend({ path: repo }), GOLDEN_PW);
  await startSession(r, "backup");
  await startSession(r, "backup");
  await r.close();
  const p = await lbOk(["prune", "--json"], { env });
  assert.ok(summary(p).mark, show(p));
  // A second plan (of what a second forgotten snapshot alone used), for "replaced by another".
  await evolve(src, 9, `${SEED}-golden`, shape);
  const extra2 = await backup(src, "doomed2");
  await lbOk(["forget", extra2], { env });
  files.delete(extra2);
  await lbOk(["prune", "--json"], { env });
  // A second password.
  await lbOk(["key", "add"], { env: { ...env, LIFEBOAT_NEW_PASSWORD: `${GOLDEN_PW}-2` } });
  // Segments of the layout before levels (`sqlite-wal/`), which repositories written before
  // levels still hold and readers still read: three of one generation, written as that version
  // wrote them (no replicate writes them any more; their generation has no snapshot here).
  const old = await Repository.open(localBackend({ path: repo }), GOLDEN_PW);
  for (let index = 0; index < 3; index++) {
    const pages = new Map([[1 + index, Buffer.alloc(4096, 17 + index)]]);
    const stored = await old.withWriter((w) => storePages(w, pages, 3));
    const t = new Date(Date.now() - (3 - index) * 1000).toISOString();
    await writeSegment(old, {
      version: 1,
      source: "sqlite:/legacy/old.db",
      hostname: "old",
      generation: "0123456789abcdef",
      index,
      wal: { salt1: 1, salt2: 2, checkpointSeq: 0, start: 32 + index * 4120, end: 32 + (index + 1) * 4120 },
      walRestarted: false,
      pageSize: 4096,
      dbPages: 3,
      frames: 1,
      commits: 1,
      pages: stored.count,
      commitsAfter: t,
      commitsBefore: t,
      storedAt: t,
      size: stored.size,
      content: stored.content,
    });
  }
  await old.close();
  // An unrelated repository, for "replaced by another object of the same kind" of singletons.
  await initSmall(path.join(base, "other"), OTHER_PW);
  const objects = await listObjects(repo);
  const lib = await Repository.open(localBackend({ path: repo }), GOLDEN_PW);
  const newestSegments = await newestOf(lib);
  await lib.close();
  for (const k of Object.keys(KINDS))
    assert.ok((objects.get(k) ?? []).length > 0, `golden repository has no ${k}`);
  assert.equal(
    (await snapshots(env)).length,
    files.size + 2,
    "the replica snapshots (two generations) and the file snapshots",
  );
  return {
    repo,
    env,
    files,
    wal,
    sqlite: { file: dbFile, rows, firstTime, firstRows },
    objects,
    newestSegments,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function walBytes(n: number): Buffer {
  const size = 16 * 1024 * 1024;
  const b = Buffer.alloc(size);
  b.writeUInt16LE(0xd116, 0);
  b.writeUInt16LE(0x0002, 2);
  b.writeUInt32LE(1, 4);
  b.writeBigUInt64LE(BigInt(n) * BigInt(size), 8);
  b.writeBigUInt64LE(7300000000000000000n, 24);
  b.writeUInt32LE(size, 32);
  b.writeUInt32LE(8192, 36);
  for (let i = 64; i < 600_000; i += 32) b.writeUInt32LE((i * 2654435761 + n) >>> 0, i);
  return b;
}

export { listObjects };
