/**
 * lifeboat as a library: the same operations the CLI runs, for a Node service to call.
 *
 *   import { initRepository, openRepository, backup, restore, findSnapshot } from "lifeboat";
 *   const repo = await openRepository("/srv/backup", process.env.BACKUP_PASSWORD!);
 *   const { snapshotId } = await backup(repo, ["/var/lib/app"], { tags: ["nightly"] });
 */
export type { Backend } from "./backend/backend.js";
export { localBackend } from "./backend/local.js";
export {
  type MemoryBackend,
  type MemoryBackendOptions,
  memoryBackend,
  memoryStore,
} from "./backend/memory.js";
export { openBackend } from "./backend/open.js";
export { CorruptionError, ExitCode, LifeboatError } from "./core/errors.js";
export { type BackupOptions, type BackupResult, backup, backupStream } from "./ops/backup/backup.js";
export type { BackupProgress } from "./ops/backup/progress.js";
export { backupVirtual, type VirtualSource } from "./ops/backup/virtual.js";
export { type CheckOptions, type CheckReport, check } from "./ops/check/check.js";
export { type CopyOptions, type CopyResult, copySnapshots } from "./ops/copy/copy.js";
export {
  type DrillOptions,
  type DrillRecord,
  type DrillRecordWithId,
  type DrillResult,
  drill,
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
export { acknowledge, acknowledgedIds, listAcks, pinnedIds } from "./ops/guard/acks.js";
export {
  type AnomalyReport,
  type AnomalyThresholds,
  DEFAULT_THRESHOLDS,
  detectAnomalies,
} from "./ops/guard/anomaly.js";
export { type GuardOptions, type GuardResult, guard } from "./ops/guard/guard.js";
export { type Notice, type NotifyConfig, notify } from "./ops/guard/notify.js";
export { type DiffChange, type DiffSummary, diffTrees } from "./ops/inspect/diff.js";
export { dump, dumpTar, fileContent, type Sink, streamSink, writeAtomically } from "./ops/inspect/dump.js";
export { type FindMatch, type FindOptions, findInSnapshots, globToRegExp } from "./ops/inspect/find.js";
export { resolveInSnapshot, selectSnapshots } from "./ops/inspect/select.js";
export { type DataStats, type RepoStats, repositoryStats, type SnapshotStats } from "./ops/inspect/stats.js";
export { type TarHeader, TarWriter } from "./ops/inspect/tar.js";
export { initRepository, openRepository } from "./ops/open.js";
export { type PruneOptions, type PruneResult, prune } from "./ops/prune/prune.js";
export { type RepairIndexResult, repairIndex } from "./ops/repair/repair-index.js";
export { type RepairedSnapshot, repairSnapshots } from "./ops/repair/repair-snapshots.js";
export { type RestoreOptions, type RestoreResult, restore } from "./ops/restore/restore.js";
export { findSnapshot, type SnapshotFilter } from "./repo/find-snapshot.js";
export { Repository } from "./repo/repository.js";
export type { Snapshot, SnapshotWithId } from "./repo/snapshot.js";
export type { Tree, TreeNode } from "./repo/tree.js";
export { type ServeOptions, startServer } from "./server/serve.js";
export { VERSION } from "./version.js";
