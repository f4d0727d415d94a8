import os from "node:os";
import path from "node:path";
import { LifeboatError } from "../core/errors.js";
import { defaultCacheDir } from "../repo/host-cache.js";
import type { Repository } from "../repo/repository.js";
import type { BackupResult } from "../snapshot/commit.js";
import { Excludes } from "../snapshot/excludes.js";
import type { TreeSource } from "../snapshot/source.js";
import { takeSnapshot } from "../snapshot/take.js";
import { checkSourcePaths, filesSource } from "../sources/files/files-source.js";
import {
  checkFreeze,
  type Frozen,
  type FrozenSnapshot,
  type FsSnapshotSpec,
  freeze,
} from "../sources/fs-snapshot/freeze.js";
import { releaseKept, sweepFsSnapshots } from "../sources/fs-snapshot/sweep.js";
import type { BackupOptions } from "./backup.js";

/**
 * Backups of files read from a file-system snapshot (docs/fs-snapshots.md): lifeboat's own
 * btrfs snapshots, or the user's commands for LVM, ZFS and the rest. The snapshot is read, what
 * is recorded is the original (paths, device numbers), so the next backup finds its parent and
 * reads only what changed, with or without a snapshot.
 */

export interface FsSnapshotRequest {
  spec: FsSnapshotSpec;
  /** Where records of snapshots are kept (default `$XDG_STATE_HOME/lifeboat/fs-snapshots`). */
  stateDir?: string;
  /** lifeboat's own files (its repository, its state): left out when below a backed-up path. */
  ownPaths?: { path: string; what: string }[];
}

/** What the freeze did, for the summary and `--json`. */
export interface FsSnapshotReport {
  kind: FsSnapshotSpec["kind"];
  /** How long the paths were being frozen (every snapshot made, one after another). */
  freezeMs: number;
  snapshots: FrozenSnapshot[];
  nested: string[];
  mounts: string[];
}

export type FrozenBackupResult = BackupResult & {
  fsSnapshot: FsSnapshotReport;
  /** The backup was saved, but its snapshot could not be removed (the CLI reports it after the
   * summary and exits 1; the next start removes it). */
  cleanupError?: LifeboatError;
};

export function fsSnapshotStateDir(): string {
  const state = process.env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state");
  return path.join(state, "lifeboat", "fs-snapshots");
}

/** lifeboat's own state folder, which a backup from a snapshot leaves out. */
export function lifeboatStateDir(): string {
  return path.dirname(fsSnapshotStateDir());
}

/** lifeboat's cache folder (a write-only host's cache of its own snapshots and trees), which a
 * backup from a snapshot leaves out too. */
export const lifeboatCacheDir = defaultCacheDir;

/** Checks a request's options: one kind of snapshot, a cleanup with a command. */
export function fsSnapshotSpec(o: {
  fsSnapshot?: string;
  fsSnapshotCommand?: string;
  fsSnapshotCleanup?: string;
}): FsSnapshotSpec | undefined {
  if (o.fsSnapshot !== undefined && (o.fsSnapshotCommand || o.fsSnapshotCleanup))
    throw new LifeboatError(
      "USAGE",
      "--fs-snapshot and --fs-snapshot-command/--fs-snapshot-cleanup do not go together",
      "use --fs-snapshot btrfs, or your own commands for other snapshot technologies",
    );
  if (o.fsSnapshot !== undefined) {
    if (o.fsSnapshot !== "btrfs")
      throw new LifeboatError(
        "USAGE",
        `--fs-snapshot takes btrfs, not ${JSON.stringify(o.fsSnapshot)}`,
        "for LVM, ZFS and others use --fs-snapshot-command and --fs-snapshot-cleanup (docs/fs-snapshots.md has recipes)",
      );
    return { kind: "btrfs" };
  }
  if (!o.fsSnapshotCommand && !o.fsSnapshotCleanup) return undefined;
  if (!o.fsSnapshotCommand || !o.fsSnapshotCleanup)
    throw new LifeboatError(
      "USAGE",
      "--fs-snapshot-command and --fs-snapshot-cleanup go together",
      "give both: one makes the snapshot and prints where to read, the other removes it",
    );
  return { kind: "command", create: o.fsSnapshotCommand, cleanup: o.fsSnapshotCleanup };
}

