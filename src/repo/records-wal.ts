import { z } from "zod";
import { BlobType } from "./blob.js";
import { entryProblem } from "./pack.js";
import { defineRecordKind } from "./record-kind.js";
import { ObjectKind } from "./sealed-object.js";

/**
 * One archived PostgreSQL WAL file (docs/pitr.md): its bytes are ordinary data blobs; the record
 * says which, and where they were written (so `wal-fetch` reads a segment without loading the
 * index). Found by cluster and file name under `wal/<K>/<id>`, K keyed by
 * "lifeboat wal <cluster> <name>".
 */
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const count = z.number().int().min(0);

/**
 * Hints go into the index as they are (readWalRecordBytes), so they must pass what an index
 * entry must: a damaged raw length would otherwise size a restore worker's buffer.
 */
const blobHint = z
  .object({
    id: hex64,
    pack: hex64,
    offset: count,
    length: count,
    rawLength: count,
    compression: count,
  })
  .superRefine((b, ctx) => {
    const problem = entryProblem({ ...b, type: BlobType.data, id: Buffer.from(b.id, "hex") });
    if (problem) ctx.addIssue({ code: "custom", message: problem });
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
    timeline: count,
    size: count,
    /** SHA-256 (hex) of the file's bytes: checked on fetch, and to tell a repeated push apart. */
    sha256: hex64,
    /** Data blob ids in order. */
    content: z.array(hex64),
    blobs: z.array(blobHint),
    /** Segments: the database system identifier and segment size from the first page header. */
    systemId: z.string().optional(),
    segmentSize: count.optional(),
    /** When it was archived. */
    time: z.string(),
    host: z.string(),
    /** A copy made by `lifeboat copy`: `<source repository id>:<source record id>`. */
    copiedFrom: z.string().optional(),
  }),
  pins: (r) => r.content,
});
export type WalRecord = z.infer<typeof walKind.schema>;
