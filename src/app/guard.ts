import { spawn } from "node:child_process";
import fsSync from "node:fs";
import { LifeboatError } from "../core/errors.js";
import { acknowledge } from "../ops/acks/acks.js";
import type { Repository } from "../repo/repository.js";
import type { AnomalyThresholds } from "../snapshot/anomaly.js";
import type { BackupResult } from "../snapshot/commit.js";
import type { VirtualSource } from "../snapshot/source.js";
import { takeSnapshot } from "../snapshot/take.js";
import {
  type DatabaseArg,
  databaseSource,
  parseDatabaseArg,
  preflightDatabase,
} from "../sources/database.js";
import { mysqlRowCounts, pgRowCounts } from "../sources/db-engine.js";
import { checkSourcePaths } from "../sources/files/files-source.js";
import type { Frozen } from "../sources/fs-snapshot/freeze.js";
import { btrfsRollback } from "../sources/fs-snapshot/rollback.js";
import { backup } from "./backup.js";
import {
  backupFromFreeze,
  backupFrozen,
  type FsSnapshotReport,
  type FsSnapshotRequest,
  reportOf,
} from "./fs-snapshot.js";

export interface GuardOptions {
  /**
   * What the command may change: files and folders (together in one snapshot), and databases
   * (`sqlite:PATH`, `postgres://...`, `mysql://...`), each in its own pair of snapshots.
   */
  sources: string[];
  command: string[];
  tags?: string[];
  anomaly?: AnomalyThresholds;
  onPhase?: (phase: "before" | "command" | "after") => void;
  /** Read the files and folders from file-system snapshots (docs/fs-snapshots.md); the before
   * snapshot is kept, when the guard fails, for an instant rollback. */
  fsSnapshot?: FsSnapshotRequest;
  onWarning?: (message: string) => void;
}

/** The file-system snapshots of a guard's files. */
export interface GuardFsSnapshot {
  before: FsSnapshotReport;
  after: FsSnapshotReport;
  /** The guard failed: where each path's before-image is kept, until `lifeboat ack`. */
  kept?: { path: string; at: string }[];
  /** The shell command that puts the paths back from the kept snapshot (btrfs), or why there is none. */
  rollback?: string;
  rollbackUnavailable?: string;
  /** A snapshot that could not be removed (the next start removes it). */
  cleanupError?: LifeboatError;
}

/** The snapshots of one source before and after the command. */
export interface GuardPair {
  /** `files`, or the database's source name (no password). */
  source: string;
  type: "files" | "sqlite" | "postgres" | "mysql";
  /** Paths of the snapshots (the files and folders, or the source name). */
  paths: string[];
  before: BackupResult;
  after: BackupResult;
  /** Arguments of `lifeboat restore` that put this source back as it was before the command. */
  restoreArgs: string[];
  /** Why this source looks wrong after the command (anomalies of its after snapshot). */
  reasons: string[];
}

export interface GuardResult {
  /** The first pair's snapshots (the files when there are any). */
  before: BackupResult;
  after: BackupResult;
  pairs: GuardPair[];
  /** The command's exit code (null when it was killed by a signal). */
  exitCode: number | null;
  signal: string | null;
  ok: boolean;
  reasons: string[];
  fsSnapshot?: GuardFsSnapshot;
}

interface Sources {
  files: string[];
  databases: DatabaseArg[];
}

/** Splits `--source` values into paths and databases (each database once). */
export function splitGuardSources(sources: string[]): Sources {
  const files: string[] = [];
  const databases: DatabaseArg[] = [];
  for (const s of sources) {
    const db = parseDatabaseArg(s);
    if (!db) files.push(s);
    else if (!databases.some((d) => d.name === db.name)) databases.push(db);
  }
  return { files, databases };
}

/**
 * Checks every source before anything is written: paths exist; each database file is an SQLite
 * database, or its server answers and accepts the login (and its dump tool is installed).
 */
export async function checkGuardSources(sources: string[]): Promise<void> {
  const { files, databases } = splitGuardSources(sources);
  if (files.length > 0) await checkSourcePaths(files);
  for (const db of databases) await preflightDatabase(db, { all: false });
}

