import { z } from "zod";
import { defineRecordKind } from "./record-kind.js";
import { ObjectKind } from "./sealed-object.js";

/**
 * The per-account catalogue (format feature `fleet-accounts`): one small record per snapshot of a
 * fleet's account, at `accounts/<K>/<id>` with K = HMAC(id key, "lifeboat account <account id>").
 * An account's snapshots are found by listing its own folder, never every snapshot of the
 * repository, and storage never learns account ids. The snapshot document stays the truth: an
 * entry whose snapshot is gone (forgotten by a plain `forget`) is skipped and dropped by readers.
 */
export const accountEntryKind = defineRecordKind({
  title: "account catalogue entry",
  prefix: "accounts/",
  objectKind: ObjectKind.accountEntry,
  labelTag: "account",
  schema: z.object({
    version: z.literal(1),
    fleet: z.string(),
    account: z.string(),
    /** Full id of the snapshot, and its time (ISO). */
    snapshot: z.string().regex(/^[0-9a-f]{64}$/),
    time: z.string(),
    /** The scheduling window the snapshot was taken for (`2025-03-09T01:00[Europe/Berlin]`). */
    window: z.string().optional(),
    /** What the account's snapshot is of: `folder`, `rows`, `imap`, `dav`. */
    kind: z.string(),
    paths: z.array(z.string()),
    /** Change-detection fingerprint of the account's data when the snapshot was taken. */
    fingerprint: z.string().optional(),
  }),
});
export type AccountEntry = z.infer<typeof accountEntryKind.schema>;