/**
 * Checks, before the repository is opened, that the paths (which exist) can be frozen so: on
 * btrfs, as root, with btrfs-progs installed.
 */
export async function checkFsSnapshot(paths: string[], spec: FsSnapshotSpec): Promise<void> {
  await checkFreeze(
    paths.map((p) => path.resolve(p)),
    spec,
  );
}

/** Removes what crashed runs left (recorded freezes whose lifeboat is gone); warnings. */
export function sweepLeftovers(request: Pick<FsSnapshotRequest, "stateDir">): Promise<string[]> {
  return sweepFsSnapshots(request.stateDir ?? fsSnapshotStateDir());
}

/** The files source reading from a freeze, and the snapshot's record of it. */
function frozenSource(abs: string[], frozen: Frozen, options: BackupOptions): TreeSource {
  const inner = filesSource(abs, { ...options, readFrom: frozen.view });
  return {
    ...inner,
    warnings: [...(inner.warnings ?? []), ...frozen.warnings],
    meta: () => ({
      fsSnapshot: {
        kind: frozen.kind,
        freezeMs: Math.round(frozen.freezeMs * 10) / 10,
        ...(frozen.nested.length > 0 ? { nested: frozen.nested } : {}),
      },
    }),
  };
}

export function reportOf(frozen: Frozen): FsSnapshotReport {
  return {
    kind: frozen.kind,
    freezeMs: frozen.freezeMs,
    snapshots: frozen.snapshots,
    nested: frozen.nested,
    mounts: frozen.mounts,
  };
}

/**
 * Freezes `paths` and takes the backup from the freeze; the caller owns `frozen` (release or
 * keep it). Sweeps what crashed runs left first (their messages become warnings).
 */
export async function backupFromFreeze(
  repo: Repository,
  paths: string[],
  options: BackupOptions & { fsSnapshot: FsSnapshotRequest },
): Promise<{ result: BackupResult; frozen: Frozen }> {
  const abs = await checkSourcePaths(paths);
  const stateDir = options.fsSnapshot.stateDir ?? fsSnapshotStateDir();
  const spec = options.fsSnapshot.spec;
  const swept = await sweepFsSnapshots(stateDir, spec.kind === "command" ? spec.cleanup : undefined);
  const frozen = await freeze(abs, spec, {
    stateDir,
    oneFileSystem: options.oneFileSystem ?? false,
    excludes: Excludes.fromFiles(options.excludes ?? [], options.excludeFiles ?? []),
    ownPaths: options.fsSnapshot.ownPaths ?? [],
  });
  frozen.warnings.unshift(...swept);
  try {
    return { result: await takeSnapshot(repo, frozenSource(abs, frozen, options), options), frozen };
  } catch (e) {
    await frozen.release().catch(() => {});
    throw e;
  }
}

/**
 * Backs up files and folders from a file-system snapshot of them, then removes the snapshot —
 * also when the backup fails (and, through the records, after a crash).
 */
export async function backupFrozen(
  repo: Repository,
  paths: string[],
  options: BackupOptions & { fsSnapshot: FsSnapshotRequest },
): Promise<FrozenBackupResult> {
  const { result, frozen } = await backupFromFreeze(repo, paths, options);
  const out: FrozenBackupResult = { ...result, fsSnapshot: reportOf(frozen) };
  try {
    await frozen.release();
  } catch (e) {
    if (!(e instanceof LifeboatError)) throw e;
    out.cleanupError = e;
  }
  return out;
}

/**
 * Removes the file-system snapshots a failed guard kept for its rollback, once its before or
 * after snapshot (`snapshotId`, full) is acknowledged; what it did, as messages.
 */
export function releaseGuardFsSnapshots(
  snapshotId: string,
  stateDir = fsSnapshotStateDir(),
): Promise<string[]> {
  return releaseKept(stateDir, snapshotId);
}
