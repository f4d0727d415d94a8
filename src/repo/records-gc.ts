import { z } from "zod";
import { defineRecordKind } from "./record-kind.js";
import { ObjectKind } from "./sealed-object.js";

/**
 * The two record families of prune's lock-free protocol (docs/gc.md):
 * - a session (`sessions/<id>`) marks a running backup (or prune);
 * - a deletion plan (`gc/<id>`) names packs nothing needed when it was written, and the backup
 *   sessions alive then (`waitFor`).
 */
export const planKind = defineRecordKind({
  title: "prune plan",
  prefix: "gc/",
  objectKind: ObjectKind.gcPlan,
  schema: z.object({
    created: z.string(),
    host: z.string(),
    packs: z.array(z.string()),
    waitFor: z.array(z.string()),
    /**
     * Packs of the plan whose deletion storage refused because they are under Object Lock
     * retention, with the date (ISO) it ends and its mode: the plan stays until they are
     * deleted. Compliance retention cannot be lifted, so no prune tries before its date;
     * governance retention and legal holds can be lifted at any time, so every prune tries.
     * Absent when none was refused.
     */
    retained: z
      .record(z.string(), z.object({ until: z.string().optional(), mode: z.string().optional() }))
      .optional(),
  }),
});
export type PlanRecord = z.infer<typeof planKind.schema>;

export const sessionKind = defineRecordKind({
  title: "session",
  prefix: "sessions/",
  objectKind: ObjectKind.session,
  schema: z.object({
    started: z.string(),
    host: z.string(),
    pid: z.number(),
    kind: z.enum(["backup", "prune"]).default("backup"),
    /**
     * Which process of that pid it was (Linux: boot id and the process's start time in clock
     * ticks): a pid reused by another process after a kill -9 then no longer looks alive.
     * Optional; versions that do not know it ignore it and check the pid alone.
     */
    proc: z.string().optional(),
  }),
});
export type SessionRecord = z.infer<typeof sessionKind.schema>;
