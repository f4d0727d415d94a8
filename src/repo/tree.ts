import { CorruptionError } from "../core/errors.js";

/**
 * A directory listing. Trees are blobs whose plaintext is canonical JSON: `{"nodes":[...]}` with
 * nodes sorted by the UTF-8 bytes of their names and keys in the fixed order of `NODE_KEYS`,
 * absent fields omitted, no whitespace. Equal directories therefore encode to equal bytes and
 * deduplicate across snapshots and hosts.
 */
export type NodeType = "file" | "dir" | "symlink";

export interface TreeNode {
  name: string;
  type: NodeType;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time, nanoseconds since the epoch, as a decimal string. */
  mtime: string;
  /** Status-change time (ns); used only to notice changes, never restored. */
  ctime?: string;
  /** Inode and device (decimal strings) to notice changes and to rebuild hard links. */
  inode?: string;
  device?: string;
  /** Hard link count, present when > 1. */
  links?: number;
  /** Files: byte size and the data blob ids (hex) of the content, in order. */
  size?: number;
  content?: string[];
  /** Directories: the tree blob id (hex). */
  subtree?: string;
  /** Symlinks: the link target as stored. */
  target?: string;
}

export interface Tree {
  nodes: TreeNode[];
}

const NODE_KEYS = [
  "name",
  "type",
  "mode",
  "uid",
  "gid",
  "mtime",
  "ctime",
  "inode",
  "device",
  "links",
  "size",
  "content",
  "subtree",
  "target",
] as const;

/** Whether two nodes encode to the same bytes (every field of NODE_KEYS equal). */
export function sameNode(a: TreeNode, b: TreeNode): boolean {
  for (const k of NODE_KEYS) {
    const x = a[k];
    const y = b[k];
    if (x === y) continue;
    if (!Array.isArray(x) || !Array.isArray(y) || x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  return true;
}

export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

export function encodeTree(tree: Tree): Buffer {
  const nodes = [...tree.nodes].sort((a, b) => compareNames(a.name, b.name));
  const parts: string[] = [];
  for (const n of nodes) {
    const fields: string[] = [];
    for (const k of NODE_KEYS) {
      const v = n[k];
      if (v !== undefined) fields.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`{${fields.join(",")}}`);
  }
  return Buffer.from(`{"nodes":[${parts.join(",")}]}`, "utf8");
}

const hex64 = /^[0-9a-f]{64}$/;
const decimal = /^-?[0-9]+$/;

/** Parses and validates a tree read from the repository; malformed trees are corruption. */
export function decodeTree(buf: Buffer, what: string): Tree {
  let raw: unknown;
  try {
    raw = JSON.parse(buf.toString("utf8"));
  } catch {
    throw new CorruptionError(what, "tree is not valid JSON");
  }
  const bad = (d: string) => new CorruptionError(what, `malformed tree: ${d}`);
  if (typeof raw !== "object" || raw === null || !Array.isArray((raw as Tree).nodes)) throw bad("no nodes");
  const nodes: TreeNode[] = [];
  const count = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  for (const r of (raw as { nodes: unknown[] }).nodes) {
    if (typeof r !== "object" || r === null) throw bad("node is not an object");
    const n = r as Record<string, unknown>;
    if (typeof n.name !== "string") throw bad("node without a name");
    // JSON.stringify, not String(): a value like {"toString": null} cannot be made a string.
    if (n.type !== "file" && n.type !== "dir" && n.type !== "symlink")
      throw bad(`unknown node type ${JSON.stringify(n.type)}`);
    // u32, as the system calls that restore them take (2^53 passes Number.isInteger).
    for (const k of ["mode", "uid", "gid"] as const) {
      if (!count(n[k]) || (n[k] as number) > 0xffffffff)
        throw bad(`${k} of ${n.name} is not a 32-bit integer`);
    }
    if (typeof n.mtime !== "string" || !decimal.test(n.mtime)) throw bad(`mtime of ${n.name}`);
    // Optional fields, when present, are what TreeNode says (readers compare and convert them).
    for (const k of ["ctime", "inode", "device"] as const)
      if (n[k] !== undefined && (typeof n[k] !== "string" || !decimal.test(n[k])))
        throw bad(`${k} of ${n.name}`);
    if (n.links !== undefined && !count(n.links)) throw bad(`links of ${n.name}`);
    if (n.size !== undefined && !count(n.size)) throw bad(`size of ${n.name}`);
    if (n.content !== undefined) {
      if (!Array.isArray(n.content)) throw bad(`content of ${n.name}`);
      for (const c of n.content)
        if (typeof c !== "string" || !hex64.test(c)) throw bad(`content id in ${n.name}`);
    }
    if (n.subtree !== undefined && (typeof n.subtree !== "string" || !hex64.test(n.subtree)))
      throw bad(`subtree of ${n.name}`);
    if (n.target !== undefined && typeof n.target !== "string") throw bad(`target of ${n.name}`);
    if (n.type === "file" && (n.size === undefined || n.content === undefined))
      throw bad(`file ${n.name} lacks size or content`);
    if (n.type === "dir" && n.subtree === undefined) throw bad(`dir ${n.name} subtree`);
    if (n.type === "symlink" && n.target === undefined) throw bad(`symlink ${n.name} target`);
    nodes.push(n as unknown as TreeNode);
  }
  return { nodes };
}

/**
 * A name is safe to create inside a directory only if it is one ordinary path component.
 * Restore refuses anything else, whatever a (possibly crafted) snapshot says.
 */
export function isSafeName(name: string): boolean {
  return name.length > 0 && name !== "." && name !== ".." && !name.includes("/") && !name.includes("\0");
}
