import { LifeboatError } from "../../core/errors.js";
import { displayName, isByteName, nameToBytes } from "../../core/names.js";
import type { Repository } from "../../repo/repository.js";
import type { Snapshot } from "../../repo/snapshot.js";
import { compareNames, type Tree, type TreeNode } from "../../repo/tree.js";
import { resolveSubpath } from "../../snapshot/subpath.js";
import type { FolderEntry } from "./folder-entry.js";

/**
 * One page of a folder of a snapshot, for file-manager views (the web console's browser): a
 * folder of 100,000 entries is read once (the repository caches its tree) and answered page by
 * page, sorted and filtered here rather than shipped whole.
 */
export type FolderSort = "name" | "size" | "mtime" | "type";

export interface FolderPageOptions {
  offset?: number;
  limit?: number;
  sort?: FolderSort;
  order?: "asc" | "desc";
  /** Only names containing this text (case-insensitive). */
  filter?: string;
}

export type { FolderEntry };

export interface FolderPage {
  /** The folder, as a clean absolute path inside the snapshot (`/` for the root). */
  path: string;
  /** Entries in the folder matching the filter (all of them without one). */
  total: number;
  offset: number;
  entries: FolderEntry[];
}

/** Largest page served at once; a client asking for more is told so (not silently cut). */
export const MAX_FOLDER_PAGE = 5000;

/** Sorted orders of big folders, kept as long as the repository keeps the tree itself. */
const orders = new WeakMap<Tree, Map<string, TreeNode[]>>();

const typeRank: Record<TreeNode["type"], number> = {
  dir: 0,
  file: 1,
  symlink: 2,
  fifo: 3,
  chardev: 4,
  blockdev: 5,
};

function sorted(tree: Tree, sort: FolderSort, order: "asc" | "desc"): TreeNode[] {
  if (sort === "name" && order === "asc") return tree.nodes; // trees are stored sorted by name
  const key = `${sort}:${order}`;
  let byKey = orders.get(tree);
  const known = byKey?.get(key);
  if (known) return known;
  const cmp: (a: TreeNode, b: TreeNode) => number =
    sort === "size"
      ? (a, b) => (a.size ?? 0) - (b.size ?? 0)
      : sort === "mtime"
        ? (a, b) => (BigInt(a.mtime) < BigInt(b.mtime) ? -1 : BigInt(a.mtime) > BigInt(b.mtime) ? 1 : 0)
        : sort === "type"
          ? (a, b) => typeRank[a.type] - typeRank[b.type]
          : () => 0;
  const sign = order === "desc" ? -1 : 1;
  // Ties keep name order (ascending), so pages never shuffle between requests.
  const out = [...tree.nodes].sort((a, b) => sign * cmp(a, b) || sign * compareNames(a.name, b.name));
  if (!byKey) {
    byKey = new Map();
    orders.set(tree, byKey);
  }
  byKey.set(key, out);
  return out;
}

export function folderEntry(n: TreeNode): FolderEntry {
  const b64 = (s: string) => nameToBytes(s).toString("base64");
  return {
    name: displayName(n.name),
    ...(isByteName(n.name) ? { nameBytes: b64(n.name) } : {}),
    type: n.type,
    size: n.size ?? 0,
    mtime: new Date(Number(BigInt(n.mtime) / 1_000_000n)).toISOString(),
    mode: n.mode,
    uid: n.uid,
    gid: n.gid,
    ...(n.target !== undefined ? { target: displayName(n.target) } : {}),
    ...(n.target !== undefined && isByteName(n.target) ? { targetBytes: b64(n.target) } : {}),
  };
}

/** Normalises a path inside a snapshot; `..` is refused (there is no parent to climb to). */
export function cleanSnapshotPath(p: string): string {
  const parts = p.split("/").filter((x) => x !== "" && x !== ".");
  if (parts.some((x) => x === ".." || x.includes("\0")))
    throw new LifeboatError("USAGE", `${JSON.stringify(p)} is not a path inside a snapshot`, "give /a/b/c");
  return `/${parts.join("/")}`;
}

/** A page of the folder at `path` in `snapshot` (NOT_FOUND when it is missing or not a folder). */
export async function listFolder(
  repo: Repository,
  snapshot: Snapshot,
  path: string,
  options: FolderPageOptions = {},
): Promise<FolderPage> {
  const clean = cleanSnapshotPath(path);
  const offset = options.offset ?? 0;
  const limit = options.limit ?? 500;
  if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(limit) || limit < 1)
    throw new LifeboatError("USAGE", "offset and limit must be whole numbers (limit at least 1)");
  if (limit > MAX_FOLDER_PAGE)
    throw new LifeboatError("USAGE", `limit ${limit} is above ${MAX_FOLDER_PAGE}`, "ask for smaller pages");
  const at = await resolveSubpath(repo, snapshot, clean);
  if (at.kind !== "dir")
    throw new LifeboatError("NOT_FOUND", `${clean} in the snapshot is not a folder`, "open its folder");
  const tree = await repo.loadTree(at.tree);
  let nodes = sorted(tree, options.sort ?? "name", options.order ?? "asc");
  const f = options.filter?.toLowerCase();
  if (f) nodes = nodes.filter((n) => displayName(n.name).toLowerCase().includes(f));
  return {
    path: clean,
    total: nodes.length,
    offset,
    entries: nodes.slice(offset, offset + limit).map(folderEntry),
  };
}

/** The node at `path` (a file, folder or symlink) with its entry, or NOT_FOUND. */
export async function statInSnapshot(
  repo: Repository,
  snapshot: Snapshot,
  path: string,
): Promise<{ path: string; node: TreeNode | undefined; tree: string | undefined }> {
  const clean = cleanSnapshotPath(path);
  const at = await resolveSubpath(repo, snapshot, clean);
  if (at.kind === "node") return { path: clean, node: at.node, tree: undefined };
  if (clean === "/") return { path: clean, node: undefined, tree: at.tree };
  const parentPath = clean.slice(0, clean.lastIndexOf("/")) || "/";
  const parent = await resolveSubpath(repo, snapshot, parentPath);
  const name = clean.slice(clean.lastIndexOf("/") + 1);
  const node =
    parent.kind === "dir" ? (await repo.loadTree(parent.tree)).nodes.find((n) => n.name === name) : undefined;
  return { path: clean, node, tree: at.tree };
}
