import os from "node:os";
import { z } from "zod";
import { isStorageId } from "./config.js";
import type { Repository } from "./repository.js";
import { ObjectKind } from "./sealed-object.js";

/**
 * Prune's two phases, stored in the repository so that no lock is needed (see docs/gc.md):
 * - a session (`sessions/<id>`) marks a running backup (or prune);
 * - a deletion plan (`gc/<id>`) names packs nothing needed when it was written, and the
 *   backup sessions that were alive then (`waitFor`). Backups that start later see the plan and
 *   do not deduplicate against its packs; the plan is carried out only once every session it
 *   waits for has ended, so no running backup can lose data it references.
 */
const planSchema = z.object({
  created: z.string(),
  host: z.string(),
  packs: z.array(z.string()),
  waitFor: z.array(z.string()),
});
export type Plan = z.infer<typeof planSchema> & { id: string };

const sessionSchema = z.object({
  started: z.string(),
  host: z.string(),
  pid: z.number(),
  kind: z.enum(["backup", "prune"]).default("backup"),
});
export type Session = z.infer<typeof sessionSchema> & { id: string };

/** A session older than this is taken to be a crashed process and no longer holds prune back. */
export const SESSION_STALE_MS = 24 * 3600_000;

async function ids(repo: Repository, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of repo.backend.list(prefix)) {
    const id = o.name.slice(prefix.length);
    if (isStorageId(id)) out.push(id);
  }
  return out;
}

export async function listPlans(repo: Repository): Promise<Plan[]> {
  const out: Plan[] = [];
  for (const id of await ids(repo, "gc/")) {
    const doc = planSchema.safeParse(
      await repo.readDocument("gc/", ObjectKind.gcPlan, id).catch(() => undefined),
    );
    if (doc.success) out.push({ ...doc.data, id });
  }
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
    repo.writeDocument("gc/", ObjectKind.gcPlan, {
      created: now.toISOString(),
      host: os.hostname(),
      packs,
      waitFor,
    });
  let waitFor = await backups();
  let id = await write(waitFor);
  for (;;) {
    const more = (await backups()).filter((s) => !waitFor.includes(s));
    if (more.length === 0) return { created: now.toISOString(), host: os.hostname(), packs, waitFor, id };
    waitFor = [...waitFor, ...more];
    const next = await write(waitFor);
    await deletePlan(repo, id);
    id = next;
  }
}

export async function deletePlan(repo: Repository, id: string): Promise<void> {
  await repo.backend.delete(`gc/${id}`);
}

export async function startSession(repo: Repository, kind: Session["kind"] = "backup"): Promise<string> {
  return repo.writeDocument("sessions/", ObjectKind.session, {
    started: new Date().toISOString(),
    host: os.hostname(),
    pid: process.pid,
    kind,
  });
}

export async function endSession(repo: Repository, id: string): Promise<void> {
  await repo.backend.delete(`sessions/${id}`);
}

/** Whether a process of this host with that pid is running (other hosts: assume yes). */
function mayBeRunning(s: Session): boolean {
  if (s.host !== os.hostname()) return true;
  if (s.pid === process.pid) return true;
  try {
    process.kill(s.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Sessions that may still be running, oldest first: not older than SESSION_STALE_MS, and, for
 * this host, whose process still exists (a backup killed with -9 does not hold prune back).
 */
export async function liveSessions(repo: Repository, now = Date.now()): Promise<Session[]> {
  const out: Session[] = [];
  for (const id of await ids(repo, "sessions/")) {
    const doc = sessionSchema.safeParse(
      await repo.readDocument("sessions/", ObjectKind.session, id).catch(() => undefined),
    );
    if (!doc.success) continue;
    const s = { ...doc.data, id };
    if (now - Date.parse(s.started) < SESSION_STALE_MS && mayBeRunning(s)) out.push(s);
  }
  return out.sort((a, b) => (a.started < b.started ? -1 : a.started > b.started ? 1 : a.id < b.id ? -1 : 1));
}
