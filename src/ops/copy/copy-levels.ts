import os from "node:os";
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
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { storeStream } from "../../snapshot/store-file.js";

/**
 * Copying SQLite replication segments in levels (docs/replication.md "Levels"): per generation,
 * the segments in force in the source (finer ones a coarser one covers included: they keep the
 * granularity of recent points), each stored in the destination under the destination's keys
 * and the same generation label (inline pages as they are, page blobs re-chunked), then a
 * catalog of what the destination now holds. A segment is the same as one the destination has
 * when it covers the same intervals at the same level (segments are deterministic merges of
 * their range), so copying again copies nothing twice. Segments an earlier copy brought that the
 * source has since replaced (a coarser one covers them) are replaced in the destination too, as
 * replicate does (catalog first, then deleted).
 */

/** The snapshot of a generation in levels (`meta.replication.layout`). */
export function levelsGeneration(s: SnapshotWithId): string | undefined {
  const r = (s.meta as { replication?: { generation?: unknown; layout?: unknown } } | undefined)?.replication;
  return r?.layout === "levels" && typeof r.generation === "string" ? r.generation : undefined;
}

interface Held {
  catalogs: StoredRecord<CatalogRecord>[];
  /** Segments in force (not replaced), by object name. */
  segments: Map<string, CatalogEntry & { header?: SegmentHeader }>;
}

const key = (e: { level: number; first: number; last: number }) => `${e.level}/${e.first}/${e.last}`;

function isNotFound(e: unknown): boolean {
  return isLifeboatError(e) && e.code === "NOT_FOUND";
}

/** What a repository holds of a generation: its catalogs, and its segments found by one listing
 * (those no catalog lists, written since the last one, are read for their header). */
async function held(repo: Repository, generation: string): Promise<Held> {
  const [a, b, catalogs] = await Promise.all([
    repo.records.objects(segmentPagesKind, generation),
    repo.records.objects(segmentRefKind, generation),
    repo.records.list(catalogKind, { label: generation, unreadable: "throw" }),
  ]);
  const objects = new Set([...a, ...b]);
  const replaced = new Set(catalogs.flatMap((c) => c.record.replaced));
  const segments: Held["segments"] = new Map();
  for (const c of catalogs)
    for (const e of c.record.segments)
      if (objects.has(e.object) && !replaced.has(e.object)) segments.set(e.object, e);
  for (const o of objects) {
    if (segments.has(o) || replaced.has(o)) continue;
    let header: SegmentHeader;
    try {
      header = await readHeader(repo, o);
    } catch (e) {
      if (isNotFound(e)) continue; // replaced since the listing
      throw e;
    }
    if (header.generation !== generation) continue;
    segments.set(o, { object: o, ...header, header });
  }
  return { catalogs, segments };
}

async function readHeader(repo: Repository, object: string): Promise<SegmentHeader> {
  if (object.startsWith(segmentPagesKind.prefix)) {
    const { data: _d, ...h } = await repo.records.read(segmentPagesKind, object);
    return h;
  }
  const { content: _c, ...h } = await repo.records.read(segmentRefKind, object);
  return h;
}

/** Segments a coarser one of the same set covers. */
function coveredIn<T extends CatalogEntry>(list: T[]): Set<T> {
  const out = new Set<T>();
  for (const s of list)
    if (list.some((t) => t.level > s.level && t.first <= s.first && t.last >= s.last)) out.add(s);
  return out;
}

export interface LevelsPlan {
  generation: string;
  /** Source segments to copy (oldest first). */
  copy: CatalogEntry[];
  /** Every segment in force in the source (level/first/last). */
  theirs: Set<string>;
  skipped: number;
}

/** Per generation, what the destination lacks of the source's segments in force. */
export async function levelsToCopy(
  src: Repository,
  dst: Repository,
  generations: Iterable<string>,
): Promise<LevelsPlan[]> {
  const out: LevelsPlan[] = [];
  for (const generation of generations) {
    const wanted = [...(await held(src, generation)).segments.values()];
    const have = new Set([...(await held(dst, generation)).segments.values()].map(key));
    const copy = wanted
      .filter((s) => !have.has(key(s)))
      .map(({ header: _h, ...e }) => e)
      .sort((a, b) => a.first - b.first || b.level - a.level);
    if (copy.length > 0 || wanted.length > 0)
      out.push({ generation, copy, theirs: new Set(wanted.map(key)), skipped: wanted.length - copy.length });
  }
  return out;
}

