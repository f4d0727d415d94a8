import { z } from "zod";
import { defineRecordKind } from "./record-kind.js";
import { ObjectKind } from "./sealed-object.js";

/**
 * Marks on snapshots, stored beside them as `acks/<id>` because snapshots are immutable and a
 * mark must not change a snapshot's id: a "pin" (guard keeps the snapshots around a failed or
 * anomalous upgrade) and an "ack" (an operator has looked at a flagged or pinned snapshot).
 */
export const ackKind = defineRecordKind({
  title: "acknowledgement",
  prefix: "acks/",
  objectKind: ObjectKind.ack,
  schema: z.object({
    snapshot: z.string(),
    kind: z.enum(["ack", "pin"]).default("ack"),
    time: z.string(),
    host: z.string(),
    user: z.string(),
    note: z.string(),
  }),
});
export type AckRecord = z.infer<typeof ackKind.schema>;
