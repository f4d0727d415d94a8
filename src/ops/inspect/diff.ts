import type { Repository } from "../../repo/repository.js";
import { compareNames, type NodeType, sameXattrs, type TreeNode } from "../../repo/tree.js";
import type { DiffSummary } from "./diff-summary.js";

/** Each tree is read once: kept out of the repository's tree cache. */
const ONCE = { keep: false };

/**
 * `+` added, `-` removed, `M` content differs (files: blob list; symlinks: target; devices: the
 * device number), `U` only metadata differs (mode, owner, mtime, extended attributes), `T` the
 * type changed (e.g. file → symlink).
 */
export type DiffModifier = "+" | "-" | "M" | "U" | "T";

export interface DiffChange {
  modifier: DiffModifier;
  /** Absolute path inside the snapshots. */
  path: string;
  /** Type in the second snapshot (the first one for removals). */
  type: NodeType;
  /** For `T`: the type in the first snapshot. */
  oldType?: NodeType;
}

export type { DiffSummary };

export interface DiffOptions {
  /** Called for each change, in path order (folders before what they hold). */
  onChange?: (c: DiffChange) => void;
}

function sameMeta(a: TreeNode, b: TreeNode): boolean {
  return (
    a.mode === b.mode &&
    a.uid === b.uid &&
    a.gid === b.gid &&
    a.mtime === b.mtime &&
    sameXattrs(a.xattrs, b.xattrs)
  );
}

function sameContent(a: TreeNode, b: TreeNode): boolean {
  if (a.type === "file") {
    const x = a.content ?? [];
    const y = b.content ?? [];
    return a.size === b.size && x.length === y.length && x.every((id, i) => id === y[i]);
  }
  if (a.type === "symlink") return a.target === b.target;
  if (a.type === "chardev" || a.type === "blockdev") return a.rdev === b.rdev;
  return true;
}

/**
 * Compares two trees (normally two snapshots' roots), walking both together in name order and
 * never descending into a subtree whose id is the same on both sides.
 */
export async function diffTrees(
  repo: Repository,
  oldTree: string,
  newTree: string,
  opts: DiffOptions = {},
): Promise<DiffSummary> {
  const summary: DiffSummary = {
    added: 0,
    removed: 0,
    modified: 0,
    metadata: 0,
    typeChanged: 0,
    bytesAdded: 0,
    bytesRemoved: 0,
  };
  const oldBlobs = new Set<string>();
  const newBlobs = new Set<string>();
  const emit = (c: DiffChange) => {
    if (c.modifier === "+") summary.added++;
    else if (c.modifier === "-") summary.removed++;
    else if (c.modifier === "M") summary.modified++;
    else if (c.modifier === "U") summary.metadata++;
    else summary.typeChanged++;
    opts.onChange?.(c);
  };
  const collect = (n: TreeNode, into: Set<string>) => {
    for (const id of n.content ?? []) into.add(id);
  };

  /** Everything below an added or removed folder. */
  const whole = async (tree: string, prefix: string, modifier: "+" | "-") => {
    const into = modifier === "+" ? newBlobs : oldBlobs;
    for (const n of (await repo.loadTree(tree, ONCE)).nodes) {
      const p = `${prefix}/${n.name}`;
      emit({ modifier, path: p, type: n.type });
      collect(n, into);
      if (n.type === "dir" && n.subtree) await whole(n.subtree, p, modifier);
    }
  };
  const one = async (n: TreeNode, p: string, modifier: "+" | "-") => {
    emit({ modifier, path: p, type: n.type });
    collect(n, modifier === "+" ? newBlobs : oldBlobs);
    if (n.type === "dir" && n.subtree) await whole(n.subtree, p, modifier);
  };

  const walk = async (a: string, b: string, prefix: string) => {
    if (a === b) return;
    const x = (await repo.loadTree(a, ONCE)).nodes;
    const y = (await repo.loadTree(b, ONCE)).nodes;
    let i = 0;
    let j = 0;
    while (i < x.length || j < y.length) {
      const na = x[i];
      const nb = y[j];
      const cmp = !na ? 1 : !nb ? -1 : compareNames(na.name, nb.name);
      if (cmp < 0) {
        await one(na!, `${prefix}/${na!.name}`, "-");
        i++;
      } else if (cmp > 0) {
        await one(nb!, `${prefix}/${nb!.name}`, "+");
        j++;
      } else {
        const o = na!;
        const n = nb!;
        const p = `${prefix}/${n.name}`;
        i++;
        j++;
        if (o.type !== n.type) {
          emit({ modifier: "T", path: p, type: n.type, oldType: o.type });
          collect(o, oldBlobs);
          collect(n, newBlobs);
          if (o.type === "dir" && o.subtree) await whole(o.subtree, p, "-");
          if (n.type === "dir" && n.subtree) await whole(n.subtree, p, "+");
          continue;
        }
        if (!sameContent(o, n)) {
          emit({ modifier: "M", path: p, type: n.type });
          collect(o, oldBlobs);
          collect(n, newBlobs);
        } else if (!sameMeta(o, n)) {
          emit({ modifier: "U", path: p, type: n.type });
        }
        if (n.type === "dir" && o.subtree && n.subtree) await walk(o.subtree, n.subtree, p);
      }
    }
  };
  await walk(oldTree, newTree, "");

  const rawSize = (id: string) => repo.lookup(Buffer.from(id, "hex"))?.rawLength ?? 0;
  for (const id of newBlobs) if (!oldBlobs.has(id)) summary.bytesAdded += rawSize(id);
  for (const id of oldBlobs) if (!newBlobs.has(id)) summary.bytesRemoved += rawSize(id);
  return summary;
}
