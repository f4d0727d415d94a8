import os from "node:os";
import { z } from "zod";
import type { Repository } from "../../repo/repository.js";
import { ObjectKind } from "../../repo/sealed-object.js";

/**
 * Marks on snapshots, stored beside them as `acks/<id>` because snapshots are immutable and a
 * mark must not change a snapshot's id: a "pin" (guard keeps the snapshots around a failed or
 * anomalous upgrade) and an "ack" (an operator has looked at a flagged or pinned snapshot).
 */
const ackSchema = z.object({
  snapshot: z.string(),
  kind: z.enum(["ack", "pin"]).default("ack"),
  time: z.string(),
  host: z.string(),
  user: z.string(),
  note: z.string(),
});
export type Ack = z.infer<typeof ackSchema> & { id: string };

export async function acknowledge(
  repo: Repository,
  snapshot: string,
  note = "",
  kind: Ack["kind"] = "ack",
): Promise<Ack> {
  let user = "unknown";
  try {
    user = os.userInfo().username;
  } catch {}
  const doc = { snapshot, kind, time: new Date().toISOString(), host: os.hostname(), user, note };
  return { ...doc, id: await repo.writeDocument("acks/", ObjectKind.ack, doc) };
}

export async function listAcks(repo: Repository): Promise<Ack[]> {
  const out: Ack[] = [];
  for (const id of await repo.listIds("acks/")) {
    const doc = ackSchema.safeParse(
      await repo.readDocument("acks/", ObjectKind.ack, id).catch(() => undefined),
    );
    if (doc.success) out.push({ ...doc.data, id });
  }
  return out;
}

/** Snapshot ids that have been acknowledged. */
export async function acknowledgedIds(repo: Repository): Promise<Set<string>> {
  return new Set((await listAcks(repo)).filter((a) => a.kind === "ack").map((a) => a.snapshot));
}

/** Snapshot ids pinned (by guard) and not acknowledged since. */
export async function pinnedIds(repo: Repository): Promise<Set<string>> {
  const marks = await listAcks(repo);
  const acked = new Set(marks.filter((a) => a.kind === "ack").map((a) => a.snapshot));
  return new Set(marks.filter((a) => a.kind === "pin" && !acked.has(a.snapshot)).map((a) => a.snapshot));
}
