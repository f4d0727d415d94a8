import { LifeboatError } from "../core/errors.js";
import type { Repository } from "../repo/repository.js";
import type { Snapshot } from "../repo/snapshot.js";
import type { TreeNode } from "../repo/tree.js";

export type Resolved = { kind: "dir"; tree: string } | { kind: "node"; node: TreeNode };

/** Finds `subpath` (e.g. `/home/ann/docs`) in a snapshot: a folder's tree, or a single node. */
export async function resolveSubpath(
  repo: Repository,
  snapshot: Snapshot,
  subpath: string,
): Promise<Resolved> {
  const parts = subpath.split("/").filter((p) => p !== "" && p !== ".");
  let tree = snapshot.tree;
  for (let i = 0; i < parts.length; i++) {
    const node = (await repo.loadTree(tree)).nodes.find((n) => n.name === parts[i]);
    if (!node) {
      throw new LifeboatError(
        "NOT_FOUND",
        `${subpath} is not in the snapshot`,
        "list what it holds with `lifeboat ls SNAPSHOT`",
      );
    }
    if (i === parts.length - 1 && node.type !== "dir") return { kind: "node", node };
    if (node.type !== "dir" || !node.subtree) {
      throw new LifeboatError(
        "NOT_FOUND",
        `${parts.slice(0, i + 1).join("/")} in the snapshot is not a folder`,
      );
    }
    tree = node.subtree;
  }
  return { kind: "dir", tree };
}
