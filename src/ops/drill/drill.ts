import { createHash, randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { z } from "zod";
import { drillDatabase } from "../../app/drill-database.js";
import { mapLimit } from "../../core/concurrency.js";
import { isLifeboatError, LifeboatError } from "../../core/errors.js";
import { findSnapshot, type SnapshotFilter } from "../../repo/find-snapshot.js";
import type { Repository } from "../../repo/repository.js";
import { ObjectKind } from "../../repo/sealed-object.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { isSafeName, type TreeNode } from "../../repo/tree.js";
import type { BackupProgress } from "../../snapshot/progress.js";
import { type DumpEngine, dumpEngineOf } from "../../sources/db-engine.js";
import { VERSION } from "../../version.js";
import { restore } from "../restore/restore.js";
import { resolveSubpath } from "../restore/subpath.js";

/**
 * Restore drills: restore a snapshot (or a random sample of its files) into a scratch folder,
 * verify every restored byte against the snapshot, check database files with their engine, and
 * record the outcome in the repository (`drills/<id>`, sealed JSON of kind 4). `status` reads
 * the records to say when each series was last proven restorable and how long it took.
 */

/** At most this many failures are kept in a record (the count of all of them is `failed`). */
export const MAX_RECORDED_FAILURES = 100;
/** Drill records kept per series (host + paths); older ones are deleted when a drill is recorded. */
export const DRILLS_KEPT_PER_SERIES = 50;

export const drillRecordSchema = z.object({
  version: z.literal(1).default(1),
  /** When the drill started (ISO time). */
  time: z.string(),
  /** The snapshot drilled (full id), and its series. */
  snapshot: z.string(),
  snapshotTime: z.string().optional(),
  host: z.string(),
  paths: z.array(z.string()),
  /** Snapshot source type (`files`, `sqlite`, `postgres`, ...). */
  source: z.string(),
  /** Where the drill ran, and with what. */
  drillHost: z.string().optional(),
  program: z.string().optional(),
  /** `full`: the whole snapshot; `sample`: `sample.count` files chosen with `sample.seed`. */
  mode: z.enum(["full", "sample"]).default("full"),
  sample: z.object({ count: z.number(), seed: z.string(), of: z.number() }).optional(),
  /** Files restored and verified, and the bytes written. */
  files: z.number(),
  bytes: z.number(),
  /** Wall time of the restore including the re-hash of every restored file. */
  seconds: z.number(),
  ok: z.boolean(),
  /** How many paths failed; `failures` lists the first MAX_RECORDED_FAILURES. */
  failed: z.number().default(0),
  failures: z.array(z.object({ path: z.string(), reason: z.string() })),
  /** Database snapshots: "ok", or what the engine's check said. */
  engineCheck: z.string().optional(),
  /** Dump snapshots (PostgreSQL, MariaDB/MySQL): each database restored into a scratch database. */
  databases: z
    .array(
      z.object({
        name: z.string(),
        scratch: z.string(),
        seconds: z.number(),
        bytes: z.number(),
        tables: z.number(),
        rows: z.number(),
        check: z.string(),
      }),
    )
    .optional(),
});
export type DrillRecord = z.infer<typeof drillRecordSchema>;
export type DrillRecordWithId = DrillRecord & { id: string };

export interface DrillOptions {
  /** Snapshot id, unique prefix, or `latest` (default). Ignored when `source` is given. */
  snapshot?: string;
  /** The newest snapshot whose paths include this path or source name (`sqlite:/x.db`, ...). */
  source?: string;
  /** With `latest`: filters (host, tags, paths). */
  filter?: SnapshotFilter;
  /** Restore only this many randomly chosen files. */
  sample?: number;
  /** Seed for the sample (any string); random when absent, and recorded either way. */
  seed?: string;
  /** Keep the scratch folder (its path is in the result) instead of removing it. */
  keepScratch?: boolean;
  /** Where to create the scratch folder (default os.tmpdir()). */
  scratchParent?: string;
  /** Do not store the record in the repository (a dry run of the drill itself). */
  noRecord?: boolean;
  /**
   * Servers to restore dump snapshots into (`postgres://USER:PW@HOST:PORT/`,
   * `mysql://USER:PW@HOST:PORT/`), by engine. A drill of a dump snapshot needs the one for its engine.
   */
  scratchDb?: Partial<Record<DumpEngine, string>>;
  onProgress?: (p: BackupProgress) => void;
}

export interface DrillResult {
  /** Id of the stored record (absent with noRecord). */
  id: string | undefined;
  record: DrillRecord;
  snapshot: SnapshotWithId;
  /** The scratch folder (or, for dump snapshots, the scratch databases), when kept. */
  scratch: string | undefined;
  /** Old records of this series deleted to keep DRILLS_KEPT_PER_SERIES. */
  recordsRemoved: number;
  /** Things to tell the operator that do not fail the drill (a scratch database left behind). */
  warnings: string[];
}

/** The key of a series of snapshots: host and paths, as `forget --group-by host,paths`. */
export function seriesKey(host: string, paths: readonly string[]): string {
  return JSON.stringify({ host, paths: [...paths].sort() });
}

/** `sqlite:rel.db` and relative paths become absolute, as backup names them; URLs stay as they are. */
export function normalizeSourceName(s: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return s;
  if (s.startsWith("sqlite:")) return `sqlite:${path.resolve(s.slice("sqlite:".length))}`;
  return path.resolve(s);
}

/**
 * The snapshot a drill is about: with `source`, the newest snapshot whose paths contain it
 * (exactly, or, for a plain path, a folder above it); otherwise `snapshot` (default `latest`).
 */
export async function selectDrillSnapshot(
  repo: Repository,
  options: Pick<DrillOptions, "snapshot" | "source" | "filter">,
): Promise<SnapshotWithId> {
  if (options.source === undefined) return findSnapshot(repo, options.snapshot ?? "latest", options.filter);
  const want = normalizeSourceName(options.source);
  const all = (await repo.listSnapshots()).filter(
    (s) => !options.filter?.host || s.hostname === options.filter.host,
  );
  const exact = all.filter((s) => s.paths.includes(want) || s.paths.includes(options.source!));
  if (exact.length > 0) return exact.at(-1)!;
  const covering = all.filter((s) =>
    s.paths.some((p) => p.startsWith("/") && want.startsWith(p === "/" ? "/" : `${p}/`)),
  );
  if (covering.length > 0) return covering.at(-1)!;
  throw new LifeboatError(
    "SNAPSHOT_NOT_FOUND",
    `no snapshot of ${want}${options.filter?.host ? ` from host ${options.filter.host}` : ""}`,
    "run `lifeboat snapshots` to see which paths and sources are backed up",
  );
}

/** Deterministic random numbers from a seed (SHA-256 in counter mode). */
function seededRandom(seed: string): () => number {
  let counter = 0;
  let pool: Buffer = Buffer.alloc(0);
  let at = 0;
  return () => {
    if (at + 4 > pool.length) {
      pool = createHash("sha256").update(`lifeboat drill ${seed} ${counter++}`).digest();
      at = 0;
    }
    const v = pool.readUInt32BE(at);
    at += 4;
    return v / 2 ** 32;
  };
}

interface Walked {
  files: number;
  bytes: number;
  /** Sampled (or, for database snapshots, all) file paths relative to the snapshot root. */
  chosen: string[];
}

/**
 * Walks the snapshot's files in tree order. With `sample`, picks that many uniformly at random
 * (reservoir sampling: memory does not grow with the snapshot); with `collectAll`, keeps every
 * path (database snapshots hold a handful of files).
 */
async function walkFiles(
  repo: Repository,
  snap: SnapshotWithId,
  sample: { n: number; random: () => number } | undefined,
  collectAll: boolean,
): Promise<Walked> {
  const out: Walked = { files: 0, bytes: 0, chosen: [] };
  const visit = (rel: string, node: TreeNode) => {
    out.files++;
    out.bytes += node.size ?? 0;
    if (sample) {
      if (out.chosen.length < sample.n) out.chosen.push(rel);
      else {
        const j = Math.floor(sample.random() * out.files);
        if (j < sample.n) out.chosen[j] = rel;
      }
    } else if (collectAll) out.chosen.push(rel);
  };
  const walk = async (tree: string, prefix: string): Promise<void> => {
    for (const n of (await repo.loadTree(tree)).nodes) {
      if (!isSafeName(n.name)) continue; // restore refuses these and reports them
      const rel = prefix ? `${prefix}/${n.name}` : n.name;
      if (n.type === "file") visit(rel, n);
      else if (n.type === "dir" && n.subtree) await walk(n.subtree, rel);
    }
  };
  await walk(snap.tree, "");
  return out;
}

type Failure = { path: string; reason: string };

/**
 * Restore reports failures as "REL: reason"; a name may itself hold ": ", so the split is the
 * first one whose left side is a path of the snapshot.
 */
async function toFailure(repo: Repository, snap: SnapshotWithId, err: string): Promise<Failure> {
  for (let i = err.indexOf(": "); i > 0; i = err.indexOf(": ", i + 1)) {
    const rel = err.slice(0, i);
    if (rel === ".") return { path: "/", reason: err.slice(i + 2) };
    const found = await resolveSubpath(repo, snap, rel).then(
      () => true,
      () => false,
    );
    if (found) return { path: `/${rel}`, reason: err.slice(i + 2) };
  }
  const i = err.indexOf(": ");
  return i > 0 ? { path: `/${err.slice(0, i)}`, reason: err.slice(i + 2) } : { path: "/", reason: err };
}

/** `PRAGMA integrity_check` and the row counts recorded at backup time; "ok" or what is wrong. */
export function sqliteEngineCheck(file: string, expectedTables?: Record<string, unknown>): string {
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { fileMustExist: true });
    const rows = db.pragma("integrity_check") as { integrity_check: string }[];
    const result = rows.map((r) => r.integrity_check).join("; ");
    if (result !== "ok") return `PRAGMA integrity_check: ${result.slice(0, 400)}`;
    for (const [table, n] of Object.entries(expectedTables ?? {})) {
      if (typeof n !== "number") continue;
      const got = (
        db.prepare(`SELECT count(*) AS n FROM "${table.replaceAll('"', '""')}"`).get() as { n: number }
      ).n;
      if (got !== n) return `table ${table} has ${got} rows, the backup recorded ${n}`;
    }
    return "ok";
  } catch (e) {
    return `cannot check the database: ${(e as Error).message}`;
  } finally {
    db?.close();
  }
}

