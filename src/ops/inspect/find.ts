import { LifeboatError } from "../../core/errors.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import type { TreeNode } from "../../repo/tree.js";

/** Each tree is read once (the memo below keeps what repeats): not kept in the tree cache. */
const ONCE = { keep: false };

/**
 * Glob to regular expression: `*` any run of characters except `/`, `**` any run including `/`,
 * `?` one character except `/`, `[abc]` / `[a-z]` / `[!abc]` a class, `\x` a literal x.
 */
export function globToRegExp(glob: string, ignoreCase = false): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === "*") {
      if (glob[i + 1] === "*") {
        re += ".*";
        i++;
      } else re += "[^/]*";
    } else if (ch === "?") re += "[^/]";
    else if (ch === "\\" && i + 1 < glob.length) {
      re += escapeRe(glob[++i]!);
    } else if (ch === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end < 0) {
        re += "\\[";
        continue;
      }
      let body = glob.slice(i + 1, end);
      const negate = body[0] === "!" || body[0] === "^";
      if (negate) body = body.slice(1);
      re += `[${negate ? "^" : ""}${body.replace(/[\\\]^]/g, (c) => `\\${c}`)}]`;
      i = end;
    } else re += escapeRe(ch);
  }
  try {
    return new RegExp(`^${re}$`, ignoreCase ? "is" : "s");
  } catch {
    throw new LifeboatError("USAGE", `${JSON.stringify(glob)} is not a valid pattern`);
  }
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

export interface FindOptions {
  /** Match the patterns against the whole path (`/home/ann/*.txt`) instead of the name. */
  matchPath?: boolean;
  ignoreCase?: boolean;
}

export interface FindMatch {
  snapshot: SnapshotWithId;
  path: string;
  node: TreeNode;
}

interface Rel {
  rel: string;
  node: TreeNode;
}

/** Trees whose match list is larger than this are not memoised (walked again instead). */
const MEMO_LIMIT = 1000;

/**
 * Finds nodes matching any pattern in each snapshot, in tree order, calling `onMatch` for each.
 * A tree known to hold no match is never read again; a tree's (small) list of matches is
 * remembered, so a subtree shared by many snapshots is walked once.
 */
export async function findInSnapshots(
  repo: Repository,
  snapshots: SnapshotWithId[],
  patterns: string[],
  onMatch: (m: FindMatch) => void,
  opts: FindOptions = {},
): Promise<number> {
  const res = patterns.map((p) => globToRegExp(p, opts.ignoreCase));
  // Name matches do not depend on where a tree sits; path matches do, so the key includes it.
  const key = (tree: string, prefix: string) => (opts.matchPath ? `${tree}\0${prefix}` : tree);
  const empty = new Set<string>();
  const memo = new Map<string, Rel[]>();

  const walk = async (tree: string, prefix: string): Promise<Rel[] | undefined> => {
    const k = key(tree, prefix);
    if (empty.has(k)) return [];
    const known = memo.get(k);
    if (known) return known;
    const found: Rel[] = [];
    let complete = true;
    for (const n of (await repo.loadTree(tree, ONCE)).nodes) {
      const p = `${prefix}/${n.name}`;
      const subject = opts.matchPath ? p : n.name;
      if (res.some((r) => r.test(subject))) found.push({ rel: `/${n.name}`, node: n });
      if (n.type === "dir" && n.subtree) {
        const sub = await walk(n.subtree, p);
        if (!sub) return undefined;
        for (const s of sub) found.push({ rel: `/${n.name}${s.rel}`, node: s.node });
      }
      if (found.length > MEMO_LIMIT) {
        complete = false;
        break;
      }
    }
    if (!complete) return undefined;
    if (found.length === 0) empty.add(k);
    else memo.set(k, found);
    return found;
  };

  /** Streams matches of a tree too large to memoise. */
  const stream = async (tree: string, prefix: string, snap: SnapshotWithId): Promise<number> => {
    const small = await walk(tree, prefix);
    if (small) {
      for (const m of small) onMatch({ snapshot: snap, path: `${prefix}${m.rel}`, node: m.node });
      return small.length;
    }
    let count = 0;
    for (const n of (await repo.loadTree(tree, ONCE)).nodes) {
      const p = `${prefix}/${n.name}`;
      const subject = opts.matchPath ? p : n.name;
      if (res.some((r) => r.test(subject))) {
        onMatch({ snapshot: snap, path: p, node: n });
        count++;
      }
      if (n.type === "dir" && n.subtree) count += await stream(n.subtree, p, snap);
    }
    return count;
  };

  let total = 0;
  for (const snap of snapshots) total += await stream(snap.tree, "", snap);
  return total;
}
