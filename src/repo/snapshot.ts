import { z } from "zod";
import { CorruptionError, schemaProblem } from "../core/errors.js";

/** A snapshot document (JSON inside a sealed object of kind "snapshot"). */
export const snapshotSchema = z.object({
  version: z.literal(1),
  time: z.string(),
  tree: z.string().regex(/^[0-9a-f]{64}$/),
  paths: z.array(z.string()),
  hostname: z.string(),
  username: z.string(),
  uid: z.number().int().optional(),
  gid: z.number().int().optional(),
  tags: z.array(z.string()).default([]),
  parent: z.string().optional(),
  /** Set when some files could not be read; `errors` lists them. */
  incomplete: z.boolean().default(false),
  errors: z.array(z.string()).default([]),
  /** Files that kept changing while read: stored as read, listed here. */
  changedWhileReading: z.array(z.string()).default([]),
  excludes: z.array(z.string()).default([]),
  /** True when extended attributes were read (absent: they were not, as before format feature
   *  `xattrs`); a later backup reuses a parent's attributes only then. */
  xattrs: z.boolean().optional(),
  /** Why this snapshot looks like a wipe or mass overwrite compared with its parent (guard);
   *  empty when it does not. Flagged snapshots hold back retention until acknowledged. */
  anomalies: z.array(z.string()).optional(),
  program: z.string(),
  /** Source type for non-file snapshots (`sqlite`, `postgres`, `imap`, ...); absent for files. */
  source: z.string().optional(),
  /** Source-specific facts (a WAL position, IMAP UIDVALIDITY per folder, ...). */
  meta: z.record(z.string(), z.unknown()).optional(),
  /** Fleet snapshots (format feature `fleet-accounts`): the account and its fleet. */
  account: z.string().optional(),
  fleet: z.string().optional(),
  summary: z
    .object({
      files: z.number(),
      dirs: z.number(),
      bytes: z.number(),
      filesNew: z.number(),
      filesChanged: z.number(),
      filesUnchanged: z.number(),
      blobsAdded: z.number(),
      bytesAdded: z.number(),
      bytesStored: z.number(),
      durationMs: z.number(),
    })
    .optional(),
});
export type Snapshot = z.infer<typeof snapshotSchema>;

export interface SnapshotWithId extends Snapshot {
  id: string;
  /** The write-only key that wrote it (its key id); absent when a full key did. Not stored in
   * the document: it is who signed the object (docs/format.md, "Write-only keys"). */
  writer?: string;
}

export function decodeSnapshot(buf: Buffer, what: string): Snapshot {
  try {
    return snapshotSchema.parse(JSON.parse(buf.toString("utf8")));
  } catch (e) {
    throw new CorruptionError(what, `malformed snapshot: ${schemaProblem(e)}`);
  }
}
