import { LifeboatError } from "../../core/errors.js";
import type { Repository } from "../../repo/repository.js";
import { walBlobIds } from "../../sources/pg-pitr/wal-archive.js";
import { segmentBlobIds } from "../../sources/sqlite-replicate/segments.js";

/**
 * The ids (hex) of every tree and data blob some snapshot needs, plus the data of archived
 * PostgreSQL WAL (`wal/` records) and SQLite replication segments (`sqlite-wal/`): those are
 * needed by records, not snapshots, and must never look unused to prune. Any tree that cannot be read
 * stops the walk: deleting data on incomplete knowledge could destroy what the unread tree
 * references, so prune refuses and points at check/repair instead.
 */
export async function usedBlobs(repo: Repository): Promise<{ used: Set<string>; snapshots: number }> {
  const used = new Set<string>();
  const snapshots = await repo.listSnapshots();
  for (const s of snapshots) {
    const stack = [s.tree];
    while (stack.length > 0) {
      const t = stack.pop()!;
      if (used.has(t)) continue;
      used.add(t);
      let nodes: Awaited<ReturnType<Repository["loadTree"]>>["nodes"];
      try {
        nodes = (await repo.loadTree(t)).nodes;
      } catch (e) {
        throw new LifeboatError(
          "CORRUPTION",
          `snapshot ${s.id.slice(0, 8)} needs tree ${t.slice(0, 12)}, which cannot be read (${(e as Error).message}); nothing was deleted`,
          "run `lifeboat check`, then `lifeboat repair index` or `lifeboat repair snapshots` before pruning",
        );
      }
      for (const n of nodes) {
        if (n.subtree) stack.push(n.subtree);
        for (const c of n.content ?? []) used.add(c);
      }
    }
  }
  for (const id of await walBlobIds(repo)) used.add(id);
  for (const id of await segmentBlobIds(repo)) used.add(id);
  return { used, snapshots: snapshots.length };
}
