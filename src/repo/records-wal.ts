import { z } from "zod";
import { defineRecordKind } from "./record-kind.js";
import { ObjectKind } from "./sealed-object.js";

/**
 * One archived PostgreSQL WAL file (docs/pitr.md): its bytes are ordinary data blobs; the record
 * says which, and where they were written (so `wal-fetch` reads a segment without loading the
 * index). Found by cluster and file name under `wal/<K>/<id>`, K keyed by
 * "lifeboat wal <cluster> <name>".
 */
const blobHint = z.object({
  id: z.string(),
  pack: z.string(),
  offset: z.number(),
  length: z.number(),
  rawLength: z.number(),
  compression: z.number(),
});
export type WalBlobHint = z.infer<typeof blobHint>;

/** Records of one file are found by this label (keyed in storage: see RecordKind.labelTag). */
export const walLabel = (cluster: string, name: string) => `${cluster} ${name}`;

export const walKind = defineRecordKind({
  title: "WAL record",
  prefix: "wal/",
  objectKind: ObjectKind.wal,
  labelTag: "wal",
  labelOf: (r) => walLabel(r.cluster, r.name),
  schema: z.object({
    version: z.literal(1),
    cluster: z.string(),
    name: z.string(),
    kind: z.enum(["segment", "history", "backup", "partial"]),
    timeline: z.number(),
    size: z.number(),
    /** SHA-256 (hex) of the file's bytes: checked on fetch, and to tell a repeated push apart. */
    sha256: z.string(),
    /** Data blob ids in order. */
    content: z.array(z.string()),
    blobs: z.array(blobHint),
    /** Segments: the database system identifier and segment size from the first page header. */
    systemId: z.string().optional(),
    segmentSize: z.number().optional(),
    /** When it was archived. */
    time: z.string(),
    host: z.string(),
    /** A copy made by `lifeboat copy`: `<source repository id>:<source record id>`. */
    copiedFrom: z.string().optional(),
  }),
  pins: (r) => r.content,
});
export type WalRecord = z.infer<typeof walKind.schema>;
