import type { BlobWriter, Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import type { TreeNode } from "../../repo/tree.js";
import { withSession } from "../../snapshot/session.js";

export interface RepairedSnapshot {
  original: string;
  /** The rewritten snapshot (absent in a dry run). */
  repaired?: string;
  /** Paths whose data is lost: files with missing or damaged blobs, unreadable folders. */
  lost: string[];
}

export interface RepairSnapshotsOptions {
  dryRun?: boolean;
  /** Remove the damaged originals once their repaired copies are saved. */
  forget?: boolean;
}

/**
 * Rewrites snapshots that reference data the repository no longer has, so that everything
 * else in them stays restorable: a file with a missing blob is left out, a folder whose tree
 * cannot be read becomes empty, and each loss is listed (and kept in the snapshot's meta as
 * `repairLost`). Run `repair index` first, so that data still present is found. Snapshots
 * with nothing missing are left alone.
 */
export async function repairSnapshots(
  repo: Repository,
  options: RepairSnapshotsOptions = {},
): Promise<RepairedSnapshot[]> {
  const out: RepairedSnapshot[] = [];
  const run = async () => {
    const trees = new Map<string, { id: string; lost: string[] }>();
    // `w` is absent in a dry run: nothing is written, the same walk says what is lost.
    const fix = async (
      w: BlobWriter | undefined,
      id: string,
      at: string,
    ): Promise<{ id: string; lost: string[] }> => {
      const done = trees.get(id);
      if (done && done.lost.length === 0) return done;
      let nodes: TreeNode[];
      try {
        nodes = (await repo.loadTree(id)).nodes;
      } catch {
        const empty = w ? await w.saveTree({ nodes: [] }) : { id };
        return { id: empty.id, lost: [`${at}/ (folder contents)`] };
      }
      const lost: string[] = [];
      const kept: TreeNode[] = [];
      let changed = false;
      for (const n of nodes) {
        const p = `${at}/${n.name}`;
        if (n.type === "dir" && n.subtree) {
          const sub = await fix(w, n.subtree, p);
          for (const l of sub.lost) lost.push(l);
          if (sub.id !== n.subtree) changed = true;
          kept.push({ ...n, subtree: sub.id });
        } else if (n.type === "file" && n.content?.some((c) => !repo.isStored(Buffer.from(c, "hex")))) {
          lost.push(p);
          changed = true;
        } else kept.push(n);
      }
      const result = changed && w ? { id: (await w.saveTree({ nodes: kept })).id, lost } : { id, lost };
      trees.set(id, result);
      return result;
    };
    for (const s of await repo.listSnapshots()) {
      const { id: tree, lost } = options.dryRun
        ? await fix(undefined, s.tree, "")
        : await repo.withWriter((w) => fix(w, s.tree, ""));
      if (lost.length === 0) continue;
      const entry: RepairedSnapshot = { original: s.id, lost };
      if (!options.dryRun) {
        entry.repaired = await saveRepaired(repo, s, tree, lost);
        if (options.forget) await repo.deleteSnapshot(s.id);
      }
      out.push(entry);
    }
  };
  if (options.dryRun) await run();
  else await withSession(repo, run);
  return out;
}

async function saveRepaired(
  repo: Repository,
  s: SnapshotWithId,
  tree: string,
  lost: string[],
): Promise<string> {
  const { id: _id, ...rest } = s;
  return repo.writeSnapshot({
    ...rest,
    tree,
    tags: [...new Set([...s.tags, "repaired"])],
    incomplete: true,
    meta: { ...(s.meta ?? {}), repairedFrom: s.id, repairLost: lost.slice(0, 10_000) },
  });
}
