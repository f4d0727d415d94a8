import { promises as fs } from "node:fs";
import Database from "better-sqlite3";
import { mapLimit } from "../../core/concurrency.js";
import { CorruptionError } from "../../core/errors.js";
import { matchesFilter } from "../../repo/find-snapshot.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { readSnapshotFile } from "../../snapshot/snapshot-files.js";
import { describeDatabase, moveRestoredDatabase, sqliteRestoreTarget } from "../sqlite.js";
import { readGeneration, type SegmentInfo } from "./catalog.js";
import {
  type ChainEnd,
  doesNotFollow,
  type LevelSegment,
  levelSegmentPages,
  loadLevelSegment,
} from "./level-segments.js";
import { cheapestChain } from "./levels.js";
import {
  listSegments,
  type ReplicationMeta,
  replicationOf,
  SEGMENT_PREFIX,
  type StoredSegment,
  segmentPages,
} from "./segments.js";
import { WAL_HEADER } from "./wal.js";

/**
 * Point-in-time restore of a replicated SQLite database: the newest state at or before T among
 * (a) replica generations: the full snapshot plus the cheapest chain of its segments whose reads
 * finished by T (in levels: coarse merged segments where they reach, finer ones after them), and
 * (b) ordinary `backup sqlite:` snapshots. A segment's pages are written into the copy at
 * (page − 1) × page size, the file cut to the segment's sizes; the result is checked with
 * PRAGMA integrity_check before it is renamed into place.
 */

/** One segment of a plan: of a generation in levels, or of one stored before levels. */
export type PlanStep =
  | { kind: "levels"; info: SegmentInfo; loaded?: LevelSegment | undefined }
  | { kind: "legacy"; seg: StoredSegment };

export interface RestorePlan {
  snapshot: SnapshotWithId;
  /** Segments to apply in order (empty for an ordinary snapshot). */
  segments: PlanStep[];
  /** Every transaction in the restored state committed before this time. */
  stateTime: string;
  generation?: string;
  /** Why the chain stops short of segments that exist (a gap): restore refuses. */
  gap?: string;
}

/** Chooses what to restore for `source` as of `time` (undefined: the latest). */
export async function planSqliteRestore(
  repo: Repository,
  source: string,
  time: Date | undefined,
  filter: { host?: string | undefined; tags?: string[] | undefined } = {},
): Promise<RestorePlan | undefined> {
  const limit = time ? time.getTime() : Number.POSITIVE_INFINITY;
  const snaps = (await repo.listSnapshots()).filter(
    (s) =>
      s.source === "sqlite" &&
      matchesFilter(s, { ...filter, paths: [source] }) &&
      Date.parse(s.time) <= limit,
  );
  let byGen: Map<string, StoredSegment[]> | undefined;
  if (snaps.some((s) => replicationOf(s) && replicationOf(s)!.layout !== "levels")) {
    byGen = new Map();
    for (const seg of await listSegments(repo, source)) {
      const list = byGen.get(seg.doc.generation) ?? [];
      list.push(seg);
      byGen.set(seg.doc.generation, list);
    }
  }
  const plans = await mapLimit(snaps, 8, async (s): Promise<RestorePlan> => {
    const r = replicationOf(s);
    if (!r) return { snapshot: s, segments: [], stateTime: s.time };
    if (r.layout === "levels") return planLevels(repo, s, r, limit);
    const segs = (byGen?.get(r.generation) ?? []).filter((g) => Date.parse(g.doc.commitsBefore) <= limit);
    return {
      snapshot: s,
      segments: segs.map((seg) => ({ kind: "legacy", seg })),
      stateTime: segs.at(-1)?.doc.commitsBefore ?? s.time,
      generation: r.generation,
    };
  });
  let best: RestorePlan | undefined;
  let bestTime = Number.NEGATIVE_INFINITY;
  for (const plan of plans) {
    const t = Date.parse(plan.stateTime);
    // On a tie the replica wins (it has the same state and more facts).
    if (t > bestTime || (t === bestTime && plan.generation !== undefined)) {
      best = plan;
      bestTime = t;
    }
  }
  if (best?.gap) throw new CorruptionError(`generation ${best.generation}`, best.gap);
  if (best?.generation && best.segments[0]?.kind === "legacy") checkLegacyChain(best.snapshot, best.segments);
  return best;
}

/** The cheapest chain of a generation in levels up to `limit`, found through its catalog. */
async function planLevels(
  repo: Repository,
  s: SnapshotWithId,
  r: ReplicationMeta,
  limit: number,
): Promise<RestorePlan> {
  const found = await readGeneration(repo, r.generation, { limit });
  const chain = cheapestChain(found.segments, 0, { limit }) ?? [];
  const reached = chain.at(-1)?.last ?? -1;
  // A gap: later segments exist but no segment at all holds the next interval. (Intervals a
  // coarser segment ending after T covers were merged away: the chain legitimately stops.) Those
  // later segments need not apply by T: the missing interval may end before T while the next one
  // ends after it, and stopping short would silently leave out what was committed in it.
  const beyond = found.segments.filter((x) => x.last > reached);
  const held = found.segments.some((x) => x.first <= reached + 1 && x.last >= reached + 1);
  const plan: RestorePlan = {
    snapshot: s,
    segments: chain.map((info) => ({ kind: "levels", info, loaded: found.loaded.get(info.object) })),
    stateTime: chain.length > 0 ? new Date(chain.at(-1)!.commitsBefore).toISOString() : s.time,
    generation: r.generation,
  };
  if (beyond.length > 0 && !held)
    plan.gap = `segment ${reached + 1} of generation ${r.generation} (snapshot ${s.id.slice(0, 8)}) is missing`;
  return plan;
}

