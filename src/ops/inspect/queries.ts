import { matchesFilter, type SnapshotFilter } from "../../repo/find-snapshot.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { acknowledgedIds, listAcks } from "../acks/acks.js";
import { type DrillRecordWithId, listDrills, seriesKey } from "../drill/drill.js";

/**
 * Typed questions a service, the fleet or the web console asks a repository, answered through
 * the library (never by parsing the CLI's output).
 */

/** Snapshots matching a filter (host, paths, tags), oldest first. */
export async function listSnapshots(
  repo: Repository,
  filter: SnapshotFilter = {},
): Promise<SnapshotWithId[]> {
  return (await repo.listSnapshots()).filter((s) => matchesFilter(s, filter));
}

/** The newest snapshot matching a filter, or undefined. */
export async function latestSnapshot(
  repo: Repository,
  filter: SnapshotFilter = {},
): Promise<SnapshotWithId | undefined> {
  return (await listSnapshots(repo, filter)).at(-1);
}

/** The newest drill of a series (host + paths), and the newest one that passed. */
export async function latestDrill(
  repo: Repository,
  series: { host: string; paths: string[] },
): Promise<{ last: DrillRecordWithId | undefined; lastOk: DrillRecordWithId | undefined }> {
  const key = seriesKey(series.host, series.paths);
  const mine = (await listDrills(repo)).filter((d) => seriesKey(d.host, d.paths) === key);
  return { last: mine.at(-1), lastOk: mine.filter((d) => d.ok).at(-1) };
}

export interface FlaggedSnapshot {
  snapshot: SnapshotWithId;
  /** Why the snapshot looks like a wipe compared with its parent. */
  reasons: string[];
  acknowledged: boolean;
  /** Pinned by guard (kept by every retention policy until acknowledged). */
  pinned: boolean;
}

/** Snapshots flagged as anomalous or pinned by guard, with whether someone acknowledged them. */
export async function flaggedSnapshots(repo: Repository): Promise<FlaggedSnapshot[]> {
  const [snaps, acks] = await Promise.all([repo.listSnapshots(), listAcks(repo)]);
  const acked = await acknowledgedIds(repo);
  const pins = new Set(acks.filter((a) => a.kind === "pin").map((a) => a.snapshot));
  return snaps
    .filter((s) => (s.anomalies?.length ?? 0) > 0 || pins.has(s.id))
    .map((s) => ({
      snapshot: s,
      reasons: s.anomalies ?? [],
      acknowledged: acked.has(s.id),
      pinned: pins.has(s.id),
    }));
}

/**
 * The snapshot to restore for "as it was at `time`": the newest one matching the filter taken
 * at or before that time, or undefined when there is none that old.
 */
export async function snapshotAt(
  repo: Repository,
  filter: SnapshotFilter,
  time: Date,
): Promise<SnapshotWithId | undefined> {
  const t = time.getTime();
  return (await listSnapshots(repo, filter)).filter((s) => Date.parse(s.time) <= t).at(-1);
}
