import { endSession, startSession } from "../../repo/gc-plan.js";
import type { Repository } from "../../repo/repository.js";

/**
 * Runs a backup inside a session: announced before the backup decides what to deduplicate
 * against, removed when it is done (or failed). Prune never deletes packs while a session that
 * could reference them is alive; a crashed backup's session goes stale after a day.
 */
export async function withSession<T>(repo: Repository, host: string, f: () => Promise<T>): Promise<T> {
  const id = await startSession(repo, host);
  try {
    // Plans written before the session started are visible now; later ones wait for it.
    await repo.refreshPlans();
    return await f();
  } finally {
    await endSession(repo, id).catch(() => {});
  }
}
