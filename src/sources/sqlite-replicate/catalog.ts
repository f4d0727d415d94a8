import { mapLimit } from "../../core/concurrency.js";
import { CorruptionError, isLifeboatError } from "../../core/errors.js";
import type { StoredRecord } from "../../repo/record-store.js";
import {
  type CatalogEntry,
  type CatalogRecord,
  catalogKind,
  type SegmentHeader,
  segmentPagesKind,
  segmentRefKind,
} from "../../repo/records-segment-levels.js";
import type { Repository } from "../../repo/repository.js";
import { type LevelSegment, loadLevelSegment } from "./level-segments.js";
import type { ChainEntry } from "./levels.js";

/**
 * A generation's segments in levels, found without reading every segment: its catalog
 * (`sqlite-gen/<K>/`) lists the segments in force when it was written, with their ranges and
 * times; one listing of the generation's label finds the segment objects, and only those the
 * catalog does not know (written since) are read, and only when they can matter.
 */
export interface SegmentInfo extends ChainEntry {
  object: string;
  /** ms since the epoch. */
  commitsAfter: number;
}

export function infoOf(object: string, h: SegmentHeader): SegmentInfo {
  return {
    object,
    level: h.level,
    first: h.first,
    last: h.last,
    commitsAfter: Date.parse(h.commitsAfter),
    commitsBefore: Date.parse(h.commitsBefore),
    size: h.size,
  };
}

export function entryOf(s: SegmentInfo): CatalogEntry {
  return {
    object: s.object,
    level: s.level,
    first: s.first,
    last: s.last,
    commitsAfter: new Date(s.commitsAfter).toISOString(),
    commitsBefore: new Date(s.commitsBefore).toISOString(),
    size: s.size,
  };
}

function fromEntry(e: CatalogEntry): SegmentInfo {
  return {
    object: e.object,
    level: e.level,
    first: e.first,
    last: e.last,
    commitsAfter: Date.parse(e.commitsAfter),
    commitsBefore: Date.parse(e.commitsBefore),
    size: e.size,
  };
}

export interface GenerationSegments {
  /** The catalogs found (normally one; two after a rewrite interrupted before the old was deleted). */
  catalogs: StoredRecord<CatalogRecord>[];
  /** Segments in force that exist, in no particular order. */
  segments: SegmentInfo[];
  /** Segments read to find them (kept for applying them). */
  loaded: Map<string, LevelSegment>;
  /** Replaced segments still stored (their deletion was refused). */
  replaced: Set<string>;
  /** Every segment object listed. */
  objects: Set<string>;
}

/** The segment objects of a generation (both families). */
export async function segmentObjects(repo: Repository, generation: string): Promise<string[]> {
  const [a, b] = await Promise.all([
    repo.records.objects(segmentPagesKind, generation),
    repo.records.objects(segmentRefKind, generation),
  ]);
  return [...a, ...b];
}

/**
 * The segments of a generation. With `limit`, segments the catalog does not know are read only
 * if the catalog's ones end before `limit` (they were shipped after the catalog was written, so
 * only a point in time after the catalog's newest segment needs them).
 */
export async function readGeneration(
  repo: Repository,
  generation: string,
  opts: {
    limit?: number /** Go on without segments the catalog lists but storage lost (replicate). */;
    lenient?: boolean;
  } = {},
): Promise<GenerationSegments> {
  for (let attempt = 1; ; attempt++) {
    const objects = new Set(await segmentObjects(repo, generation));
    const catalogs = await repo.records.list(catalogKind, { label: generation, unreadable: "throw" });
    const newest = catalogs.reduce<StoredRecord<CatalogRecord> | undefined>(
      (a, c) => (a === undefined || c.record.seq > a.record.seq ? c : a),
      undefined,
    );
    const replaced = new Set(catalogs.flatMap((c) => c.record.replaced));
    const lost = (newest?.record.segments ?? []).filter(
      (e) => !objects.has(e.object) && !replaced.has(e.object),
    );
    if (lost.length > 0 && !opts.lenient) {
      // A compaction replaced segments between our listing and reading the catalog: look again.
      if (attempt < 4) continue;
      const e = lost[0]!;
      throw new CorruptionError(
        e.object,
        `segment ${e.first}..${e.last} (level ${e.level}) of generation ${generation} is missing (its catalog lists it)`,
      );
    }
    const known = new Map<string, SegmentInfo>();
    for (const c of catalogs)
      for (const e of c.record.segments)
        if (objects.has(e.object) && !replaced.has(e.object)) known.set(e.object, fromEntry(e));
    const unknown = [...objects].filter((o) => !known.has(o) && !replaced.has(o));
    const newestKnown = Math.max(
      Number.NEGATIVE_INFINITY,
      ...[...known.values()].map((s) => s.commitsBefore),
    );
    const loaded = new Map<string, LevelSegment>();
    if (unknown.length > 0 && (opts.limit === undefined || opts.limit > newestKnown)) {
      const read = await mapLimit(unknown, 16, async (o) => {
        try {
          return await loadLevelSegment(repo, o);
        } catch (e) {
          if (isLifeboatError(e) && e.code === "NOT_FOUND") return undefined;
          throw e;
        }
      });
      for (const s of read) {
        if (!s || s.header.generation !== generation) continue;
        loaded.set(s.object, s);
        known.set(s.object, infoOf(s.object, s.header));
      }
    }
    return {
      catalogs,
      segments: [...known.values()],
      loaded,
      replaced: new Set([...replaced].filter((o) => objects.has(o))),
      objects,
    };
  }
}
