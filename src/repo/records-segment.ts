import { z } from "zod";
import { defineRecordKind } from "./record-kind.js";
import { ObjectKind } from "./sealed-object.js";

/**
 * A segment of continuous SQLite replication (docs/replication.md): the WAL frames shipped in one
 * interval, as a record under `sqlite-wal/` plus data blobs with the pages (records of page
 * number, u32 big-endian, followed by the page, in page order).
 */
export const segmentKind = defineRecordKind({
  title: "replication segment",
  prefix: "sqlite-wal/",
  objectKind: ObjectKind.sqliteWal,
  schema: z.object({
    version: z.literal(1),
    /** `sqlite:/abs/path` — the same name the full snapshots are recorded under. */
    source: z.string(),
    hostname: z.string(),
    /** Random hex id; a generation starts with a full snapshot (meta.replication.generation). */
    generation: z.string(),
    /** 0, 1, 2 ... within the generation, with no gaps. */
    index: z.number().int(),
    /** The WAL the frames were read from (its header) and the byte range in it. */
    wal: z.object({
      salt1: z.number(),
      salt2: z.number(),
      checkpointSeq: z.number(),
      start: z.number(),
      end: z.number(),
    }),
    /** True when this segment is the first one read from a restarted WAL (start = 32). */
    walRestarted: z.boolean(),
    pageSize: z.number().int(),
    /** Database size in pages after the segment's last commit. */
    dbPages: z.number().int(),
    frames: z.number(),
    commits: z.number(),
    /** Distinct pages stored (their last committed version in this segment). */
    pages: z.number(),
    /** Every transaction in the segment committed after this time (ISO; the previous read began). */
    commitsAfter: z.string(),
    /** ... and before this time (ISO; the read of the WAL had finished). Restore --time uses it. */
    commitsBefore: z.string(),
    /** When the segment's data was durable in the repository, just before this record was written. */
    storedAt: z.string(),
    /** Payload size in bytes, and its data blob ids. */
    size: z.number(),
    content: z.array(z.string()),
    /** A copy made by `lifeboat copy`: `<source repository id>:<source record id>`. */
    copiedFrom: z.string().optional(),
  }),
  pins: (r) => r.content,
});
export type SegmentRecord = z.infer<typeof segmentKind.schema>;
