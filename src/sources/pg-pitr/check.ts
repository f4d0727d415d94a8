import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import type { BaseBackupMeta } from "./base-backup.js";
import { listBaseBackups } from "./restore.js";
import { DEFAULT_CLUSTER, listWal, type WalRecord } from "./wal-archive.js";
import { parseWalName, segmentName, segmentNumber } from "./wal-names.js";

/**
 * `lifeboat pg check`: from the newest base backup, can recovery replay every archived segment?
 * Segment names must be consecutive per timeline from the backup's first segment up to the
 * newest archived one; a newer timeline must start where the one before ends and have its
 * .history file; every segment must come from the same database system as the base backup.
 */
export interface WalCheckResult {
  ok: boolean;
  cluster: string;
  base?: { snapshot: string; time: string; startWalFile: string; timeline: number };
  segments: number;
  /** The newest archived segment (by timeline, then position). */
  newest?: string;
  /** Names of missing segments (ranges are listed as first..last with a count). */
  gaps: string[];
  problems: string[];
}

function describeRange(tli: number, from: number, to: number, segSize: number): string {
  const a = segmentName(tli, from, segSize);
  if (from === to) return a;
  return `${a}..${segmentName(tli, to, segSize)} (${to - from + 1} segments)`;
}

export async function checkWal(repo: Repository, cluster = DEFAULT_CLUSTER): Promise<WalCheckResult> {
  const base = (await listBaseBackups(repo, cluster)).at(-1);
  const records = base ? (await listWal(repo, cluster)).map((w) => w.record) : [];
  return checkChain(cluster, base, records);
}

/** The check itself, on a base backup and the archive's records. */
export function checkChain(
  cluster: string,
  base: Pick<SnapshotWithId, "id" | "time" | "meta"> | undefined,
  all: WalRecord[],
): WalCheckResult {
  const result: WalCheckResult = { ok: false, cluster, segments: 0, gaps: [], problems: [] };
  if (!base) {
    result.problems.push(`no base backup of cluster ${cluster}`);
    return result;
  }
  const meta = (base.meta ?? {}) as unknown as BaseBackupMeta;
  const segSize = meta.walSegmentSize || 16 * 1024 * 1024;
  const start = parseWalName(meta.startWalFile);
  if (!start) {
    result.problems.push(`base backup ${base.id.slice(0, 8)} records no start WAL file`);
    return result;
  }
  result.base = {
    snapshot: base.id,
    time: base.time,
    startWalFile: meta.startWalFile,
    timeline: start.timeline,
  };
  const startNo = segmentNumber(start, segSize);
  const histories = new Set(all.filter((r) => r.kind === "history").map((r) => r.timeline));
  const byTimeline = new Map<number, Map<number, WalRecord>>();
  for (const record of all) {
    if (record.kind !== "segment") continue;
    const n = parseWalName(record.name)!;
    if (n.timeline < start.timeline) continue;
    const no = segmentNumber(n, segSize);
    if (n.timeline === start.timeline && no < startNo) continue;
    if (record.systemId && meta.systemId && record.systemId !== meta.systemId)
      result.problems.push(
        `${record.name} comes from database system ${record.systemId}, the base backup from ${meta.systemId}`,
      );
    if (record.segmentSize && record.segmentSize !== segSize)
      result.problems.push(`${record.name} has segment size ${record.segmentSize}, expected ${segSize}`);
    const m = byTimeline.get(n.timeline) ?? new Map<number, WalRecord>();
    byTimeline.set(n.timeline, m);
    m.set(no, record);
    result.segments++;
  }
  let prevEnd = startNo - 1;
  const timelines = [...byTimeline.keys()].sort((a, b) => a - b);
  if (!byTimeline.has(start.timeline)) {
    result.gaps.push(describeRange(start.timeline, startNo, startNo, segSize));
  }
  for (const tli of timelines) {
    const nos = [...byTimeline.get(tli)!.keys()].sort((a, b) => a - b);
    const first = tli === start.timeline ? startNo : nos[0]!;
    if (tli !== start.timeline) {
      if (!histories.has(tli))
        result.problems.push(
          `timeline ${tli} has segments but no ${tli.toString(16).toUpperCase().padStart(8, "0")}.history file`,
        );
      if (first > prevEnd + 1) result.gaps.push(describeRange(tli, prevEnd + 1, first - 1, segSize));
    }
    let expect = first;
    for (const no of nos) {
      if (no > expect) result.gaps.push(describeRange(tli, expect, no - 1, segSize));
      expect = no + 1;
    }
    prevEnd = nos.at(-1)!;
    result.newest = segmentName(tli, prevEnd, segSize);
  }
  if (meta.stopWalFile) {
    const stop = parseWalName(meta.stopWalFile);
    const last = result.newest ? parseWalName(result.newest) : undefined;
    if (
      stop &&
      (!last || last.timeline < stop.timeline || segmentNumber(last, segSize) < segmentNumber(stop, segSize))
    )
      result.problems.push(`the base backup needs WAL up to ${meta.stopWalFile}, which is not archived`);
  }
  result.ok = result.gaps.length === 0 && result.problems.length === 0;
  return result;
}

export interface WalExpireResult {
  /** The oldest base backup kept: WAL before its first segment is not needed by any. */
  keepFrom?: string;
  expired: string[];
  kept: number;
}

/**
 * Deletes the records of WAL files no base backup needs: segments (and .backup/.partial files)
 * before the first segment of the oldest base backup of the cluster. History files are kept.
 * The blobs become unreferenced; prune removes them. Run after `forget`.
 */
export async function expireWal(
  repo: Repository,
  cluster = DEFAULT_CLUSTER,
  opts: { dryRun?: boolean } = {},
): Promise<WalExpireResult> {
  const oldest = (await listBaseBackups(repo, cluster))
    .map((s) => (s.meta ?? {}) as unknown as BaseBackupMeta)
    .filter((m) => parseWalName(m.startWalFile ?? "") !== undefined)
    .sort((a, b) => (a.startWalFile.slice(8) < b.startWalFile.slice(8) ? -1 : 1))[0];
  const all = await listWal(repo, cluster);
  if (!oldest) return { expired: [], kept: all.length };
  const segSize = oldest.walSegmentSize || 16 * 1024 * 1024;
  const first = segmentNumber(parseWalName(oldest.startWalFile)!, segSize);
  const expired: string[] = [];
  for (const w of all) {
    if (w.record.kind === "history") continue;
    const n = parseWalName(w.record.name);
    if (!n || segmentNumber(n, segSize) >= first) continue;
    expired.push(w.record.name);
    if (!opts.dryRun) await repo.backend.delete(w.object);
  }
  return { keepFrom: oldest.startWalFile, expired, kept: all.length - expired.length };
}