async function removeScratch(dir: string): Promise<void> {
  try {
    await fs.rm(dir, { recursive: true, force: true });
  } catch {
    // Restored folders may be read-only (their mode came from the snapshot): open them up first.
    const open = async (d: string): Promise<void> => {
      await fs.chmod(d, 0o700).catch(() => {});
      for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => []))
        if (e.isDirectory()) await open(path.join(d, e.name));
    };
    await open(dir);
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Errors that mean the snapshot's data is damaged or gone: a failed drill, not a failed run. */
const isDataLoss = (e: unknown) =>
  isLifeboatError(e) && (e.code === "CORRUPTION" || e.code === "NOT_FOUND" || e.code === "UNSAFE_PATH");

/**
 * Runs a restore drill and records it. Never throws for damaged data: the result says what
 * failed (`record.ok`, `record.failures`, `record.engineCheck`). Throws for what stops a drill
 * from running at all (no such snapshot, storage unreachable).
 */
export async function drill(repo: Repository, options: DrillOptions = {}): Promise<DrillResult> {
  if (options.sample !== undefined && (!Number.isInteger(options.sample) || options.sample < 1)) {
    throw new LifeboatError("USAGE", `--sample ${options.sample}: give a whole number of files, at least 1`);
  }
  const snap = await selectDrillSnapshot(repo, options);
  const started = new Date();
  const source = snap.source ?? "files";
  const engine = dumpEngineOf(snap.source);
  if (engine) {
    if (options.sample !== undefined)
      throw new LifeboatError(
        "USAGE",
        `snapshot ${snap.id.slice(0, 8)} is a database dump: --sample applies to file snapshots`,
        "drill it without --sample (each database is restored whole)",
      );
    const d = await drillDatabase(repo, snap, engine, options.scratchDb ?? {}, {
      keepScratch: options.keepScratch === true,
    });
    const record: DrillRecord = {
      ...recordHead(snap, started, source),
      mode: "full",
      files: d.files,
      bytes: d.bytes,
      seconds: Math.round(d.seconds * 1000) / 1000,
      ok: d.failures.length === 0 && (d.engineCheck === undefined || d.engineCheck === "ok"),
      failed: d.failures.length,
      failures: d.failures.slice(0, MAX_RECORDED_FAILURES),
      ...(d.engineCheck !== undefined ? { engineCheck: d.engineCheck } : {}),
      databases: d.databases,
    };
    const stored = await store(repo, record, options);
    return {
      ...stored,
      record,
      snapshot: snap,
      scratch: d.kept.length > 0 ? d.kept.join(" ") : undefined,
      warnings: d.warnings,
    };
  }
  const isSqlite = snap.source === "sqlite";
  const seed = options.sample !== undefined ? (options.seed ?? randomBytes(6).toString("hex")) : undefined;
  const failures: Failure[] = [];
  let failed = 0;
  const fail = (f: Failure) => {
    failed++;
    if (failures.length < MAX_RECORDED_FAILURES) failures.push(f);
  };
  const addErrors = async (errors: string[]) => {
    for (const e of errors) {
      if (failures.length < MAX_RECORDED_FAILURES) fail(await toFailure(repo, snap, e));
      else failed++;
    }
  };

  let walked: Walked;
  try {
    walked = await walkFiles(
      repo,
      snap,
      seed !== undefined ? { n: options.sample!, random: seededRandom(seed) } : undefined,
      isSqlite,
    );
  } catch (e) {
    if (!isDataLoss(e)) throw e;
    // The snapshot's trees cannot be read: nothing can be restored, which is what a drill is for.
    walked = { files: 0, bytes: 0, chosen: [] };
    fail({ path: "/", reason: (e as Error).message });
  }

  const scratch = await fs.mkdtemp(path.join(options.scratchParent ?? os.tmpdir(), "lifeboat-drill-"));
  let files = 0;
  let bytes = 0;
  let seconds = 0;
  let engineCheck: string | undefined;
  try {
    const t0 = process.hrtime.bigint();
    if (failed === 0 && seed === undefined) {
      try {
        const r = await restore(repo, snap, {
          target: scratch,
          verify: true,
          onProgress: options.onProgress,
        });
        files = r.files;
        bytes = r.bytes;
        await addErrors(r.errors);
        if (r.errors.length === 0 && r.files !== walked.files) {
          fail({ path: "/", reason: `restored ${r.files} files but the snapshot holds ${walked.files}` });
        }
      } catch (e) {
        if (!isDataLoss(e)) throw e;
        fail({ path: "/", reason: (e as Error).message });
      }
    } else if (failed === 0) {
      // One restore per chosen file, each into its folder in the scratch area (same layout).
      await mapLimit([...walked.chosen].sort(), 4, async (rel) => {
        try {
          const r = await restore(repo, snap, {
            target: path.join(scratch, path.dirname(rel)),
            subpath: `/${rel}`,
            verify: true,
          });
          files += r.files;
          bytes += r.bytes;
          // One file per restore: its errors read "NAME: reason".
          const name = `${path.posix.basename(rel)}: `;
          for (const err of r.errors)
            fail({ path: `/${rel}`, reason: err.startsWith(name) ? err.slice(name.length) : err });
        } catch (e) {
          if (!isDataLoss(e)) throw e;
          fail({ path: `/${rel}`, reason: (e as Error).message });
        }
      });
    }
    seconds = Number(process.hrtime.bigint() - t0) / 1e9;

    if (isSqlite) {
      const restored = walked.chosen.filter((rel) => !failures.some((f) => f.path === `/${rel}`));
      const meta = snap.meta as { tables?: Record<string, unknown> } | undefined;
      const results: string[] = [];
      for (const rel of restored) {
        const r = sqliteEngineCheck(
          path.join(scratch, rel),
          restored.length === 1 ? meta?.tables : undefined,
        );
        if (r !== "ok") results.push(restored.length === 1 ? r : `${rel}: ${r}`);
      }
      if (walked.chosen.length > 0) {
        engineCheck =
          restored.length === 0
            ? "not run: the database file did not restore"
            : results.length === 0
              ? "ok"
              : results.join("; ");
      }
    }
  } finally {
    if (!options.keepScratch) await removeScratch(scratch);
  }

  const record: DrillRecord = {
    ...recordHead(snap, started, source),
    mode: seed !== undefined ? "sample" : "full",
    ...(seed !== undefined ? { sample: { count: walked.chosen.length, seed, of: walked.files } } : {}),
    files,
    bytes,
    seconds: Math.round(seconds * 1000) / 1000,
    ok: failed === 0 && (engineCheck === undefined || engineCheck === "ok"),
    failed,
    failures,
    ...(engineCheck !== undefined ? { engineCheck } : {}),
  };
  const stored = await store(repo, record, options);
  return {
    ...stored,
    record,
    snapshot: snap,
    scratch: options.keepScratch ? scratch : undefined,
    warnings: [],
  };
}

