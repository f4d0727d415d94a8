import { z } from "zod";
import { defineRecordKind } from "./record-kind.js";
import { ObjectKind } from "./sealed-object.js";

/** The result of a restore drill (docs/drills.md), `drills/<id>`. */
export const drillKind = defineRecordKind({
  title: "drill record",
  prefix: "drills/",
  objectKind: ObjectKind.drill,
  schema: z.object({
    version: z.literal(1).default(1),
    /** When the drill started (ISO time). */
    time: z.string(),
    /** The snapshot drilled (full id), and its series. */
    snapshot: z.string(),
    snapshotTime: z.string().optional(),
    host: z.string(),
    paths: z.array(z.string()),
    /** Snapshot source type (`files`, `sqlite`, `postgres`, ...). */
    source: z.string(),
    /** Where the drill ran, and with what. */
    drillHost: z.string().optional(),
    program: z.string().optional(),
    /** `full`: the whole snapshot; `sample`: `sample.count` files chosen with `sample.seed`. */
    mode: z.enum(["full", "sample"]).default("full"),
    sample: z.object({ count: z.number(), seed: z.string(), of: z.number() }).optional(),
    /** Files restored and verified, and the bytes written. */
    files: z.number(),
    bytes: z.number(),
    /** Wall time of the restore including the re-hash of every restored file. */
    seconds: z.number(),
    ok: z.boolean(),
    /** How many paths failed; `failures` lists the first MAX_RECORDED_FAILURES. */
    failed: z.number().default(0),
    failures: z.array(z.object({ path: z.string(), reason: z.string() })),
    /** Database snapshots: "ok", or what the engine's check said. */
    engineCheck: z.string().optional(),
    /** Dump snapshots (PostgreSQL, MariaDB/MySQL): each database restored into a scratch database. */
    databases: z
      .array(
        z.object({
          name: z.string(),
          scratch: z.string(),
          seconds: z.number(),
          bytes: z.number(),
          tables: z.number(),
          rows: z.number(),
          check: z.string(),
        }),
      )
      .optional(),
  }),
});
export type DrillRecord = z.infer<typeof drillKind.schema>;
