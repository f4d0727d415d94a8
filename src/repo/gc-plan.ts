import os from "node:os";
import { mapLimit } from "../core/concurrency.js";
import { CorruptionError, isLifeboatError } from "../core/errors.js";
import { mayStillRun, processIdentity } from "../core/process-identity.js";
import { needsFullKey } from "./key-ring.js";
import type { StoredRecord } from "./record-store.js";
import { type PlanRecord, planKind, type SessionRecord, sessionKind } from "./records-gc.js";
import type { Repository } from "./repository.js";

/**
 * Prune's two phases, stored in the repository so that no lock is needed (see docs/gc.md):
 * - a session (`sessions/<id>`) marks a running backup (or prune);
 * - a deletion plan (`gc/<id>`) names packs nothing needed when it was written, and the
 *   backup sessions that were alive then (`waitFor`). Backups that start later see the plan and
 *   do not deduplicate against its packs; the plan is carried out only once every session it
 *   waits for has ended, so no running backup can lose data it references.
 */
export type Plan = PlanRecord & { id: string; object: string };
export type Session = SessionRecord & { id: string; object: string };

/** A session older than this is taken to be a crashed process and no longer holds prune back. */
export const SESSION_STALE_MS = 24 * 3600_000;

export async function listPlans(repo: Repository): Promise<Plan[]> {
  const out = (await repo.records.list(planKind)).map((r) => ({ ...r.record, id: r.id, object: r.object }));
  return out.sort((a, b) => (a.created < b.created ? -1 : 1));
}

/**
 * Writes a plan that waits for every backup session alive once it is visible. Sessions are
 * listed after the plan is stored: a session not yet listed then announces itself later and so
 * reads the plan (see withSession). If new sessions appeared meanwhile, the plan is rewritten
 * to wait for them too, so the result does not depend on any clock.
 */
export async function writePlan(repo: Repository, packs: string[], now = new Date()): Promise<Plan> {
  const backups = async () => (await liveSessions(repo)).filter((s) => s.kind === "backup").map((s) => s.id);
  const write = (waitFor: string[]) =>
    repo.records.write(planKind, { created: now.toISOString(), host: os.hostname(), packs, waitFor });
  let waitFor = await backups();
  let plan = await write(waitFor);
  for (;;) {
    const more = (await backups()).filter((s) => !waitFor.includes(s));
    if (more.length === 0) return { ...plan.record, id: plan.id, object: plan.object };
    waitFor = [...waitFor, ...more];
    const next = await write(waitFor);
    await repo.records.delete(plan.object);
    plan = next;
  }
}

/**
 * Replaces a plan, after a sweep, by one that keeps only the packs storage refused to delete
 * (under retention), with the dates their retention ends. It waits for no session: its packs
 * are out of the index already, and no backup deduplicates against a planned pack.
 */
export async function replacePlan(
  repo: Repository,
  plan: Plan,
  retained: Map<string, { until?: string; mode?: string }>,
): Promise<Plan> {
  const record: PlanRecord = {
    created: plan.created,
    host: os.hostname(),
    packs: [...retained.keys()],
    waitFor: [],
    retained: Object.fromEntries(retained),
  };
  const r = await repo.records.write(planKind, record);
  await repo.records.delete(plan.object);
  return { ...r.record, id: r.id, object: r.object };
}

export async function deletePlan(repo: Repository, plan: Plan): Promise<void> {
  await repo.records.delete(plan.object);
}

/** A session this process announced: pass it to endSession. */
export interface SessionHandle {
  id: string;
  object: string;
}

/**
 * The sessions this process holds, and how many it is announcing right now. A record with this
 * process's pid that it does not hold is left over from an announcement whose answer was lost
 * (the record was stored, the write still failed) or from an end whose delete failed: it must
 * not hold prune back for a day in a long-running process (a daemon). While an announcement is
 * in flight its id is not known yet, so every record of this pid counts as running then.
 */
const held = new Set<string>();
let announcing = 0;

/** Announces a running backup or prune. */
export async function startSession(
  repo: Repository,
  kind: Session["kind"] = "backup",
): Promise<SessionHandle> {
  if (kind === "prune" && repo.keyKind !== "full") throw needsFullKey("prune (it reads every snapshot)");
  announcing++;
  try {
    const r = await repo.records.write(sessionKind, {
      started: new Date().toISOString(),
      host: os.hostname(),
      pid: process.pid,
      kind,
      ...(ownIdentity !== undefined ? { proc: ownIdentity } : {}),
    });
    held.add(r.id);
    return { id: r.id, object: r.object };
  } finally {
    announcing--;
  }
}

/**
 * Sessions this process has ended. Their records are deleted, but a delete can fail (a lost
 * connection, storage that refuses it) and a record left behind with this process's own pid
 * would otherwise look alive for as long as the process runs (a daemon: forever).
 */
const ended = new Map<string, number>();

export async function endSession(repo: Repository, session: SessionHandle): Promise<void> {
  const now = Date.now();
  // Past a day a left-behind record is stale anyway (SESSION_STALE_MS): no need to remember it.
  for (const [id, at] of ended) if (now - at > SESSION_STALE_MS) ended.delete(id);
  ended.set(session.id, now);
  held.delete(session.id);
  await repo.records.delete(session.object);
}

const ownIdentity = processIdentity(process.pid);

/**
 * Whether the process of this host that stored the session is running (other hosts: assume
 * yes). A session that names its process's identity (boot id and start time) is alive only if
 * that pid's process has the same identity: the pid of a process killed with -9 may belong to
 * another process by now.
 */
function mayBeRunning(s: Session): boolean {
  if (s.host !== os.hostname()) return true;
  if (s.pid === process.pid && (s.proc === undefined || s.proc === ownIdentity))
    return held.has(s.id) || announcing > 0;
  return mayStillRun(s.pid, s.proc);
}

/**
 * Sessions that may still be running, oldest first: not older than SESSION_STALE_MS, and, for
 * this host, whose process still exists (a backup killed with -9 does not hold prune back).
 */
export async function liveSessions(repo: Repository, now = Date.now()): Promise<Session[]> {
  const out: Session[] = [];
  for (const r of await readSessions(repo, now)) {
    const s = { ...r.record, id: r.id, object: r.object };
    if (ended.has(s.id)) continue;
    if (now - Date.parse(s.started) < SESSION_STALE_MS && mayBeRunning(s)) out.push(s);
  }
  return out.sort((a, b) => (a.started < b.started ? -1 : a.started > b.started ? 1 : a.id < b.id ? -1 : 1));
}

/**
 * Every session record. One that cannot be read (damaged) may announce a backup that is
 * running: it counts as one, of an unknown host, so prune waits rather than delete data under
 * it (`check` names it; once no backup runs, deleting it lets prune go on).
 */
async function readSessions(repo: Repository, now: number): Promise<StoredRecord<SessionRecord>[]> {
  const read = await mapLimit(
    await repo.records.objects(sessionKind),
    16,
    async (object): Promise<StoredRecord<SessionRecord> | undefined> => {
      const id = object.split("/").at(-1)!;
      try {
        return { id, object, record: await repo.records.read(sessionKind, object) };
      } catch (e) {
        if (isLifeboatError(e) && e.code === "NOT_FOUND") return undefined; // ended meanwhile
        if (!(e instanceof CorruptionError)) throw e;
        const started = new Date(now).toISOString();
        return {
          id,
          object,
          record: { started, host: "(unreadable session record)", pid: 0, kind: "backup" },
        };
      }
    },
  );
  return read.filter((r): r is StoredRecord<SessionRecord> => r !== undefined);
}
