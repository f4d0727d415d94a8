import os from "node:os";
import type { Repository } from "../repo/repository.js";
import type { Snapshot } from "../repo/snapshot.js";
import { type AccountTag, recordAccountSnapshot } from "./account-catalogue.js";
import { type AnomalyThresholds, DEFAULT_THRESHOLDS } from "./anomaly.js";
import { type BackupResult, commitSnapshot } from "./commit.js";
import { findParent, parentLookup } from "./parent.js";
import { type BackupProgress, ProgressCounter } from "./progress.js";
import { withSession } from "./session.js";
import { isTreeSource, type Source, sourcePaths } from "./source.js";
import { TreeBuilder } from "./tree-builder.js";

export interface SnapshotOptions {
  tags?: string[];
  /** Recorded as the snapshot's host (default this machine's name); with the paths it picks the parent. */
  host?: string;
  /** Parent snapshot id; default: the newest snapshot of the same host and paths; false: none. */
  parent?: string | false;
  /** Re-read every file even if the parent says it is unchanged. */
  force?: boolean;
  /** Snapshot time (default now). */
  time?: Date;
  onProgress?: (p: BackupProgress) => void;
  /** Warnings that do not make the snapshot incomplete (skipped sockets). */
  onWarning?: (message: string) => void;
  /** Thresholds for flagging a snapshot that looks like a wipe (false: do not check). */
  anomaly?: AnomalyThresholds | false;
  /** Stops the backup between items; what was stored is flushed so a later run reuses it. */
  signal?: AbortSignal;
  /** A fleet account's snapshot: recorded in the snapshot and in the account's catalogue
   * (format feature `fleet-accounts`, see account-catalogue.ts). */
  account?: AccountTag;
}

/**
 * Takes a snapshot of any source: inside a session (prune then keeps what it may reference),
 * against its parent (unchanged files are not read again), through the one tree builder and
 * the one commit step. Every backup — files, stdin, databases, mail, calendars, accounts — is
 * a source handed to this function.
 */
export async function takeSnapshot(
  repo: Repository,
  source: Source,
  options: SnapshotOptions = {},
): Promise<BackupResult> {
  const account = options.account;
  if (account) await repo.enableFeature("fleet-accounts");
  return withSession(repo, async () => {
    const started = Date.now();
    const statsBefore = repo.writeStats;
    const host = options.host ?? os.hostname();
    const paths = sourcePaths(source);
    const parent = options.parent === false ? undefined : await findParent(repo, options.parent, host, paths);
    const progress = new ProgressCounter(options.onProgress);
    // Totals for the ETA: the parent's, when there is one (a second walk would double the
    // metadata work of an incremental backup); otherwise the source's own scan, beside the backup.
    const scan =
      !options.onProgress || !isTreeSource(source)
        ? Promise.resolve()
        : parent?.summary
          ? Promise.resolve(progress.setTotals(parent.summary.files, parent.summary.bytes))
          : (source.scanTotals?.().then((t) => progress.setTotals(t.files, t.bytes)) ?? Promise.resolve());
    let built: TreeBuilder | undefined;
    const tree = await repo.withWriter((w) => {
      built = new TreeBuilder(repo, w, {
        progress,
        ...(options.force ? { force: true } : {}),
        ...(options.onWarning ? { onWarning: options.onWarning } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(isTreeSource(source) && source.xattrs && parent?.xattrs ? { parentXattrs: true } : {}),
      });
      for (const warning of isTreeSource(source) ? (source.warnings ?? []) : []) {
        built.warnings.push(warning);
        options.onWarning?.(warning);
      }
      return isTreeSource(source)
        ? built.dir(source.root, parent?.tree)
        : built.virtual(source, parentLookup(repo, parent), parent);
    });
    await scan.catch(() => {});
    progress.finish();
    const meta = source.meta ? await source.meta() : undefined;
    const result = await commitSnapshot(repo, {
      tree,
      built: built!,
      paths,
      host,
      tags: options.tags ?? [],
      time: options.time ?? new Date(),
      parent,
      type: source.type,
      excludes: isTreeSource(source) ? (source.excludes ?? []) : [],
      xattrs: isTreeSource(source) && source.xattrs === true,
      meta,
      anomaly: options.anomaly ?? DEFAULT_THRESHOLDS,
      started,
      statsBefore,
      ...(account ? { account } : {}),
      // The catalogue entry is stored first, naming the snapshot's id: a crash in between leaves
      // an entry without its snapshot (skipped by readers), never a snapshot the catalogue
      // misses (which a retry for the same window could not see).
      ...(account
        ? { beforeStore: (id: string, snap: Snapshot) => recordAccountSnapshot(repo, account, id, snap) }
        : {}),
    });
    return result;
  });
}
