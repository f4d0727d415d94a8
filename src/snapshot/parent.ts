import { findSnapshot, matchesFilter } from "../repo/find-snapshot.js";
import type { Repository } from "../repo/repository.js";
import type { SnapshotWithId } from "../repo/snapshot.js";
import type { TreeNode } from "../repo/tree.js";
import type { ParentLookup } from "./source.js";

/**
 * The parent of a new snapshot: the one named (`--parent`), or the newest snapshot of the same
 * host and paths. Unchanged files are taken from it without reading them — so a full key never
 * takes one a write-only key wrote (whoever holds that key could have written any file list),
 * and a write-only key knows only its own (repository.ts, from its host cache).
 */
export async function findParent(
  repo: Repository,
  ref: string | undefined,
  host: string,
  paths: string[],
): Promise<SnapshotWithId | undefined> {
  // A full id (a fleet account's parent, from its catalogue) is read directly: no listing.
  if (ref && /^[0-9a-f]{64}$/.test(ref)) return repo.loadSnapshot(ref);
  if (ref) return findSnapshot(repo, ref);
  const all = await repo.listSnapshots();
  const trusted = (s: SnapshotWithId) => s.writer === undefined || s.writer === repo.keyId;
  return all.filter((s) => trusted(s) && matchesFilter(s, { host, paths })).at(-1);
}

/** Resolves relative paths in the parent snapshot, caching trees along the way. */
export function parentLookup(repo: Repository, parent: SnapshotWithId | undefined): ParentLookup {
  const byName = new Map<string, Map<string, TreeNode>>();
  const children = async (tree: string) => {
    let m = byName.get(tree);
    if (!m) {
      m = new Map((await repo.loadTree(tree)).nodes.map((n) => [n.name, n]));
      byName.set(tree, m);
    }
    return m;
  };
  return async (p: string) => {
    if (!parent) return undefined;
    const parts = p.split("/").filter(Boolean);
    let tree = parent.tree;
    for (let i = 0; i < parts.length; i++) {
      const node = (await children(tree)).get(parts[i]!);
      if (!node) return undefined;
      if (i === parts.length - 1) return node;
      if (node.type !== "dir" || !node.subtree) return undefined;
      tree = node.subtree;
    }
    return undefined;
  };
}
