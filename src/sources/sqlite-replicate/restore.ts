import { promises as fs } from "node:fs";
import Database from "better-sqlite3";
import { CorruptionError } from "../../core/errors.js";
import { matchesFilter } from "../../repo/find-snapshot.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { readSnapshotFile } from "../../snapshot/snapshot-files.js";
import { describeDatabase, moveRestoredDatabase, sqliteRestoreTarget } from "../sqlite.js";
import { listSegments, replicationOf, SEGMENT_PREFIX, type StoredSegment, segmentPages } from "./segments.js";
import { WAL_HEADER } from "./wal.js";

/**
 * Point-in-time restore of a replicated SQLite database: the newest state at or before T among
 * (a) replica generations: the full snapshot plus its segments whose reads finished by T, and
 * (b) ordinary `backup sqlite:` snapshots. A segment's pages are written into the copy at
 * (page − 1) × page size and the file is cut to the segment's database size; the result is
 * checked with PRAGMA integrity_check before it is renamed into place.
 */

export interface RestorePlan {
  snapshot: SnapshotWithId;
  /** Segments to apply in order (empty for an ordinary snapshot). */
  segments: StoredSegment[];
  /** Every transaction in the restored state committed before this time. */
  stateTime: string;
  generation?: string;
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
  const byGen = new Map<string, StoredSegment[]>();
  for (const seg of await listSegments(repo, source)) {
    const list = byGen.get(seg.doc.generation) ?? [];
    list.push(seg);
    byGen.set(seg.doc.generation, list);
  }
  let best: RestorePlan | undefined;
  let bestTime = Number.NEGATIVE_INFINITY;
  for (const s of snaps) {
    const r = replicationOf(s);
    let plan: RestorePlan = { snapshot: s, segments: [], stateTime: s.time };
    if (r) {
      const segs = (byGen.get(r.generation) ?? []).filter((g) => Date.parse(g.doc.commitsBefore) <= limit);
      plan = {
        snapshot: s,
        segments: segs,
        stateTime: segs.at(-1)?.doc.commitsBefore ?? s.time,
        generation: r.generation,
      };
    }
    const t = Date.parse(plan.stateTime);
    // On a tie the replica wins (it has the same state and more facts).
    if (t > bestTime || (t === bestTime && r)) {
      best = plan;
      bestTime = t;
    }
  }
  if (best?.generation) checkChain(best.snapshot, best.segments);
  return best;
}

/** Segments must follow each other without a gap from the snapshot's WAL position. */
function checkChain(s: SnapshotWithId, segs: StoredSegment[]): void {
  const r = replicationOf(s)!;
  let end = r.wal.offset;
  let salts = `${r.wal.salt1}/${r.wal.salt2}`;
  segs.forEach((seg, i) => {
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
      for (const seg of plan.segments) {
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
