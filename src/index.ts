/**
 * lifeboat as a library: the same operations the CLI runs, for a Node service to call.
 *
 *   import { initRepository, openRepository, backup, restore, findSnapshot } from "lifeboat";
 *   const repo = await openRepository("/srv/backup", process.env.BACKUP_PASSWORD!);
 *   const { snapshotId } = await backup(repo, ["/var/lib/app"], { tags: ["nightly"] });
 */

export { type BackupOptions, backup, backupStream } from "./app/backup.js";

import type { ConsoleOptions, RunningConsole } from "./app/console/server.js";
export type { ConsoleOptions, RunningConsole };
/** Starts the web console (see docs/api.md); its HTTP framework loads only when this is called. */
export async function startConsole(options: ConsoleOptions): Promise<RunningConsole> {
  return (await import("./app/console/server.js")).startConsole(options);
}
export { drill, type FullDrillOptions } from "./app/drill.js";
export { type GuardOptions, type GuardResult, guard } from "./app/guard.js";
export { type Notice, type NotifyConfig, notify } from "./app/notify.js";
export { type ServeOptions, startServer } from "./app/serve/serve.js";
export type { Backend } from "./backend/backend.js";
export { localBackend } from "./backend/local.js";
export {
  type MemoryBackend,
  type MemoryBackendOptions,
  memoryBackend,
  memoryStore,
} from "./backend/memory.js";
export { openBackend } from "./backend/open.js";
export type { ItemError, ItemErrorCode } from "./core/errors.js";
export { CorruptionError, ExitCode, LifeboatError } from "./core/errors.js";
/** Names are bytes: paths in the library's API are strings in which bytes that are not UTF-8
 * are lone surrogates (see core/names.ts); these convert, show and parse them. */
export {
  displayName,
  fsPath,
  isByteName,
  nameFromBytes,
  nameToBytes,
  parseDisplayName,
} from "./core/names.js";
export { acknowledge, acknowledgedIds, listAcks, pinnedIds } from "./ops/acks/acks.js";
export { type CheckOptions, type CheckReport, check } from "./ops/check/check.js";
export { type CopyOptions, type CopyResult, copySnapshots } from "./ops/copy/copy.js";
export {
  type DrillOptions,
  type DrillRecord,
  type DrillRecordWithId,
  type DrillResult,
  listDrills,
  selectDrillSnapshot,
} from "./ops/drill/drill.js";
export {
  type DrillSummary,
  type RepositoryStatus,
  repositoryStatus,
  type SeriesStatus,
} from "./ops/drill/status.js";
export { type ForgetOptions, type ForgetResult, forget, forgetIds } from "./ops/forget/forget.js";
export { applyPolicy, guardDecisions, type Policy } from "./ops/forget/policy.js";
export {
  type FolderEntry,
  type FolderPage,
  type FolderPageOptions,
  listFolder,
} from "./ops/inspect/browse.js";
export { type DiffChange, type DiffSummary, diffTrees } from "./ops/inspect/diff.js";
export { dump, dumpTar, fileContent, type Sink, streamSink, writeAtomically } from "./ops/inspect/dump.js";
export { type FindMatch, type FindOptions, findInSnapshots, globToRegExp } from "./ops/inspect/find.js";
export {
  type FlaggedSnapshot,
  flaggedSnapshots,
  latestDrill,
  latestSnapshot,
  listSnapshots,
  snapshotAt,
} from "./ops/inspect/queries.js";
export { resolveInSnapshot, selectSnapshots } from "./ops/inspect/select.js";
export { type DataStats, type RepoStats, repositoryStats, type SnapshotStats } from "./ops/inspect/stats.js";
export { type TarHeader, TarWriter } from "./ops/inspect/tar.js";
export { initRepository, openRepository } from "./ops/open.js";
export { type PruneOptions, type PruneResult, prune } from "./ops/prune/prune.js";
export { type HealOptions, type HealResult, healFromCopy } from "./ops/repair/heal.js";
export { type RepairIndexResult, repairIndex } from "./ops/repair/repair-index.js";
export { type RepairedSnapshot, repairSnapshots } from "./ops/repair/repair-snapshots.js";
export { type UndeleteOptions, type UndeleteResult, undelete } from "./ops/repair/undelete.js";
export { type RestoreOptions, type RestoreResult, restore } from "./ops/restore/restore.js";
export { findSnapshot, type SnapshotFilter } from "./repo/find-snapshot.js";
export { Repository } from "./repo/repository.js";
export type { Snapshot, SnapshotWithId } from "./repo/snapshot.js";
export type { NodeType, Tree, TreeNode, Xattr } from "./repo/tree.js";
export {
  type AnomalyReport,
  type AnomalyThresholds,
  DEFAULT_THRESHOLDS,
  detectAnomalies,
} from "./snapshot/anomaly.js";
export type { BackupResult } from "./snapshot/commit.js";
export type { BackupProgress } from "./snapshot/progress.js";
export type {
  DirEntry,
  EntryMeta,
  FileContent,
  FileEntry,
  ParentLookup,
  Source,
  SourceDir,
  SourceEntry,
  SpecialEntry,
  TreeSource,
  VirtualEntry,
  VirtualSource,
} from "./snapshot/source.js";
export { type SnapshotOptions, takeSnapshot } from "./snapshot/take.js";
export type { BackupSummary } from "./snapshot/tree-builder.js";
export { type WalkVisitor, walkTree } from "./snapshot/walker.js";
export { VERSION } from "./version.js";
