import { isStorageId } from "../../repo/config.js";
import { listPlans, liveSessions } from "../../repo/gc-plan.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { type DrillRecordWithId, listDrills, seriesKey } from "./drill.js";
import type { DrillSummary } from "./drill-summary.js";

export type { DrillSummary };

/** A series of snapshots: one host and one set of paths (as `forget` groups them by default). */
export interface SeriesStatus {
  host: string;
  paths: string[];
  source: string;
  snapshots: number;
  newest: { id: string; time: string; ageSeconds: number; incomplete: boolean };
  /** The most recent drill of this series, whatever its outcome. */
  lastDrill?: DrillSummary;
  /** The most recent drill that passed: when the series was last proven restorable. */
  lastOkDrill?: DrillSummary;
  /** The most recent failed drill, when it is newer than the last full drill that passed (a
   * passing sample since does not make it go away). */
  unresolvedFailure?: DrillSummary;
  /** Whether the newest snapshot itself has passed a full drill. */
  newestProven: boolean;
  drills: number;
}

export interface RepositoryStatus {
  time: string;
  location: string;
  snapshots: number;
  packs: number;
  packBytes: number;
  /** Prune deletion plans (`gc/`) not yet carried out. */
  prunePlans: number;
  /** Backup and prune sessions that may still be running. */
  liveSessions: { backup: number; prune: number };
  drills: number;
  series: SeriesStatus[];
}

const ageOf = (time: string, now: number) => Math.max(0, Math.round((now - Date.parse(time)) / 1000));

export function summarizeDrill(d: DrillRecordWithId, now = Date.now()): DrillSummary {
  return {
    id: d.id,
    time: d.time,
    ageSeconds: ageOf(d.time, now),
    snapshot: d.snapshot,
    ok: d.ok,
    mode: d.mode,
    files: d.files,
    bytes: d.bytes,
    seconds: d.seconds,
    mbPerSecond: d.seconds > 0 ? Math.round((d.bytes / 1e6 / d.seconds) * 100) / 100 : null,
    failed: d.failed,
    ...(d.failures[0] ? { firstFailure: d.failures[0] } : {}),
    ...(d.engineCheck !== undefined ? { engineCheck: d.engineCheck } : {}),
  };
}

/**
 * The health of a repository at a glance: per series, the newest snapshot and its age, and the
 * last drill (when, whether it passed, how long the restore took); overall, the counts of
 * snapshots, packs, pending prune plans and running sessions. Reads only.
 */
export async function repositoryStatus(repo: Repository, now = Date.now()): Promise<RepositoryStatus> {
  const [snaps, drills, plans, sessions] = await Promise.all([
    repo.listSnapshots(),
    listDrills(repo),
    listPlans(repo),
    liveSessions(repo, now),
  ]);
  let packs = 0;
  let packBytes = 0;
  for await (const o of repo.backend.list("data/")) {
    if (!isStorageId(o.name.slice(o.name.lastIndexOf("/") + 1))) continue;
    packs++;
    packBytes += o.size;
  }
  const groups = new Map<string, SnapshotWithId[]>();
  for (const s of snaps) {
    const k = seriesKey(s.hostname, s.paths);
    groups.set(k, [...(groups.get(k) ?? []), s]);
  }
  const drillsBySeries = new Map<string, DrillRecordWithId[]>();
  for (const d of drills) {
    const k = seriesKey(d.host, d.paths);
    drillsBySeries.set(k, [...(drillsBySeries.get(k) ?? []), d]);
  }
  const series: SeriesStatus[] = [];
  for (const [k, list] of groups) {
    const newest = list.at(-1)!;
    const ds = drillsBySeries.get(k) ?? [];
    const last = ds.at(-1);
    const lastOk = ds.filter((d) => d.ok).at(-1);
    const lastOkFull = ds.filter((d) => d.ok && d.mode === "full").at(-1);
    const lastFailed = ds.filter((d) => !d.ok).at(-1);
    const unresolved =
      lastFailed && (!lastOkFull || lastOkFull.time < lastFailed.time) ? lastFailed : undefined;
    series.push({
      host: newest.hostname,
      paths: [...newest.paths].sort(),
      source: newest.source ?? "files",
      snapshots: list.length,
      newest: {
        id: newest.id,
        time: newest.time,
        ageSeconds: ageOf(newest.time, now),
        incomplete: newest.incomplete,
      },
      ...(last ? { lastDrill: summarizeDrill(last, now) } : {}),
      ...(lastOk ? { lastOkDrill: summarizeDrill(lastOk, now) } : {}),
      ...(unresolved ? { unresolvedFailure: summarizeDrill(unresolved, now) } : {}),
      newestProven: ds.some((d) => d.ok && d.snapshot === newest.id && d.mode === "full"),
      drills: ds.length,
    });
  }
  series.sort((a, b) =>
    a.host !== b.host ? (a.host < b.host ? -1 : 1) : a.paths.join("\0") < b.paths.join("\0") ? -1 : 1,
  );
  return {
    time: new Date(now).toISOString(),
    location: repo.backend.location,
    snapshots: snaps.length,
    packs,
    packBytes,
    prunePlans: plans.length,
    liveSessions: {
      backup: sessions.filter((s) => s.kind === "backup").length,
      prune: sessions.filter((s) => s.kind === "prune").length,
    },
    drills: drills.length,
    series,
  };
}
