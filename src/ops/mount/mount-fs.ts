import { isLifeboatError } from "../../core/errors.js";
import { displayName, parseDisplayName } from "../../core/names.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { isSafeName, type Tree, type TreeNode } from "../../repo/tree.js";

/**
 * A read-only view of snapshots as a file system, independent of the FUSE binding: paths in,
 * stat records, names, bytes and errnos out. `mount.ts` adapts it to fuse-native.
 *
 * Layout: for one snapshot, its root tree is the root of the mount; for `all`, the root holds
 * `snapshots/`, which holds one folder per snapshot named `<time>-<short id>` and a `latest`
 * symlink to the newest.
 *
 * Names are bytes, but FUSE hands this binding paths as UTF-8 strings (and takes names the same
 * way): a name that is not UTF-8 appears in the mount as `displayName` shows it (`caf\xE9.txt`),
 * and that name leads back to the node. Extended attributes are served read-only.
 */

/** Negative errno values, as FUSE expects them. */
export const Errno = {
  EPERM: -1,
  ENOENT: -2,
  EIO: -5,
  EBADF: -9,
  EACCES: -13,
  ENOTDIR: -20,
  EISDIR: -21,
  EINVAL: -22,
  EROFS: -30,
  ENODATA: -61,
} as const;

export class FsError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

export interface FsStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  /** Device nodes: the device number. */
  rdev?: number;
  /** Milliseconds since the epoch. */
  mtime: number;
  atime: number;
  ctime: number;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

/** What a path names: a synthetic folder, a link, or a node of a snapshot. */
type Entry =
  | { kind: "synthetic-dir"; names: () => string[]; time: number }
  | { kind: "synthetic-link"; target: string; time: number }
  | { kind: "node"; node: TreeNode }
  | { kind: "root"; tree: string; time: number; uid: number; gid: number };

/** An open file: its node and where each of its blobs starts. */
interface OpenFile {
  node: TreeNode;
  /** starts[i] = byte offset of content[i]; starts[content.length] = total length. */
  starts: number[];
}

export interface MountFsOptions {
  /** Decoded blob bytes kept in memory (default 64 MiB). */
  cacheBytes?: number;
}

/** Name of a snapshot's folder under `snapshots/`: its time (to the second, UTC) and short id. */
export function snapshotDirName(s: SnapshotWithId): string {
  const t = new Date(s.time);
  const time = Number.isNaN(t.getTime()) ? s.time : t.toISOString().replace(/\.\d{3}Z$/, "Z");
  return `${time}-${s.id.slice(0, 8)}`;
}

function nsToMs(ns: string): number {
  return Number(BigInt(ns) / 1_000_000n);
}

export class SnapshotFs {
  private readonly root: Entry;
  private readonly bySnapshotName = new Map<string, SnapshotWithId>();
  private readonly nameIndex = new WeakMap<Tree, Map<string, TreeNode>>();
  private readonly open = new Map<number, OpenFile>();
  private nextFd = 1;
  private readonly blobCache = new Map<string, Buffer>();
  private cachedBytes = 0;
  private readonly cacheLimit: number;
  private readonly loading = new Map<string, Promise<Buffer>>();
  private readonly mountTime = Date.now();

  /** `snapshots`: one snapshot (its root is the mount's root) or, with `all`, every one. */
  constructor(
    private readonly repo: Repository,
    selection: { snapshot: SnapshotWithId } | { all: SnapshotWithId[] },
    opts: MountFsOptions = {},
  ) {
    this.cacheLimit = opts.cacheBytes ?? 64 * 1024 * 1024;
    if ("snapshot" in selection) {
      const s = selection.snapshot;
      this.root = {
        kind: "root",
        tree: s.tree,
        time: Date.parse(s.time) || this.mountTime,
        uid: s.uid ?? 0,
        gid: s.gid ?? 0,
      };
    } else {
      for (const s of selection.all) this.bySnapshotName.set(snapshotDirName(s), s);
      this.root = { kind: "synthetic-dir", names: () => ["snapshots"], time: this.mountTime };
    }
  }

  private snapshotsDirNames(): string[] {
    const names = [...this.bySnapshotName.keys()];
    return names.length > 0 ? [...names, "latest"] : names;
  }

  private latestName(): string | undefined {
    let best: SnapshotWithId | undefined;
    let bestName: string | undefined;
    for (const [name, s] of this.bySnapshotName) {
      if (!best || s.time > best.time || (s.time === best.time && s.id > best.id)) {
        best = s;
        bestName = name;
      }
    }
    return bestName;
  }

