import os from "node:os";
import { formatItemError, type ItemError } from "../core/errors.js";
import type { Repository, WriteStats } from "../repo/repository.js";
import type { Snapshot, SnapshotWithId } from "../repo/snapshot.js";
import { VERSION } from "../version.js";
import { type AnomalyThresholds, detectAnomalies } from "./anomaly.js";
import type { BackupSummary, TreeBuilder } from "./tree-builder.js";

export interface BackupResult {
  snapshotId: string;
  snapshot: Snapshot;
  summary: BackupSummary;
  /** Items that could not be read (the snapshot is marked incomplete). */
  errors: ItemError[];
  /** Things left out on purpose (sockets): not errors. */
  warnings: string[];
}

export interface CommitInput {
  /** The root tree, already flushed (built inside a writer scope that has ended). */
  tree: string;
  built: Pick<TreeBuilder, "summary" | "errors" | "changed" | "warnings" | "treeCount">;
  paths: string[];
  host: string;
  tags: string[];
  time: Date;
  parent: SnapshotWithId | undefined;
  /** Source type for non-file snapshots (`sqlite`, `imap`, ...). */
  type?: string | undefined;
  excludes: string[];
  /** Extended attributes were read (recorded in the snapshot for the next backup). */
  xattrs?: boolean;
  meta?: Record<string, unknown> | undefined;
  /** Thresholds for flagging a snapshot that looks like a wipe (false: do not check). */
  anomaly: AnomalyThresholds | false;
  started: number;
  statsBefore: WriteStats;
  /** A fleet account's snapshot: its account id and fleet name go into the document. */
  account?: { fleet: string; id: string };
  /** Runs with the snapshot's id just before the document is stored (see writeSnapshot). */
  beforeStore?: (id: string, snapshot: Snapshot) => Promise<void>;
}

function safeUser(): { username: string; uid: number; gid: number } {
  let username = "unknown";
  try {
    username = os.userInfo().username;
  } catch {}
  return { username, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

/**
 * The one commit step: counts what the repository added, compares the new tree with the
 * parent's (a snapshot that looks like a wipe is still saved, but flagged), and writes the
 * snapshot document once. The repository flushes before the document is written, so a
 * snapshot never points at data that is not durable (write order: packs → index → snapshot).
 */
export async function commitSnapshot(repo: Repository, c: CommitInput): Promise<BackupResult> {
  const summary = c.built.summary;
  const stats = repo.writeStats;
  summary.blobsAdded = stats.blobsAdded - c.statsBefore.blobsAdded;
  summary.bytesAdded = stats.bytesAdded - c.statsBefore.bytesAdded;
  summary.bytesStored = stats.bytesStored - c.statsBefore.bytesStored;
  summary.durationMs = Date.now() - c.started;
  // A changed exclude list removes files on purpose: that is not compared as a wipe.
  const sameExcludes = c.parent && JSON.stringify(c.parent.excludes) === JSON.stringify(c.excludes);
  const anomalies =
    c.parent && sameExcludes && c.anomaly !== false
      ? (await detectAnomalies(repo, c.parent, c.tree, c.meta, c.anomaly, c.built.treeCount(c.tree))).reasons
      : [];
  const user = safeUser();
  const errors = c.built.errors.map(formatItemError);
  const snapshot: Snapshot = {
    version: 1,
    time: c.time.toISOString(),
    tree: c.tree,
    paths: c.paths,
    hostname: c.host,
    username: user.username,
    uid: user.uid,
    gid: user.gid,
    tags: c.tags,
    ...(c.parent ? { parent: c.parent.id } : {}),
    incomplete: errors.length > 0,
    errors,
    ...(anomalies.length > 0 ? { anomalies } : {}),
    changedWhileReading: c.built.changed,
    excludes: c.excludes,
    ...(c.xattrs ? { xattrs: true } : {}),
    program: `lifeboat ${VERSION}`,
    ...(c.type ? { source: c.type } : {}),
    ...(c.meta ? { meta: c.meta } : {}),
    ...(c.account ? { account: c.account.id, fleet: c.account.fleet } : {}),
    summary,
  };
  const before = c.beforeStore;
  const snapshotId = await repo.writeSnapshot(snapshot, before ? (id) => before(id, snapshot) : undefined);
  return { snapshotId, snapshot, summary, errors: c.built.errors, warnings: c.built.warnings };
}
