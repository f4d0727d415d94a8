import { createHash, randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { mapLimit } from "../../core/concurrency.js";
import { type ItemError, isLifeboatError, itemError, LifeboatError } from "../../core/errors.js";
import { findSnapshot, type SnapshotFilter } from "../../repo/find-snapshot.js";
import { type DrillRecord, drillKind } from "../../repo/records-drill.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { isSafeName, type TreeNode } from "../../repo/tree.js";
import type { BackupProgress } from "../../snapshot/progress.js";
import { walkTree } from "../../snapshot/walker.js";
import { VERSION } from "../../version.js";
import { restore } from "../restore/restore.js";

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

export type { DrillRecord };
export type DrillRecordWithId = DrillRecord & { id: string; object: string };

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
  onProgress?: (p: BackupProgress) => void;
  signal?: AbortSignal;
}

export interface DrillResult {
  /** Id of the stored record (absent with noRecord). */
  id: string | undefined;
  record: DrillRecord;
  /** Every failure (the record keeps the first MAX_RECORDED_FAILURES), with a code to switch on. */
  errors: ItemError[];
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
  await walkTree(repo, snap.tree, {
    node(n, p) {
      if (!isSafeName(n.name)) return false; // restore refuses these and reports them
      if (n.type === "file") visit(p.slice(1), n);
      return undefined;
    },
  });
  return out;
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
 * Drills a file or SQLite snapshot: restores it (or a sample of its files) into a scratch
 * folder, verifying every byte, and checks SQLite files with SQLite itself. Never throws for
 * damaged data: the outcome says what failed. Throws for what stops a drill from running at
 * all (storage unreachable). Dump snapshots are drilled by app/drill.ts (they need a server).
 */
export async function drillFiles(
  repo: Repository,
  snap: SnapshotWithId,
  options: DrillOptions,
  started: Date,
): Promise<Omit<DrillResult, "id" | "recordsRemoved">> {
  const source = snap.source ?? "files";
  const isSqlite = snap.source === "sqlite";
  const seed = options.sample !== undefined ? (options.seed ?? randomBytes(6).toString("hex")) : undefined;
  const errors: ItemError[] = [];
  const fail = (e: ItemError) => errors.push(e);
  const failedFrom = (where: string, e: unknown) => fail(itemError(where, e, "DAMAGED"));

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
    failedFrom("/", e);
  }

  const scratch = await fs.mkdtemp(path.join(options.scratchParent ?? os.tmpdir(), "lifeboat-drill-"));
  let files = 0;
  let bytes = 0;
  let seconds = 0;
  let engineCheck: string | undefined;
  try {
    const t0 = process.hrtime.bigint();
    if (errors.length === 0 && seed === undefined) {
      try {
        const r = await restore(repo, snap, {
          target: scratch,
          verify: true,
          onProgress: options.onProgress,
          ...(options.signal ? { signal: options.signal } : {}),
        });
        files = r.files;
        bytes = r.bytes;
        for (const e of r.errors) fail({ ...e, path: e.path === "." ? "/" : `/${e.path}` });
        if (r.errors.length === 0 && r.files !== walked.files) {
          fail({
            path: "/",
            code: "MISMATCH",
            message: `restored ${r.files} files but the snapshot holds ${walked.files}`,
          });
        }
      } catch (e) {
        if (!isDataLoss(e)) throw e;
        failedFrom("/", e);
      }
    } else if (errors.length === 0) {
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
          // One file per restore: each of its errors is about that file.
          for (const err of r.errors) fail({ ...err, path: `/${rel}` });
        } catch (e) {
          if (!isDataLoss(e)) throw e;
          failedFrom(`/${rel}`, e);
        }
      });
    }
    seconds = Number(process.hrtime.bigint() - t0) / 1e9;

    if (isSqlite) {
      const restored = walked.chosen.filter((rel) => !errors.some((f) => f.path === `/${rel}`));
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

  if (engineCheck !== undefined && engineCheck !== "ok")
    errors.push({ path: "/", code: "ENGINE_CHECK", message: engineCheck });
  const record: DrillRecord = {
    ...recordHead(snap, started, source),
    mode: seed !== undefined ? "sample" : "full",
    ...(seed !== undefined ? { sample: { count: walked.chosen.length, seed, of: walked.files } } : {}),
    files,
    bytes,
    seconds: Math.round(seconds * 1000) / 1000,
    ok: errors.length === 0,
    ...recordedFailures(errors.filter((e) => e.code !== "ENGINE_CHECK")),
    ...(engineCheck !== undefined ? { engineCheck } : {}),
  };
  return { record, errors, snapshot: snap, scratch: options.keepScratch ? scratch : undefined, warnings: [] };
}

/** A drill record keeps how many items failed and the first MAX_RECORDED_FAILURES of them. */
export function recordedFailures(errors: ItemError[]): Pick<DrillRecord, "failed" | "failures"> {
  return {
    failed: errors.length,
    failures: errors.slice(0, MAX_RECORDED_FAILURES).map((e) => ({ path: e.path, reason: e.message })),
  };
}

export function recordHead(snap: SnapshotWithId, started: Date, source: string) {
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
export async function storeDrill(
  repo: Repository,
  record: DrillRecord,
  options: Pick<DrillOptions, "noRecord">,
): Promise<{ id: string | undefined; recordsRemoved: number }> {
  if (options.noRecord) return { id: undefined, recordsRemoved: 0 };
  const { id } = await repo.records.write(drillKind, record);
  return { id, recordsRemoved: await trimDrills(repo, seriesKey(record.host, record.paths), id) };
}

/** Every readable drill record, oldest first (unreadable ones are skipped). */
export async function listDrills(repo: Repository): Promise<DrillRecordWithId[]> {
  return (await repo.records.list(drillKind))
    .map((r) => ({ ...r.record, id: r.id, object: r.object }))
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
  for (const d of old) await repo.records.delete(d.object);
  return old.length;
}
