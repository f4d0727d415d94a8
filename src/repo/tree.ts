import { CorruptionError } from "../core/errors.js";
import { isByteName, lossyName, nameFromBytes, nameToBytes } from "../core/names.js";
import type { FeatureName } from "./features.js";
import type { NodeType } from "./node-type.js";

/**
 * A directory listing. Trees are blobs whose plaintext is canonical JSON: `{"nodes":[...]}` with
 * nodes sorted by the bytes of their names and keys in the fixed order of `NODE_KEYS`, absent
 * fields omitted, no whitespace. Equal directories therefore encode to equal bytes and
 * deduplicate across snapshots and hosts.
 *
 * Names (and symlink targets, and attribute names) are kept exactly, as bytes: in memory as the
 * strings of core/names.ts, in a tree as UTF-8 when they are UTF-8, else as a readable `name`
 * plus `nameBytes` (base64 of the bytes, format feature `byte-names`). Fields added after
 * version 1 appear only on the nodes that need them, so every tree an older version wrote
 * encodes to the same bytes as before.
 */
export type { NodeType };

/** Types stored with format feature `special-files`. */
export const SPECIAL_TYPES: readonly NodeType[] = ["fifo", "chardev", "blockdev"];

/** One extended attribute: its name (in the form of core/names.ts) and its value in base64. */
export interface Xattr {
  name: string;
  value: string;
}

export interface TreeNode {
  /** One path component, exactly (core/names.ts: bytes that are not UTF-8 are lone surrogates). */
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
  /** Symlinks: the link target, exactly (in the form of core/names.ts). */
  target?: string;
  /** Character and block devices: the device number (st_rdev, decimal). */
  rdev?: string;
  /** Extended attributes (POSIX ACLs and SELinux labels among them), sorted by name bytes. */
  xattrs?: Xattr[];
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
  "rdev",
  "xattrs",
] as const;

export function sameXattrs(x: Xattr[] | undefined, y: Xattr[] | undefined): boolean {
  if (x === y) return true;
  if (!x || !y || x.length !== y.length) return false;
  return x.every((a, i) => a.name === y[i]!.name && a.value === y[i]!.value);
}

const SCALAR_KEYS = NODE_KEYS.filter((k) => k !== "xattrs");

/** Whether two nodes encode to the same bytes (every field of NODE_KEYS equal). */
export function sameNode(a: TreeNode, b: TreeNode): boolean {
  if (!sameXattrs(a.xattrs, b.xattrs)) return false;
  for (const k of SCALAR_KEYS) {
    const x = a[k];
    const y = b[k];
    if (x === y) continue;
    if (!Array.isArray(x) || !Array.isArray(y) || x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  return true;
}

/** Canonical order: by the bytes of the names (the raw bytes for names that are not UTF-8). */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(nameToBytes(a), nameToBytes(b));
}

/** Sorted by name bytes, as trees store them. */
export function sortXattrs(xattrs: Xattr[]): Xattr[] {
  return [...xattrs].sort((a, b) => compareNames(a.name, b.name));
}

/** `"<key>":` for every node key: built once, not per field. */
const KEY_PREFIX = Object.fromEntries(NODE_KEYS.map((k) => [k, `${JSON.stringify(k)}:`])) as Record<
  (typeof NODE_KEYS)[number],
  string
>;

/** `"<key>":<readable>` and, for a string that is not UTF-8, `"<key>Bytes":"<base64>"`. */
function exactString(key: "name" | "target", s: string): string {
  const base = KEY_PREFIX[key] + JSON.stringify(lossyName(s));
  return isByteName(s) ? `${base},"${key}Bytes":"${nameToBytes(s).toString("base64")}"` : base;
}

/**
 * The canonical bytes of a tree (see the module comment). Built as one string, field by field:
 * a list of fields per node joined at the end allocated more than anything else on a backup's
 * main thread (69 MiB for a mail store's 30,300 files); the bytes are the same (format vectors).
 */
export function encodeTree(tree: Tree): Buffer {
  const nodes = [...tree.nodes].sort((a, b) => compareNames(a.name, b.name));
  let out = '{"nodes":[';
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i]!;
    out += i === 0 ? "{" : ",{";
    let first = true;
    for (const k of NODE_KEYS) {
      const v = n[k];
      if (v === undefined) continue;
      if (!first) out += ",";
      first = false;
      if (k === "name" || k === "target") out += exactString(k, v as string);
      else if (k === "xattrs") {
        const list = sortXattrs(v as Xattr[]).map(
          (x) => `{${exactString("name", x.name)},"value":${JSON.stringify(x.value)}}`,
        );
        out += `"xattrs":[${list.join(",")}]`;
      } else out += KEY_PREFIX[k] + JSON.stringify(v);
    }
    out += "}";
  }
  out += "]}";
  return Buffer.from(out, "utf8");
}

