import type { Repository } from "../repo/repository.js";
import type { TreeNode } from "../repo/tree.js";

/**
 * What a walk does at each step. Every callback may be async; the walk waits for it, so nodes
 * are visited one at a time in tree order (depth first, a folder's node before its contents).
 */
export interface WalkVisitor {
  /** Before a tree's nodes are read. Return false to skip the tree (e.g. one already seen). */
  enterTree?(treeId: string, path: string): boolean | Promise<boolean>;
  /** Each node; `path` is the parent's path + "/" + name. Return false to not enter a folder. */
  node?(node: TreeNode, path: string): boolean | undefined | Promise<boolean | undefined>;
  /** A tree that cannot be read. Without this callback the error is thrown. */
  unreadable?(treeId: string, path: string, error: unknown): void | Promise<void>;
}

export interface WalkOptions {
  /** The path of the walked tree itself ("" for a snapshot's root: its nodes are `/name`). */
  path?: string;
  signal?: AbortSignal;
  /** False for a walk that reads each tree once (it skips trees it has seen): the trees then
   * stay out of the repository's tree cache instead of filling it. */
  keepTrees?: boolean;
}

/**
 * The one tree walker: visits every node below `treeId` through the repository (every tree is
 * read and verified once per visit; the repository caches recent ones).
 */
export async function walkTree(
  repo: Repository,
  treeId: string,
  visitor: WalkVisitor,
  options: WalkOptions = {},
): Promise<void> {
  const keep = { keep: options.keepTrees !== false };
  const walk = async (id: string, at: string): Promise<void> => {
    options.signal?.throwIfAborted();
    if (visitor.enterTree && !(await visitor.enterTree(id, at))) return;
    let nodes: TreeNode[];
    try {
      nodes = (await repo.loadTree(id, keep)).nodes;
    } catch (e) {
      if (!visitor.unreadable) throw e;
      await visitor.unreadable(id, at, e);
      return;
    }
    for (const n of nodes) {
      const p = `${at}/${n.name}`;
      const enter = visitor.node ? await visitor.node(n, p) : undefined;
      if (enter !== false && n.type === "dir" && n.subtree) await walk(n.subtree, p);
    }
  };
  await walk(treeId, options.path ?? "");
}

/** Every node below a tree, with its path, as a list (for small trees: database snapshots). */
export async function listNodes(
  repo: Repository,
  treeId: string,
  keep: (node: TreeNode, path: string) => boolean,
): Promise<{ path: string; node: TreeNode }[]> {
  const out: { path: string; node: TreeNode }[] = [];
  await walkTree(repo, treeId, {
    node(n, p) {
      if (keep(n, p)) out.push({ path: p, node: n });
      return undefined;
    },
  });
  return out;
}
