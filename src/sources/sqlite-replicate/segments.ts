import { CorruptionError } from "../../core/errors.js";
import { type SegmentRecord, segmentKind } from "../../repo/records-segment.js";
import { catalogKind } from "../../repo/records-segment-levels.js";
import type { BlobWriter, Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { storeStream } from "../../snapshot/store-file.js";

/**
 * A segment: the WAL frames shipped in one interval, as a sealed document under `sqlite-wal/`
 * (kind 9) plus data blobs with the pages. The pages are kept in their last committed version
 * within the segment (a page rewritten by 1,000 transactions in a second is stored once), so a
 * restore can stop after any segment but not inside one.
 */
export const SEGMENT_PREFIX = "sqlite-wal/";

export type SegmentDoc = SegmentRecord;

/** What a full snapshot made by `replicate` records in its meta. */
export interface ReplicationMeta {
  generation: string;
  /** WAL position the generation's first segment starts at (the snapshot is at or after it). */
  wal: { salt1: number; salt2: number; checkpointSeq: number; offset: number };
  pageSize: number;
  /** "levels": the generation's segments are in levels (sqlite-seg/, sqlite-segref/, found
   * through its catalog sqlite-gen/); absent: in sqlite-wal/ (before levels). */
  layout?: "levels";
}

export function replicationOf(s: SnapshotWithId): ReplicationMeta | undefined {
  const r = (s.meta as { replication?: ReplicationMeta } | undefined)?.replication;
  return r && typeof r.generation === "string" ? r : undefined;
}

/** Stores the pages as the segment payload; returns content ids and size. */
export async function storePages(
  w: BlobWriter,
  pages: Map<number, Buffer>,
  dbPages: number,
): Promise<{ content: string[]; size: number; count: number }> {
  const numbers = [...pages.keys()].filter((p) => p <= dbPages).sort((a, b) => a - b);
  async function* records(): AsyncIterable<Buffer> {
    for (const p of numbers) {
      const head = Buffer.alloc(4);
      head.writeUInt32BE(p, 0);
      yield head;
      yield pages.get(p)!;
    }
  }
  const r = await storeStream(w, records(), () => {});
  return { ...r, count: numbers.length };
}

/** Reads a segment's payload back as (page number, page) pairs, verifying its size. */
export async function* segmentPages(
  repo: Repository,
  doc: SegmentDoc,
  id: string,
): AsyncGenerator<{ pgno: number; page: Buffer }> {
  const rec = 4 + doc.pageSize;
  let carry = Buffer.alloc(0);
  let total = 0;
  for (const c of doc.content) {
    const b = await repo.loadBlob(Buffer.from(c, "hex"));
    total += b.length;
    let data = carry.length > 0 ? Buffer.concat([carry, b]) : b;
    while (data.length >= rec) {
      yield { pgno: data.readUInt32BE(0), page: data.subarray(4, rec) };
      data = data.subarray(rec);
    }
    carry = Buffer.from(data);
  }
  if (total !== doc.size || carry.length !== 0) {
    throw new CorruptionError(
      `${SEGMENT_PREFIX}${id}`,
      `segment ${doc.index} of generation ${doc.generation} has ${total} bytes of pages, its document says ${doc.size}`,
    );
  }
}

export interface StoredSegment {
  id: string;
  /** Object name (`sqlite-wal/<id>`). */
  object: string;
  doc: SegmentDoc;
}

/** Every segment document of a source (all generations; every source when undefined). */
export async function listSegments(repo: Repository, source: string | undefined): Promise<StoredSegment[]> {
  const out = (await repo.records.list(segmentKind, { unreadable: "throw" }))
    .filter((r) => source === undefined || r.record.source === source)
    .map((r) => ({ id: r.id, object: r.object, doc: r.record }));
  return out.sort((a, b) =>
    a.doc.generation === b.doc.generation
      ? a.doc.index - b.doc.index
      : a.doc.generation < b.doc.generation
        ? -1
        : 1,
  );
}

export async function writeSegment(repo: Repository, doc: SegmentDoc): Promise<StoredSegment> {
  const r = await repo.records.write(segmentKind, doc);
  return { id: r.id, object: r.object, doc };
}

/** Whether the repository holds any replication segment or generation (of any source). */
export async function anySegments(repo: Repository): Promise<boolean> {
  return (
    (await repo.records.objects(catalogKind)).length > 0 ||
    (await repo.records.objects(segmentKind)).length > 0
  );
}