/** The generations in levels of the source: named by a catalog or by a snapshot. */
export async function levelsGenerations(src: Repository, snapshots: SnapshotWithId[]): Promise<string[]> {
  const ids = new Set<string>();
  for (const c of await src.records.list(catalogKind, { unreadable: "throw" })) ids.add(c.record.generation);
  for (const s of snapshots) {
    const g = levelsGeneration(s);
    if (g) ids.add(g);
  }
  return [...ids].sort();
}

/**
 * Copies one generation's planned segments, then writes the destination's catalog. A segment
 * the source replaced meanwhile (a live replicate compacted it) is skipped and reported in
 * `raced`: a later plan finds the coarser one.
 */
export async function copyLevels(
  src: Repository,
  dst: Repository,
  plan: LevelsPlan,
  onBytes: (n: number) => void,
  signal: AbortSignal | undefined,
): Promise<{ copied: number; raced: boolean }> {
  if (plan.copy.length === 0) return { copied: 0, raced: false };
  if (!dst.hasFeature("sqlite-segment-levels")) await dst.enableFeature("sqlite-segment-levels");
  const label = plan.generation;
  let copied = 0;
  let raced = false;
  let about: { source: string; hostname: string } | undefined;
  for (const e of plan.copy) {
    signal?.throwIfAborted();
    try {
      if (e.object.startsWith(segmentPagesKind.prefix)) {
        const r = await src.records.read(segmentPagesKind, e.object);
        if (r.data.length !== r.size)
          throw new CorruptionError(
            e.object,
            `segment has ${r.data.length} bytes of pages, its header says ${r.size}`,
          );
        await dst.records.write(segmentPagesKind, r, { label });
        onBytes(r.size);
        about ??= r;
      } else {
        const r = await src.records.read(segmentRefKind, e.object);
        async function* blobs(): AsyncIterable<Buffer> {
          for (const id of r.content) yield await src.loadBlob(Buffer.from(id, "hex"));
        }
        // Durable and indexed before the document that pins them (the writer scope ends first).
        const stored = await dst.withWriter((w) => storeStream(w, blobs(), onBytes));
        if (stored.size !== r.size)
          throw new CorruptionError(
            e.object,
            "its blobs do not add up to the bytes it records; nothing was copied for it",
          );
        await dst.records.write(segmentRefKind, { ...r, content: stored.content }, { label });
        about ??= r;
      }
      copied++;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      raced = true;
    }
  }
  if (about) await writeCatalog(dst, label, about, plan.theirs);
  return { copied, raced };
}

/** A catalog of every segment the destination holds of the generation; those the source no
 * longer has that a coarser one covers are listed as replaced and deleted once it is stored
 * (kept if storage refuses). */
async function writeCatalog(
  dst: Repository,
  generation: string,
  about: { source: string; hostname: string },
  theirs: Set<string>,
): Promise<void> {
  const now = await held(dst, generation);
  const all = [...now.segments.values()].map(({ header: _h, ...e }) => e);
  const covered = new Set([...coveredIn(all)].filter((e) => !theirs.has(key(e))));
  const record: CatalogRecord = {
    version: 1,
    source: about.source,
    hostname: about.hostname,
    generation,
    seq: Math.max(-1, ...now.catalogs.map((c) => c.record.seq)) + 1,
    written: new Date().toISOString(),
    machine: os.hostname(),
    pid: process.pid,
    segments: all.filter((e) => !covered.has(e)).sort((a, b) => a.first - b.first || b.level - a.level),
    replaced: [
      ...new Set([...now.catalogs.flatMap((c) => c.record.replaced), ...[...covered].map((e) => e.object)]),
    ],
  };
  await dst.records.write(catalogKind, record, { label: generation });
  for (const c of now.catalogs) await deleteQuietly(dst, c.object);
  for (const e of covered) await deleteQuietly(dst, e.object);
}

/** Deletes an object; one already gone is fine, one storage keeps (Object Lock) stays. */
async function deleteQuietly(repo: Repository, object: string): Promise<void> {
  try {
    await repo.records.delete(object);
  } catch (e) {
    if (isNotFound(e) || (isLifeboatError(e) && e.code === "PERMISSION_DENIED")) return;
    throw e;
  }
}
