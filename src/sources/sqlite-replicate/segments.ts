import { CorruptionError } from "../../core/errors.js";
import type { Repository } from "../../repo/repository.js";
import { ObjectKind } from "../../repo/sealed-object.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { storeStream } from "../../snapshot/store-file.js";

/**
 * A segment: the WAL frames shipped in one interval, as a sealed document under `sqlite-wal/`
 * (kind 9) plus data blobs with the pages. The pages are kept in their last committed version
 * within the segment (a page rewritten by 1,000 transactions in a second is stored once), so a
 * restore can stop after any segment but not inside one.
 */
export const SEGMENT_PREFIX = "sqlite-wal/";

export interface SegmentDoc {
  version: 1;
  /** `sqlite:/abs/path` — the same name the full snapshots are recorded under. */
  source: string;
  hostname: string;
  /** Random hex id; a generation starts with a full snapshot (meta.replication.generation). */
  generation: string;
  /** 0, 1, 2 ... within the generation, with no gaps. */
  index: number;
  /** The WAL the frames were read from (its header) and the byte range in it. */
  wal: { salt1: number; salt2: number; checkpointSeq: number; start: number; end: number };
  /** True when this segment is the first one read from a restarted WAL (start = 32). */
  walRestarted: boolean;
  pageSize: number;
  /** Database size in pages after the segment's last commit. */
  dbPages: number;
  frames: number;
  commits: number;
  /** Distinct pages stored (their last committed version in this segment). */
  pages: number;
  /** Every transaction in the segment committed after this time (ISO; the previous read began). */
  commitsAfter: string;
  /** ... and before this time (ISO; the read of the WAL had finished). Restore --time uses it. */
  commitsBefore: string;
  /** When the segment's data was durable in the repository, just before this document was written. */
  storedAt: string;
  /** Payload: records of page number (u32 big-endian) followed by the page, in page order. */
  size: number;
  content: string[];
}

/** What a full snapshot made by `replicate` records in its meta. */
export interface ReplicationMeta {
  generation: string;
  /** WAL position the generation's first segment starts at (the snapshot is at or after it). */
  wal: { salt1: number; salt2: number; checkpointSeq: number; offset: number };
  pageSize: number;
}

export function replicationOf(s: SnapshotWithId): ReplicationMeta | undefined {
  const r = (s.meta as { replication?: ReplicationMeta } | undefined)?.replication;
  return r && typeof r.generation === "string" ? r : undefined;
}

/** Stores the pages as the segment payload; returns content ids and size. */
export async function storePages(
  repo: Repository,
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
  const r = await storeStream(repo, records(), () => {});
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
  doc: SegmentDoc;
}

/** Every segment document of a source (all generations; every source when undefined), read in parallel. */
export async function listSegments(repo: Repository, source: string | undefined): Promise<StoredSegment[]> {
  const ids = await repo.listIds(SEGMENT_PREFIX);
  const out: StoredSegment[] = [];
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next++]!;
      const doc = (await repo.readDocument(SEGMENT_PREFIX, ObjectKind.sqliteWal, id).catch((e: unknown) => {
        // Deleted by retention between the listing and the read.
        if ((e as { code?: string }).code === "NOT_FOUND") return undefined;
        throw e;
      })) as SegmentDoc | undefined;
      if (doc && (source === undefined || doc.source === source)) out.push({ id, doc });
    }
  };
  await Promise.all(Array.from({ length: Math.min(32, ids.length) }, worker));
  return out.sort((a, b) =>
    a.doc.generation === b.doc.generation
      ? a.doc.index - b.doc.index
      : a.doc.generation < b.doc.generation
        ? -1
        : 1,
  );
}

export async function writeSegment(repo: Repository, doc: SegmentDoc): Promise<string> {
  return repo.writeDocument(SEGMENT_PREFIX, ObjectKind.sqliteWal, doc);
}

/**
 * The data blob ids (hex) every stored segment references. `prune` keeps what snapshots need;
 * replication segments are not snapshots, so prune must add these to what it keeps.
 */
export async function segmentBlobIds(repo: Repository): Promise<Set<string>> {
  const used = new Set<string>();
  for (const s of await listSegments(repo, undefined)) for (const c of s.doc.content) used.add(c);
  return used;
}
