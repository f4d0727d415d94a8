import { z } from "zod";
import { defineRecordKind } from "./record-kind.js";
import { ObjectKind } from "./sealed-object.js";

/**
 * A segment of continuous SQLite replication (docs/replication.md): the WAL frames shipped in one
 * interval, as a record under `sqlite-wal/` plus data blobs with the pages (records of page
 * number, u32 big-endian, followed by the page, in page order).
 */
const count = z.number().int().min(0);
const u32 = count.max(0xffffffff);
const isoTime = z.string().refine((t) => !Number.isNaN(Date.parse(t)), "not a time");

export const segmentKind = defineRecordKind({
  title: "replication segment",
  prefix: "sqlite-wal/",
  objectKind: ObjectKind.sqliteWal,
  // Every field checked: restore trusts them (a pageSize of -4 would make its 4 + pageSize
  // records never advance, a missing content list would be a TypeError).
  schema: z.object({
    version: z.literal(1),
    /** `sqlite:/abs/path` — the same name the full snapshots are recorded under. */
    source: z.string(),
    hostname: z.string(),
    /** Random hex id; a generation starts with a full snapshot (meta.replication.generation). */
    generation: z.string(),
    /** 0, 1, 2 ... within the generation, with no gaps. */
    index: count,
    /** The WAL the frames were read from (its header) and the byte range in it. */
    wal: z.object({
      salt1: u32,
      salt2: u32,
      checkpointSeq: u32,
      start: count,
      end: count,
    }),
    /** True when this segment is the first one read from a restarted WAL (start = 32). */
    walRestarted: z.boolean(),
    /** SQLite's page sizes: a power of two from 512 to 65536. */
    pageSize: z
      .number()
      .int()
      .min(512)
      .max(65536)
      .refine((n) => (n & (n - 1)) === 0, "not a power of two"),
    /** Database size in pages after the segment's last commit. */
    dbPages: u32,
    frames: count,
    commits: count,
    /** Distinct pages stored (their last committed version in this segment). */
    pages: count,
    /** Every transaction in the segment committed after this time (ISO; the previous read began). */
    commitsAfter: isoTime,
    /** ... and before this time (ISO; the read of the WAL had finished). Restore --time uses it. */
    commitsBefore: isoTime,
    /** When the segment's data was durable in the repository, just before this record was written. */
    storedAt: isoTime,
    /** Payload size in bytes, and its data blob ids. */
    size: count,
    content: z.array(z.string().regex(/^[0-9a-f]{64}$/)),
    /** A copy made by `lifeboat copy`: `<source repository id>:<source record id>`. */
    copiedFrom: z.string().optional(),
  }),
  pins: (r) => r.content,
});
export type SegmentRecord = z.infer<typeof segmentKind.schema>;