/**
 * Exact row counts, recorded by guard snapshots of PostgreSQL and MariaDB/MySQL databases as
 * `meta.rowCounts` (their own meta has only the statistics' estimates), so that the after
 * snapshot is compared with the before snapshot by rows like an SQLite one. They are counted
 * right after the dump, outside its transaction.
 */
function withRowCounts(inner: VirtualSource, db: DatabaseArg): VirtualSource {
  if (db.engine === "sqlite") return inner; // its meta.tables are exact and from the copy itself
  return {
    name: inner.name,
    type: inner.type,
    entries: (parent, parentSnapshot) => inner.entries(parent, parentSnapshot),
    async meta() {
      const m = inner.meta ? await inner.meta() : {};
      const rowCounts =
        db.engine === "postgres" ? await pgRowCounts(db.target) : await mysqlRowCounts(db.target);
      return { ...m, rowCounts };
    },
  };
}

async function backupDatabase(
  repo: Repository,
  db: DatabaseArg,
  tags: string[],
  anomaly: AnomalyThresholds | false | undefined,
): Promise<BackupResult> {
  const source = databaseSource(db, { all: false });
  try {
    return await takeSnapshot(repo, withRowCounts(source, db), {
      tags,
      ...(anomaly !== undefined ? { anomaly } : {}),
    });
  } finally {
    await source.cleanup();
  }
}

function restoreArgsOf(db: DatabaseArg | undefined, before: string): string[] {
  const id = before.slice(0, 8);
  if (!db) return ["restore", id, "--target", "/"];
  if (db.engine === "sqlite") return ["restore", id, "--target", db.path];
  // A new database beside the old one: restore never writes into an existing database.
  return ["restore", id, "--target-db", `${db.name}_restored`];
}

/**
 * An upgrade with a safety net: snapshot the sources, run the command, snapshot again and
 * compare each source's two snapshots. A failed command or an anomalous result (files gone,
 * data shrunk, a database that lost rows, ...) pins every snapshot (kept by every retention
 * policy until acknowledged).
 */
