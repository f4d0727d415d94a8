import os from "node:os";
import { type AckRecord, ackKind } from "../../repo/records-ack.js";
import type { Repository } from "../../repo/repository.js";

/**
 * Marks on snapshots (see repo/records/ack-records.ts): a "pin" keeps the snapshots around a
 * failed or anomalous upgrade; an "ack" says an operator has looked at a flagged or pinned one.
 */
export type Ack = AckRecord & { id: string };

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
  return { ...doc, id: (await repo.records.write(ackKind, doc)).id };
}

/**
 * Every pin and acknowledgement. An acknowledgement a write-only key wrote is left out: it
 * would let a flagged or pinned snapshot go, and whoever holds a write-only key could have
 * written it; its pins count (they only keep more).
 */
export async function listAcks(repo: Repository): Promise<Ack[]> {
  if (repo.keyKind === "write-only") return []; // it cannot read them (nor needs to)
  return (await repo.records.list(ackKind))
    .filter((r) => r.writer === undefined || r.record.kind === "pin")
    .map((r) => ({ ...r.record, id: r.id }));
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