  private async lookupIn(treeId: string, name: string): Promise<TreeNode | undefined> {
    const tree = await this.repo.loadTree(treeId);
    let index = this.nameIndex.get(tree);
    if (!index) {
      index = new Map();
      for (const n of tree.nodes) if (isSafeName(n.name)) index.set(n.name, n);
      this.nameIndex.set(tree, index);
    }
    return index.get(name) ?? index.get(parseDisplayName(name));
  }

  /** Resolves a FUSE path (always absolute, `/` separated) to what it names. */
  async resolve(p: string): Promise<Entry> {
    const parts = p.split("/").filter((x) => x !== "");
    let entry: Entry = this.root;
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!;
      if (entry.kind === "synthetic-dir") {
        if (entry === this.root && name === "snapshots") {
          entry = { kind: "synthetic-dir", names: () => this.snapshotsDirNames(), time: this.mountTime };
          continue;
        }
        // Inside snapshots/: a snapshot folder, or `latest`.
        if (i === 1 && parts[0] === "snapshots") {
          if (name === "latest") {
            const latest = this.latestName();
            if (latest) {
              entry = { kind: "synthetic-link", target: latest, time: this.mountTime };
              continue;
            }
          }
          const s = this.bySnapshotName.get(name);
          if (s) {
            entry = {
              kind: "root",
              tree: s.tree,
              time: Date.parse(s.time) || this.mountTime,
              uid: s.uid ?? 0,
              gid: s.gid ?? 0,
            };
            continue;
          }
        }
        throw new FsError(Errno.ENOENT, `${p}: no such entry`);
      }
      const tree =
        entry.kind === "root"
          ? entry.tree
          : entry.kind === "node" && entry.node.type === "dir"
            ? entry.node.subtree
            : undefined;
      if (!tree) throw new FsError(Errno.ENOTDIR, `${p}: not a folder`);
      const node = await this.lookupIn(tree, name);
      if (!node) throw new FsError(Errno.ENOENT, `${p}: no such entry`);
      entry = { kind: "node", node };
    }
    return entry;
  }

  async getattr(p: string): Promise<FsStat> {
    const e = await this.resolve(p);
    switch (e.kind) {
      case "synthetic-dir":
        return stat(S_IFDIR | 0o555, 0, 0, 0, 2, e.time);
      case "synthetic-link":
        return stat(S_IFLNK | 0o777, 0, 0, Buffer.byteLength(e.target), 1, e.time);
      case "root":
        return stat(S_IFDIR | 0o555, e.uid, e.gid, 0, 2, e.time);
      case "node": {
        const n = e.node;
        const t = nsToMs(n.mtime);
        const c = n.ctime ? nsToMs(n.ctime) : t;
        if (n.type === "dir") return { ...stat(S_IFDIR | n.mode, n.uid, n.gid, 0, 2, t), ctime: c };
        if (n.type === "symlink")
          return {
            ...stat(S_IFLNK | n.mode, n.uid, n.gid, Buffer.byteLength(displayName(n.target ?? "")), 1, t),
            ctime: c,
          };
        if (n.type === "fifo") return { ...stat(S_IFIFO | n.mode, n.uid, n.gid, 0, 1, t), ctime: c };
        if (n.type === "chardev" || n.type === "blockdev")
          return {
            ...stat((n.type === "chardev" ? S_IFCHR : S_IFBLK) | n.mode, n.uid, n.gid, 0, 1, t),
            ctime: c,
            rdev: Number(n.rdev ?? 0),
          };
        return { ...stat(S_IFREG | n.mode, n.uid, n.gid, n.size ?? 0, n.links ?? 1, t), ctime: c };
      }
    }
  }

  async readdir(p: string): Promise<string[]> {
    const e = await this.resolve(p);
    if (e.kind === "synthetic-dir") return e.names();
    const tree = e.kind === "root" ? e.tree : e.kind === "node" ? e.node.subtree : undefined;
    if (!tree || (e.kind === "node" && e.node.type !== "dir"))
      throw new FsError(Errno.ENOTDIR, `${p}: not a folder`);
    return (await this.repo.loadTree(tree)).nodes
      .map((n) => n.name)
      .filter(isSafeName)
      .map(displayName);
  }

  async readlink(p: string): Promise<string> {
    const e = await this.resolve(p);
    if (e.kind === "synthetic-link") return e.target;
    if (e.kind === "node" && e.node.type === "symlink") return displayName(e.node.target ?? "");
    throw new FsError(Errno.EINVAL, `${p}: not a symlink`);
  }

  /** Names of a node's extended attributes (none for the synthetic folders). */
  async listxattr(p: string): Promise<string[]> {
    const e = await this.resolve(p);
    return e.kind === "node" ? (e.node.xattrs ?? []).map((x) => displayName(x.name)) : [];
  }

  /** One extended attribute's value, or undefined when the node has no such attribute. */
  async getxattr(p: string, name: string): Promise<Buffer | undefined> {
    const e = await this.resolve(p);
    if (e.kind !== "node") return undefined;
    const x = e.node.xattrs?.find((a) => displayName(a.name) === name);
    return x ? Buffer.from(x.value, "base64") : undefined;
  }

  /** Opens a file for reading; returns a handle for `read` and `release`. */
  async openFile(p: string): Promise<number> {
    const e = await this.resolve(p);
    if (e.kind !== "node" || e.node.type !== "file") throw new FsError(Errno.EISDIR, `${p}: not a file`);
    const content = e.node.content ?? [];
    const starts = [0];
    let at = 0;
    for (const id of content) {
      const loc = this.repo.lookup(Buffer.from(id, "hex"));
      if (!loc) throw new FsError(Errno.EIO, `${p}: blob ${id} is not in the index`);
      at += loc.rawLength;
      starts.push(at);
    }
    const fd = this.nextFd++;
    if (this.nextFd > 0x7fffffff) this.nextFd = 1;
    this.open.set(fd, { node: e.node, starts });
    return fd;
  }

  release(fd: number): void {
    this.open.delete(fd);
  }

  /** Reads up to `length` bytes at `position` of an open file into `into`; returns the count. */
  async read(fd: number, into: Buffer, length: number, position: number): Promise<number> {
    const f = this.open.get(fd);
    if (!f) throw new FsError(Errno.EBADF, `handle ${fd} is not open`);
    const content = f.node.content ?? [];
    const total = f.starts[content.length]!;
    let pos = position;
    const end = Math.min(position + length, total);
    let written = 0;
    // The blob holding `pos`: binary search over the starts.
    let lo = 0;
    let hi = content.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (f.starts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    for (let i = lo; i < content.length && pos < end; i++) {
      const start = f.starts[i]!;
      const next = f.starts[i + 1]!;
      if (next <= pos) continue;
      const blob = await this.blob(content[i]!);
      if (blob.length !== next - start)
        throw new FsError(
          Errno.EIO,
          `blob ${content[i]} has ${blob.length} bytes, the index says ${next - start}`,
        );
      const from = pos - start;
      const n = Math.min(next, end) - pos;
      blob.copy(into, written, from, from + n);
      written += n;
      pos += n;
    }
    return written;
  }

  /** A data blob, decrypted and verified, from the cache or the repository. */
  private async blob(idHex: string): Promise<Buffer> {
    const hit = this.blobCache.get(idHex);
    if (hit) {
      // Most recently used goes last.
      this.blobCache.delete(idHex);
      this.blobCache.set(idHex, hit);
      return hit;
    }
    let pending = this.loading.get(idHex);
    if (!pending) {
      pending = this.repo.loadBlob(Buffer.from(idHex, "hex")).finally(() => this.loading.delete(idHex));
      this.loading.set(idHex, pending);
    }
    const buf = await pending;
    if (!this.blobCache.has(idHex) && buf.length <= this.cacheLimit) {
      this.blobCache.set(idHex, buf);
      this.cachedBytes += buf.length;
      for (const [k, v] of this.blobCache) {
        if (this.cachedBytes <= this.cacheLimit) break;
        this.blobCache.delete(k);
        this.cachedBytes -= v.length;
      }
    }
    return buf;
  }
}

function stat(mode: number, uid: number, gid: number, size: number, nlink: number, time: number): FsStat {
  return { mode, uid, gid, size, nlink, mtime: time, atime: time, ctime: time };
}

/** The errno to answer for an error thrown while serving a request. */
export function errnoOf(e: unknown): number {
  if (e instanceof FsError) return e.errno;
  if (isLifeboatError(e)) return Errno.EIO;
  return Errno.EIO;
}
