import { LifeboatError } from "../../core/errors.js";
import type { Repository } from "../../repo/repository.js";
import { walkTree } from "../../snapshot/walker.js";

/**
 * The ids (hex) of every tree and data blob some snapshot needs, plus the blobs records pin
 * (archived PostgreSQL WAL, SQLite replication segments, ...): those are needed by records, not
 * snapshots, and must never look unused to prune. Any tree that cannot be read stops the walk:
 * deleting data on incomplete knowledge could destroy what the unread tree references, so prune
 * refuses and points at check/repair instead.
 */
export async function usedBlobs(repo: Repository): Promise<{ used: Set<string>; snapshots: number }> {
  const used = new Set<string>();
  const snapshots = await repo.listSnapshots();
  // A backup stores its index files before its snapshot: a snapshot stored after this prune
  // loaded the index has its blobs in files read now (found by the soak at 100 rounds).
  await repo.catchUpIndex();
  for (const s of snapshots) {
    await walkTree(repo, s.tree, {
      enterTree(t) {
        if (used.has(t)) return false;
        used.add(t);
        return true;
      },
      node(n) {
        for (const c of n.content ?? []) used.add(c);
        return undefined;
      },
      unreadable(t, _path, e) {
        throw new LifeboatError(
          "CORRUPTION",
          `snapshot ${s.id.slice(0, 8)} needs tree ${t.slice(0, 12)}, which cannot be read (${(e as Error).message}); nothing was deleted`,
          "run `lifeboat check`, then `lifeboat repair index` or `lifeboat repair snapshots` before pruning",
        );
      },
    });
  }
  for (const id of await repo.records.pinnedBlobs()) used.add(id);
  return { used, snapshots: snapshots.length };
}
