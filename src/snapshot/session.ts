import { endSession, startSession } from "../repo/gc-plan.js";
import type { Repository } from "../repo/repository.js";

/**
 * Runs a backup inside a session: announced before the backup decides what to deduplicate
 * against, removed when it is done (or failed). Prune never deletes packs while a session that
 * could reference them is alive; a crashed backup's session stops counting once its process is
 * gone (same host) or after a day.
 */
export async function withSession<T>(repo: Repository, f: () => Promise<T>): Promise<T> {
  const id = await startSession(repo, "backup");
  try {
    // Plans stored before the session was announced are read now (later ones wait for it), and
    // index changes a prune made since the index was loaded.
    await repo.catchUpIndex();
    return await f();
  } finally {
    await endSession(repo, id).catch(() => {});
  }
}
