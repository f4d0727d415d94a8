import { isRetained, LifeboatError } from "../../core/errors.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { acknowledgedIds, pinnedIds } from "../acks/acks.js";
import {
  applyPolicy,
  type Decision,
  guardDecisions,
  isEmptyPolicy,
  KEEP_BEFORE_ANOMALY,
  type Policy,
} from "./policy.js";

export type GroupKey = "host" | "paths" | "tags";

export interface ForgetOptions {
  policy: Policy;
  /** What makes two snapshots belong to the same series (default host and paths). */
  groupBy?: GroupKey[];
  /** Only consider snapshots of this host / with all of these tags. */
  host?: string;
  tags?: string[];
  dryRun?: boolean;
  /** Unflagged snapshots kept before the first unacknowledged flagged one (default 3). */
  keepBeforeAnomaly?: number;
}

export interface ForgetGroup {
  key: Record<string, unknown>;
  decisions: Decision<SnapshotWithId>[];
}

export interface ForgetResult {
  groups: ForgetGroup[];
  removed: string[];
  /**
   * Snapshots the policy removes but storage keeps under Object Lock retention, with the date
   * it ends (ISO; absent for a legal hold): a later forget removes them.
   */
  retained: { id: string; until?: string }[];
}

export function groupSnapshots(snaps: SnapshotWithId[], by: GroupKey[]): Map<string, SnapshotWithId[]> {
  const groups = new Map<string, SnapshotWithId[]>();
  for (const s of snaps) {
    const key = JSON.stringify({
      ...(by.includes("host") ? { host: s.hostname } : {}),
      ...(by.includes("paths") ? { paths: [...s.paths].sort() } : {}),
      ...(by.includes("tags") ? { tags: [...s.tags].sort() } : {}),
    });
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  return groups;
}

/**
 * Applies a retention policy per group and deletes the snapshots it does not keep (only the
 * snapshot documents: data is freed by prune). Refuses an empty policy, which would keep nothing.
 */
export async function forget(repo: Repository, options: ForgetOptions): Promise<ForgetResult> {
  if (isEmptyPolicy(options.policy)) {
    throw new LifeboatError(
      "USAGE",
      "no retention policy given, so nothing would be kept",
      "give --keep-last, --keep-daily, --keep-within, ... (see `lifeboat forget --help`), or snapshot ids to remove",
    );
  }
  const all = (await repo.listSnapshots()).filter(
    (s) =>
      (!options.host || s.hostname === options.host) && (options.tags ?? []).every((t) => s.tags.includes(t)),
  );
  const groups: ForgetGroup[] = [];
  const removed: string[] = [];
  const acked = await acknowledgedIds(repo);
  const flagged = (s: SnapshotWithId) => (s.anomalies ?? []).length > 0 && !acked.has(s.id);
  const pins = await pinnedIds(repo);
  const pinned = (s: SnapshotWithId) => pins.has(s.id);
  for (const [key, snaps] of groupSnapshots(all, options.groupBy ?? ["host", "paths"])) {
    const decisions = guardDecisions(
      applyPolicy(snaps, options.policy),
      flagged,
      pinned,
      options.keepBeforeAnomaly ?? KEEP_BEFORE_ANOMALY,
    );
    groups.push({ key: JSON.parse(key), decisions });
    for (const d of decisions) if (!d.keep) removed.push(d.snapshot.id);
  }
  const retained: ForgetResult["retained"] = [];
  if (!options.dryRun)
    for (const id of [...removed]) {
      try {
        await repo.deleteSnapshot(id);
      } catch (e) {
        if (!isRetained(e)) throw e;
        removed.splice(removed.indexOf(id), 1);
        retained.push({ id, ...(e.retainUntil ? { until: e.retainUntil.toISOString() } : {}) });
      }
    }
  return { groups, removed, retained };
}

/** Removes the given snapshots (resolved ids). */
export async function forgetIds(repo: Repository, ids: string[], dryRun = false): Promise<string[]> {
  if (!dryRun) for (const id of ids) await repo.deleteSnapshot(id);
  return ids;
}