/** Whether a node is one version 1 could hold (no format feature needed); the common case,
 * checked without allocating. */
export function isVersion1Node(n: TreeNode): boolean {
  return (
    n.xattrs === undefined &&
    (n.type === "file" || n.type === "dir" || n.type === "symlink") &&
    n.name.isWellFormed() &&
    (n.target === undefined || n.target.isWellFormed())
  );
}

/** The format features a node needs (features.ts): what an older reader would get wrong. */
export function nodeFeatures(n: TreeNode): FeatureName[] {
  if (isVersion1Node(n)) return [];
  const out: FeatureName[] = [];
  if (
    isByteName(n.name) ||
    (n.target !== undefined && isByteName(n.target)) ||
    n.xattrs?.some((x) => isByteName(x.name))
  )
    out.push("byte-names");
  if (n.xattrs !== undefined && n.xattrs.length > 0) out.push("xattrs");
  if (SPECIAL_TYPES.includes(n.type)) out.push("special-files");
  return out;
}

const hex64 = /^[0-9a-f]{64}$/;
const decimal = /^-?[0-9]+$/;
const base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const NODE_TYPES: readonly string[] = ["file", "dir", "symlink", "fifo", "chardev", "blockdev"];

/**
 * A string field kept exactly: `<key>Bytes` (base64) when present, else `<key>`. A string that
 * is not well-formed cannot be bytes written by any version: it is read as written by Node.
 */
function readExact(n: Record<string, unknown>, key: string, bad: (d: string) => Error): string | undefined {
  const raw = n[`${key}Bytes`];
  if (raw !== undefined) {
    if (typeof raw !== "string" || !base64.test(raw)) throw bad(`${key}Bytes is not base64`);
    return nameFromBytes(Buffer.from(raw, "base64"));
  }
  const v = n[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw bad(`${key} is not a string`);
  return v.isWellFormed() ? v : v.toWellFormed();
}

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
    // The parsed object is this function's own: fields are normalised in place.
    const n = r as Record<string, unknown>;
    if (typeof n.name !== "string") throw bad("node without a name");
    if (n.nameBytes !== undefined || !n.name.isWellFormed()) {
      n.name = readExact(n, "name", bad);
      delete n.nameBytes;
    }
    // JSON.stringify, not String(): a value like {"toString": null} cannot be made a string.
    if (typeof n.type !== "string" || !NODE_TYPES.includes(n.type))
      throw bad(`unknown node type ${JSON.stringify(n.type)}`);
    // u32, as the system calls that restore them take (2^53 passes Number.isInteger).
    for (const k of ["mode", "uid", "gid"] as const) {
      if (!count(n[k]) || (n[k] as number) > 0xffffffff)
        throw bad(`${k} of ${n.name} is not a 32-bit integer`);
    }
    if (typeof n.mtime !== "string" || !decimal.test(n.mtime)) throw bad(`mtime of ${n.name}`);
    // Optional fields, when present, are what TreeNode says (readers compare and convert them).
    for (const k of ["ctime", "inode", "device", "rdev"] as const)
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
    if (n.targetBytes !== undefined || (typeof n.target === "string" && !n.target.isWellFormed())) {
      n.target = readExact(n, "target", bad);
      delete n.targetBytes;
    }
    if (n.type === "file" && (n.size === undefined || n.content === undefined))
      throw bad(`file ${n.name} lacks size or content`);
    if (n.type === "dir" && n.subtree === undefined) throw bad(`dir ${n.name} subtree`);
    if (n.type === "symlink" && n.target === undefined) throw bad(`symlink ${n.name} target`);
    if ((n.type === "chardev" || n.type === "blockdev") && n.rdev === undefined)
      throw bad(`device ${n.name} lacks rdev`);
    if (n.xattrs !== undefined) {
      if (!Array.isArray(n.xattrs)) throw bad(`xattrs of ${n.name}`);
      n.xattrs = n.xattrs.map((x: unknown) => {
        if (typeof x !== "object" || x === null) throw bad(`xattr of ${n.name}`);
        const a = x as Record<string, unknown>;
        const name = readExact(a, "name", bad);
        if (name === undefined || typeof a.value !== "string" || !base64.test(a.value))
          throw bad(`xattr of ${n.name}`);
        return { name, value: a.value };
      });
    }
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

/** Major and minor numbers of a device node's `rdev` (Linux's encoding of dev_t, as glibc's
 * major()/minor()). */
export function deviceNumbers(rdev: string): { major: number; minor: number } {
  const d = BigInt(rdev);
  return {
    major: Number(((d >> 32n) & 0xfffff000n) | ((d >> 8n) & 0xfffn)),
    minor: Number(((d >> 12n) & 0xffffff00n) | (d & 0xffn)),
  };
}
