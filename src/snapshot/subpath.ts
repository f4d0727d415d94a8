import { LifeboatError } from "../core/errors.js";
import { displayName, parseDisplayName } from "../core/names.js";
import type { Repository } from "../repo/repository.js";
import type { Snapshot } from "../repo/snapshot.js";
import type { TreeNode } from "../repo/tree.js";

export type Resolved = { kind: "dir"; tree: string } | { kind: "node"; node: TreeNode };

/**
 * The node of a folder named `part`: the name itself, else the name a user typed in the form
 * `displayName` shows (`caf\xE9.txt` for bytes that are not UTF-8; command-line arguments
 * cannot carry such bytes).
 */
export function findByName(nodes: TreeNode[], part: string): TreeNode | undefined {
  const exact = nodes.find((n) => n.name === part);
  if (exact) return exact;
  const parsed = parseDisplayName(part);
  return parsed === part ? undefined : nodes.find((n) => n.name === parsed);
}

/** Finds `subpath` (e.g. `/home/ann/docs`) in a snapshot: a folder's tree, or a single node. */
export async function resolveSubpath(
  repo: Repository,
  snapshot: Snapshot,
  subpath: string,
): Promise<Resolved> {
  const parts = subpath.split("/").filter((p) => p !== "" && p !== ".");
  let tree = snapshot.tree;
  for (let i = 0; i < parts.length; i++) {
    const node = findByName((await repo.loadTree(tree)).nodes, parts[i]!);
    if (!node) {
      throw new LifeboatError(
        "NOT_FOUND",
        `${displayName(subpath)} is not in the snapshot`,
        "list what it holds with `lifeboat ls SNAPSHOT`",
      );
    }
    if (i === parts.length - 1 && node.type !== "dir") return { kind: "node", node };
    if (node.type !== "dir" || !node.subtree) {
      throw new LifeboatError(
        "NOT_FOUND",
        `${displayName(parts.slice(0, i + 1).join("/"))} in the snapshot is not a folder`,
      );
    }
    tree = node.subtree;
  }
  return { kind: "dir", tree };
}