/** Segments stored before levels must follow each other without a gap from the snapshot's WAL position. */
function checkLegacyChain(s: SnapshotWithId, steps: PlanStep[]): void {
  const r = replicationOf(s)!;
  let end = r.wal.offset;
  let salts = `${r.wal.salt1}/${r.wal.salt2}`;
  steps.forEach((step, i) => {
    if (step.kind !== "legacy") return;
    const seg = step.seg;
    const d = seg.doc;
    const segSalts = `${d.wal.salt1}/${d.wal.salt2}`;
    const follows =
      (d.wal.start === end && segSalts === salts) ||
      (d.wal.start === WAL_HEADER && (segSalts !== salts || end === 0));
    if (d.index !== i || !follows || d.pageSize !== r.pageSize) {
      throw new CorruptionError(
        `${SEGMENT_PREFIX}${seg.id}`,
        d.index !== i
          ? `segment ${i} of generation ${r.generation} (snapshot ${s.id.slice(0, 8)}) is missing`
          : `segment ${d.index} of generation ${r.generation} does not continue the WAL where the previous one ended`,
      );
    }
    end = d.wal.end;
    salts = segSalts;
  });
}

export interface ReplicaRestoreResult {
  file: string;
  bytes: number;
  segments: number;
  integrity: string;
  tables: Record<string, number>;
}

/** Applies one segment in levels: cut to its smallest size, write its pages, set its final size. */
async function applyLevels(
  repo: Repository,
  fh: fs.FileHandle,
  step: Extract<PlanStep, { kind: "levels" }>,
  prev: ChainEnd,
  generation: string,
): Promise<{ end: ChainEnd; size: number }> {
  const seg = step.loaded ?? (await loadLevelSegment(repo, step.info.object));
  const h = seg.header;
  const why =
    h.generation !== generation || h.first !== step.info.first || h.last !== step.info.last
      ? `segment ${h.first}..${h.last} of generation ${h.generation} is not the one its catalog lists`
      : doesNotFollow(prev, h);
  if (why) throw new CorruptionError(seg.object, why);
  const ps = h.pageSize;
  await fh.truncate(h.minDbPages * ps);
  for await (const { pgno, page } of levelSegmentPages(repo, seg))
    await fh.write(page, 0, ps, (pgno - 1) * ps);
  await fh.truncate(h.dbPages * ps);
  return { end: { walEnd: h.walEnd, last: h.last, pageSize: ps }, size: h.dbPages * ps };
}

/** Restores a replica plan into `target` (a file, or an existing folder to put it in). */
export async function restoreReplica(
  repo: Repository,
  plan: RestorePlan,
  target: string,
): Promise<ReplicaRestoreResult> {
  const snap = plan.snapshot;
  const { file, dest, tmp, removeTmp } = await sqliteRestoreTarget(repo, snap, target);
  try {
    const fh = await fs.open(tmp, "wx", (file.node.mode ?? 0o600) & 0o777);
    let size = 0;
    try {
      for await (const b of readSnapshotFile(repo, file)) {
        await fh.write(b);
        size += b.length;
      }
      const r = replicationOf(snap);
      let end: ChainEnd | undefined = r && {
        walEnd: { ...r.wal },
        last: -1,
        pageSize: r.pageSize,
      };
      for (const step of plan.segments) {
        if (step.kind === "levels") {
          const done = await applyLevels(repo, fh, step, end!, plan.generation!);
          end = done.end;
          size = done.size;
          continue;
        }
        const seg = step.seg;
        const ps = seg.doc.pageSize;
        for await (const { pgno, page } of segmentPages(repo, seg.doc, seg.id)) {
          if (pgno < 1 || pgno > seg.doc.dbPages)
            throw new CorruptionError(`${SEGMENT_PREFIX}${seg.id}`, `page ${pgno} is outside the database`);
          await fh.write(page, 0, ps, (pgno - 1) * ps);
        }
        size = seg.doc.dbPages * ps;
        await fh.truncate(size);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    let integrity: string;
    let tables: Record<string, number>;
    const db = new Database(tmp, { fileMustExist: true });
    try {
      const rows = db.pragma("integrity_check") as { integrity_check: string }[];
      integrity = rows.map((r) => r.integrity_check).join("; ");
      if (integrity !== "ok") {
        throw new CorruptionError(
          `snapshot ${snap.id.slice(0, 8)}${plan.segments.length > 0 ? ` + ${plan.segments.length} WAL segments` : ""}`,
          `the restored database fails PRAGMA integrity_check: ${integrity.slice(0, 400)}`,
        );
      }
      tables = describeDatabase(db).tables;
    } finally {
      db.close();
    }
    await moveRestoredDatabase(tmp, dest);
    return { file: dest, bytes: size, segments: plan.segments.length, integrity, tables };
  } catch (e) {
    await removeTmp();
    throw e;
  }
}
