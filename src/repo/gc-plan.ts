import { z } from "zod";
import { isStorageId } from "./config.js";
import type { Repository } from "./repository.js";
import { ObjectKind } from "./sealed-object.js";

/**
 * Prune's two phases, stored in the repository so that no lock is needed (see docs/gc.md):
 * - a deletion plan (`gc/<id>`) names packs nothing needed when it was written; backups that
 *   start afterwards do not deduplicate against them;
 * - a session (`sessions/<id>`) marks a running backup; a plan is carried out only when no
 *   session older than the plan is alive, so no running backup can lose data it references.
 */
const planSchema = z.object({ created: z.string(), host: z.string(), packs: z.array(z.string()) });
export type Plan = z.infer<typeof planSchema> & { id: string };

const sessionSchema = z.object({ started: z.string(), host: z.string(), pid: z.number() });
export type Session = z.infer<typeof sessionSchema> & { id: string };

/** A session older than this is taken to be a crashed backup and no longer holds prune back. */
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
  return out;
}

export async function writePlan(
  repo: Repository,
  packs: string[],
  host: string,
  now = new Date(),
): Promise<Plan> {
  const doc = { created: now.toISOString(), host, packs };
  return { ...doc, id: await repo.writeDocument("gc/", ObjectKind.gcPlan, doc) };
}

export async function startSession(repo: Repository, host: string): Promise<string> {
  return repo.writeDocument("sessions/", ObjectKind.session, {
    started: new Date().toISOString(),
    host,
    pid: process.pid,
  });
}

export async function endSession(repo: Repository, id: string): Promise<void> {
  await repo.backend.delete(`sessions/${id}`);
}

/** Sessions that are not stale, oldest first. */
export async function liveSessions(repo: Repository, now = Date.now()): Promise<Session[]> {
  const out: Session[] = [];
  for (const id of await ids(repo, "sessions/")) {
    const doc = sessionSchema.safeParse(
      await repo.readDocument("sessions/", ObjectKind.session, id).catch(() => undefined),
    );
    if (doc.success && now - Date.parse(doc.data.started) < SESSION_STALE_MS) out.push({ ...doc.data, id });
  }
  return out.sort((a, b) => (a.started < b.started ? -1 : 1));
}