export async function guard(repo: Repository, options: GuardOptions): Promise<GuardResult> {
  const tags = options.tags ?? [];
  const { files, databases } = splitGuardSources(options.sources);
  if (files.length + databases.length === 0)
    throw new LifeboatError("USAGE", "guard needs at least one --source (a path or a database)");
  if (options.fsSnapshot && files.length === 0)
    throw new LifeboatError(
      "USAGE",
      "--fs-snapshot and --fs-snapshot-command apply to files and folders: give a --source path",
      "leave them out: databases are read consistently on their own",
    );
  const fsSnap = options.fsSnapshot;
  const warn = options.onWarning ? { onWarning: options.onWarning } : {};
  options.onPhase?.("before");
  const befores: { type: GuardPair["type"]; db?: DatabaseArg; before: BackupResult }[] = [];
  // With a file-system snapshot, the one the before snapshot was read from is held until the
  // verdict: removed when all is well, kept for an instant rollback when not.
  let frozen: Frozen | undefined;
  let fsAfter: Awaited<ReturnType<typeof backupFrozen>> | undefined;
  const pairs: GuardPair[] = [];
  let code: number | null;
  let signal: string | null;
  try {
    if (files.length > 0) {
      const beforeOpts = { tags: [...tags, "guard-before"], anomaly: false as const, ...warn };
      if (fsSnap) {
        const b = await backupFromFreeze(repo, files, { ...beforeOpts, fsSnapshot: fsSnap });
        frozen = b.frozen;
        befores.push({ type: "files", before: b.result });
      } else befores.push({ type: "files", before: await backup(repo, files, beforeOpts) });
    }
    for (const db of databases)
      befores.push({
        type: db.engine,
        db,
        before: await backupDatabase(repo, db, [...tags, "guard-before"], false),
      });
    options.onPhase?.("command");
    ({ code, signal } = await runCommand(options.command));
    options.onPhase?.("after");
    for (const b of befores) {
      const afterOpts = {
        tags: [...tags, "guard-after"],
        parent: b.before.snapshotId,
        ...(options.anomaly ? { anomaly: options.anomaly } : {}),
        ...warn,
      };
      let after: BackupResult;
      if (b.db) after = await backupDatabase(repo, b.db, [...tags, "guard-after"], options.anomaly);
      else if (fsSnap)
        after = fsAfter = await backupFrozen(repo, files, { ...afterOpts, fsSnapshot: fsSnap });
      else after = await backup(repo, files, afterOpts);
      pairs.push({
        source: b.db ? b.db.name : "files",
        type: b.type,
        paths: b.before.snapshot.paths,
        before: b.before,
        after,
        restoreArgs: restoreArgsOf(b.db, b.before.snapshotId),
        reasons: [...(after.snapshot.anomalies ?? [])],
      });
    }
  } catch (e) {
    await frozen?.release().catch(() => {});
    throw e;
  }
  const reasons: string[] = [];
  if (code !== 0)
    reasons.push(signal ? `the command was killed by ${signal}` : `the command exited with ${code}`);
  const named = pairs.length > 1;
  for (const p of pairs) {
    const prefix = named || p.type !== "files" ? `${p.source}: ` : "";
    reasons.push(...p.reasons.map((r) => prefix + r));
  }
  const fileBefore = pairs.find((p) => p.type === "files")?.before;
  if (fileBefore && fileBefore.errors.length > 0)
    reasons.push(`${fileBefore.errors.length} file(s) could not be read before the command`);
  const ok = reasons.length === 0;
  if (!ok) {
    const note = `guard: ${reasons.join("; ")}`;
    for (const p of pairs) {
      await acknowledge(repo, p.before.snapshotId, note, "pin");
      await acknowledge(repo, p.after.snapshotId, note, "pin");
    }
  }
  const fsSnapshot = frozen && fsAfter ? await settleFrozen(frozen, fsAfter, pairs[0]!, ok) : undefined;
  return {
    before: pairs[0]!.before,
    after: pairs[0]!.after,
    pairs,
    exitCode: code,
    signal,
    ok,
    reasons,
    ...(fsSnapshot ? { fsSnapshot } : {}),
  };
}

/**
 * The before-image after the verdict: removed when the guard passed; kept, and the command that
 * rolls back from it, when it failed (until `lifeboat ack` of either snapshot).
 */
async function settleFrozen(
  frozen: Frozen,
  after: Awaited<ReturnType<typeof backupFrozen>>,
  files: GuardPair,
  ok: boolean,
): Promise<GuardFsSnapshot> {
  const out: GuardFsSnapshot = { before: reportOf(frozen), after: after.fsSnapshot };
  if (after.cleanupError) out.cleanupError = after.cleanupError;
  if (ok) {
    try {
      await frozen.release();
    } catch (e) {
      if (!(e instanceof LifeboatError)) throw e;
      out.cleanupError ??= e;
    }
    return out;
  }
  const sources = files.before.snapshot.paths;
  const kept = await frozen.keep([files.before.snapshotId, files.after.snapshotId], sources);
  out.kept = sources.map((p) => ({ path: p, at: kept.get(p)! }));
  if (frozen.kind === "btrfs") {
    const r = btrfsRollback({
      sources,
      kept,
      isDir: (p) => fsSync.lstatSync(kept.get(p)!).isDirectory(),
      nested: frozen.nested,
      subvolumeRoots: frozen.snapshots.map((s) => s.of),
      mounts: frozen.mounts,
    });
    if (r.command) out.rollback = r.command;
    if (r.reason) out.rollbackUnavailable = r.reason;
  } else
    out.rollbackUnavailable =
      "the snapshot was made by --fs-snapshot-command: roll back with your own tools, or from the repository";
  return out;
}

function runCommand(argv: string[]): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: "inherit" });
    child.on("error", () => resolve({ code: 127, signal: null }));
    child.on("close", (code, signal) => resolve({ code, signal }));
  });
}