function recordHead(snap: SnapshotWithId, started: Date, source: string) {
  return {
    version: 1 as const,
    time: started.toISOString(),
    snapshot: snap.id,
    snapshotTime: snap.time,
    host: snap.hostname,
    paths: snap.paths,
    source,
    drillHost: os.hostname(),
    program: `lifeboat ${VERSION}`,
  };
}

/** Stores the record (unless noRecord) and trims its series. */
async function store(
  repo: Repository,
  record: DrillRecord,
  options: Pick<DrillOptions, "noRecord">,
): Promise<{ id: string | undefined; recordsRemoved: number }> {
  if (options.noRecord) return { id: undefined, recordsRemoved: 0 };
  const id = await repo.writeDocument("drills/", ObjectKind.drill, record);
  return { id, recordsRemoved: await trimDrills(repo, seriesKey(record.host, record.paths), id) };
}

/** Every readable drill record, oldest first (unreadable ones are skipped). */
export async function listDrills(repo: Repository): Promise<DrillRecordWithId[]> {
  const ids = await repo.listIds("drills/");
  const docs = await mapLimit(ids, 8, async (id) => {
    const doc = drillRecordSchema.safeParse(
      await repo.readDocument("drills/", ObjectKind.drill, id).catch(() => undefined),
    );
    return doc.success ? { ...doc.data, id } : undefined;
  });
  return docs
    .filter((d): d is DrillRecordWithId => d !== undefined)
    .sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
}

/** Deletes the oldest records of a series beyond `keep`, never the one just written. */
export async function trimDrills(
  repo: Repository,
  series: string,
  justWritten?: string,
  keep = DRILLS_KEPT_PER_SERIES,
): Promise<number> {
  const mine = (await listDrills(repo)).filter((d) => seriesKey(d.host, d.paths) === series);
  const old = mine.filter((d) => d.id !== justWritten).slice(0, Math.max(0, mine.length - keep));
  for (const d of old) await repo.backend.delete(`drills/${d.id}`);
  return old.length;
}
