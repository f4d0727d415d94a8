import { z } from "zod";
import { defineRecordKind } from "./record-kind.js";
import { ObjectKind } from "./sealed-object.js";

/**
 * Continuous SQLite replication in levels (docs/replication.md "Levels", docs/format.md): a
 * segment covers the interval segments `first`..`last` of its generation — one of them at level
 * 0, every one whose read finished in one window of its level above (30 s, 5 min, 1 h by
 * default) — with the last committed version of each page over that range. Three families, all
 * labelled by the generation (one listing finds a generation's records, never the whole family):
 *
 * - `sqlite-seg/<K>/<id>` (kind 11): a segment with its pages inline after the header (binary,
 *   see `segmentCodec`); pins nothing, so it is deleted outright once replaced;
 * - `sqlite-segref/<K>/<id>` (kind 12): a segment whose pages are data blobs (large ones); pins them;
 * - `sqlite-gen/<K>/<id>` (kind 13): the generation's catalog, which segments are in force with
 *   their ranges and times, so a restore reads only the segments it applies.
 *
 * K = hex HMAC-SHA-256(id key, "lifeboat sqlite-gen " + generation) for all three.
 */
export const GENERATION_LABEL_TAG = "sqlite-gen";

const walPoint = z.object({
  salt1: z.number(),
  salt2: z.number(),
  checkpointSeq: z.number(),
  offset: z.number(),
});
export type WalPoint = z.infer<typeof walPoint>;

export const segmentHeader = z.object({
  version: z.literal(1),
  /** `sqlite:/abs/path`, as the generation's snapshot. */
  source: z.string(),
  hostname: z.string(),
  generation: z.string(),
  /** 0: one shipping interval; 1, 2, ...: merged over one window of that level. */
  level: z.number().int().min(0),
  /** Interval segments covered, first..last (0, 1, 2, ... within the generation). */
  first: z.number().int().min(0),
  last: z.number().int().min(0),
  /** Where the first covered interval began reading the WAL, and where the last one ended. */
  walStart: walPoint,
  walEnd: walPoint,
  /** The first covered interval was the first read from a restarted WAL (walStart.offset = 32). */
  walRestarted: z.boolean(),
  pageSize: z.number().int(),
  /** Smallest database size (pages) over the range: restore cuts the file to it before writing
   * the pages, then sets it to `dbPages`. */
  minDbPages: z.number().int().min(0),
  /** Database size in pages after the last commit. */
  dbPages: z.number().int().min(0),
  frames: z.number(),
  commits: z.number(),
  /** Pages stored: each page written in the range, in its last version (pages above a later cut
   * that were not written again are left out). */
  pages: z.number(),
  /** Every transaction in the range committed after this time (the first interval's read began
   * after the previous one's), and before this one (the last interval's read had finished). */
  commitsAfter: z.string(),
  commitsBefore: z.string(),
  storedAt: z.string(),
  /** Bytes of page records: page number (u32 big-endian) + page, ascending page numbers. */
  size: z.number().int().min(0),
});
export type SegmentHeader = z.infer<typeof segmentHeader>;

/** Sealed plaintext of kind 11: header length u32 BE | header JSON (UTF-8) | page records. */
export const segmentCodec = {
  encode(r: SegmentHeader & { data: Buffer }): Buffer {
    const { data, ...header } = r;
    const json = Buffer.from(JSON.stringify(header), "utf8");
    const len = Buffer.alloc(4);
    len.writeUInt32BE(json.length, 0);
    return Buffer.concat([len, json, data]);
  },
  decode(plain: Buffer): unknown {
    if (plain.length < 4) throw new Error("short");
    const n = plain.readUInt32BE(0);
    if (4 + n > plain.length) throw new Error("short");
    const header = JSON.parse(plain.subarray(4, 4 + n).toString("utf8")) as Record<string, unknown>;
    return { ...header, data: plain.subarray(4 + n) };
  },
};

export const segmentPagesKind = defineRecordKind({
  title: "replication segment",
  prefix: "sqlite-seg/",
  objectKind: ObjectKind.sqliteSegment,
  labelTag: GENERATION_LABEL_TAG,
  schema: segmentHeader.extend({ data: z.instanceof(Buffer) }),
  codec: segmentCodec,
});
export type SegmentPagesRecord = z.infer<typeof segmentPagesKind.schema>;

export const segmentRefKind = defineRecordKind({
  title: "replication segment",
  prefix: "sqlite-segref/",
  objectKind: ObjectKind.sqliteSegmentRef,
  labelTag: GENERATION_LABEL_TAG,
  schema: segmentHeader.extend({ content: z.array(z.string()) }),
  pins: (r) => r.content,
});
export type SegmentRefRecord = z.infer<typeof segmentRefKind.schema>;

export const catalogEntry = z.object({
  /** Object name of the segment (`sqlite-seg/<K>/<id>` or `sqlite-segref/<K>/<id>`). */
  object: z.string(),
  level: z.number().int().min(0),
  first: z.number().int().min(0),
  last: z.number().int().min(0),
  commitsAfter: z.string(),
  commitsBefore: z.string(),
  size: z.number().int().min(0),
});
export type CatalogEntry = z.infer<typeof catalogEntry>;

export const catalogKind = defineRecordKind({
  title: "replication catalog",
  prefix: "sqlite-gen/",
  objectKind: ObjectKind.sqliteCatalog,
  labelTag: GENERATION_LABEL_TAG,
  schema: z.object({
    version: z.literal(1),
    source: z.string(),
    hostname: z.string(),
    generation: z.string(),
    /** Each rewrite adds one; the writer deletes the older catalogs after writing a new one. */
    seq: z.number().int().min(0),
    written: z.string(),
    /** The process that maintains the generation (machine name and pid): another replicate of the
     * same database on this machine takes it over once that process is gone. */
    machine: z.string(),
    pid: z.number().int(),
    /** Segments in force when the catalog was written (later ones are found by the listing). */
    segments: z.array(catalogEntry),
    /** Segments replaced by coarser ones whose deletion the storage refused (Object Lock): skipped
     * by readers, deleted again later. */
    replaced: z.array(z.string()),
  }),
});
export type CatalogRecord = z.infer<typeof catalogKind.schema>;
