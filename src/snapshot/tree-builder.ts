import { mapLimit, Semaphore } from "../core/concurrency.js";
import { errnoCode, type ItemError, itemError, LifeboatError } from "../core/errors.js";
import { joinName } from "../core/names.js";
import type { FileStat } from "../fsio/file-read.js";
import { FEATURES, type FeatureName } from "../repo/features.js";
import type { BlobWriter, Repository } from "../repo/repository.js";
import {
  isSafeName,
  isVersion1Node,
  type NodeType,
  nodeFeatures,
  sameNode,
  sortXattrs,
  type TreeNode,
  type Xattr,
} from "../repo/tree.js";
import type { BackupSummary } from "./backup-summary.js";
import type { ProgressCounter } from "./progress.js";
import type {
  EntryMeta,
  FileEntry,
  ParentLookup,
  SourceDir,
  SourceEntry,
  VirtualEntry,
  VirtualSource,
  XattrReader,
} from "./source.js";
import { storeFile, storeStream } from "./store-file.js";

export type { BackupSummary };

/** A folder's subfolders waiting their turn, one after another (TreeBuilder.subfolder). */
interface Turns {
  last: Promise<void>;
  failed?: { error: unknown };
}

/** Files and bytes below a tree (its file nodes and those of its subtrees). */
export interface TreeCount {
  files: number;
  bytes: number;
}

export function emptySummary(): BackupSummary {
  return {
    files: 0,
    dirs: 0,
    bytes: 0,
    filesNew: 0,
    filesChanged: 0,
    filesUnchanged: 0,
    blobsAdded: 0,
    bytesAdded: 0,
    bytesStored: 0,
    durationMs: 0,
  };
}

export interface BuildOptions {
  /** Re-read every file even if the parent says it is unchanged. */
  force?: boolean;
  progress: ProgressCounter;
  /** Warnings that do not make the snapshot incomplete (skipped sockets). */
  onWarning?: (message: string) => void;
  /** The parent snapshot read extended attributes: an entry whose status-change time did not
   * change keeps the parent's (they cannot have changed without changing it). */
  parentXattrs?: boolean;
  signal?: AbortSignal;
}

/** Entries of one folder handled at once (their reads overlap; lstat and readdir are quick). */
const ENTRIES_IN_FLIGHT = 32;
/**
 * Subfolders walked at once beyond the one per folder whose turn it is: FOLDERS_AHEAD always,
 * up to FOLDERS_AHEAD_STARVED while files wait for nothing (the reads are not kept busy); the
 * rest of a folder's subfolders wait their turn. Without a bound every folder started 32
 * entries at once, subfolders included, so a first backup held the listing and a pending call
 * of almost every file below (100,000 files: 45,000 suspended calls at once), memory that grew
 * with the number of files.
 */
const FOLDERS_AHEAD = 4;
const FOLDERS_AHEAD_STARVED = 16;
/** Files being read at once, across all folders. */
const FILES_IN_FLIGHT = 64;
/** Large files hold a chunker arena of 2 x the maximum chunk size each: only a few at once. */
const LARGE_FILES_IN_FLIGHT = 2;

const nsOf = (d: Date) => (BigInt(d.getTime()) * 1_000_000n).toString();

/** The metadata a tree node keeps of a file system entry. */
export function statMeta(st: FileStat): EntryMeta {
  return {
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: st.mtimeNs.toString(),
    ctime: st.ctimeNs.toString(),
    inode: st.ino.toString(),
    device: st.dev.toString(),
  };
}

/**
 * A file's node: its fields are added one by one, never spread from another object. V8 gives
 * objects made by spreading (`{ ...node, size }`) a hidden class of their own once a call site
 * has seen many of them: per file, a map and its descriptors that every collection then scans.
 */
function fileNode(
  name: string,
  meta: EntryMeta,
  xattrs: Xattr[] | undefined,
  links: number | undefined,
  size: number,
  content: string[],
): TreeNode {
  const n = node(name, "file", meta, xattrs);
  if (links !== undefined && links > 1) n.links = links;
  n.size = size;
  n.content = content;
  return n;
}

/** Node fields in the order of the tree encoding (see repo/tree.ts). */
function node(name: string, type: TreeNode["type"], meta: EntryMeta, xattrs?: Xattr[]): TreeNode {
  const n: TreeNode = { name, type, mode: meta.mode, uid: meta.uid, gid: meta.gid, mtime: meta.mtime };
  if (meta.ctime !== undefined) n.ctime = meta.ctime;
  if (meta.inode !== undefined) n.inode = meta.inode;
  if (meta.device !== undefined) n.device = meta.device;
  if (xattrs !== undefined && xattrs.length > 0) n.xattrs = xattrs;
  return n;
}

/** Whether a file's metadata says it is the parent snapshot's file, unchanged. */
function unchanged(prev: TreeNode | undefined, f: FileEntry): prev is TreeNode & { content: string[] } {
  return (
    prev !== undefined &&
    prev.type === "file" &&
    prev.content !== undefined &&
    prev.size === f.size &&
    prev.mtime === f.meta.mtime &&
    prev.ctime === f.meta.ctime &&
    prev.inode === f.meta.inode
  );
}

/**
 * The one tree builder: turns what a source yields into tree and data blobs, reading only what
 * changed since the parent snapshot. Tree sources are walked folder by folder (`dir`); virtual
 * sources are folded into folders as their entries stream by (`virtual`). Counts go into
 * `summary`, unreadable items into `errors` (the snapshot is then incomplete).
 */
export class TreeBuilder {
  readonly summary = emptySummary();
  readonly errors: ItemError[] = [];
  readonly warnings: string[] = [];
  /** Files that kept changing while read (stored as read). */
  readonly changed: string[] = [];
  private readonly files = new Semaphore(FILES_IN_FLIGHT);
  private readonly largeFiles = new Semaphore(LARGE_FILES_IN_FLIGHT);
  /** Format features enabled by this backup, one at a time (each rewrites the config):
   * undefined once enabled, else why it could not be. */
  private readonly enabling = new Map<FeatureName, Promise<string | undefined>>();
  private featureQueue: Promise<unknown> = Promise.resolve();
  /** Files and bytes below each tree this backup saved or kept, counted from its nodes (one
   * entry per folder): the anomaly check takes unchanged subtrees' counts from here instead of
   * reading them again. */
  private readonly counts = new Map<string, TreeCount>();
  /** Subfolders being walked beside their folder's turn (see FOLDERS_AHEAD). */
  private foldersAhead = 0;

  constructor(
    private readonly repo: Repository,
    private readonly w: BlobWriter,
    private readonly opts: BuildOptions,
  ) {}

  private get progress(): ProgressCounter {
    return this.opts.progress;
  }

  private async parentNodes(treeId: string | undefined): Promise<Map<string, TreeNode>> {
    const m = new Map<string, TreeNode>();
    if (!treeId || this.opts.force) return m;
    try {
      // Each parent folder is read once: not kept in the repository's tree cache.
      for (const n of (await this.repo.loadTree(treeId, { keep: false })).nodes) m.set(n.name, n);
    } catch {
      // A damaged parent only costs speed: everything below is read again.
    }
    return m;
  }

  /**
   * The tree of a source folder. `parentTree` is the same folder in the parent snapshot; when
   * nothing in it changed, its tree is reused as it is (no encoding or hashing).
   */
  async dir(dir: SourceDir, parentTree: string | undefined): Promise<string> {
    this.opts.signal?.throwIfAborted();
    if (!dir.synthetic) this.summary.dirs++;
    let entries: SourceEntry[];
    try {
      entries = await dir.entries();
    } catch (e) {
      this.errors.push(itemError(dir.path, e, "UNREADABLE"));
      entries = [];
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const prev = await this.parentNodes(parentTree);
    const turns: Turns = { last: Promise.resolve() };
    const saved = await mapLimit(entries, ENTRIES_IN_FLIGHT, (e) =>
      this.entry(dir, e, prev.get(e.name), turns),
    );
    const nodes = saved.filter((n): n is TreeNode => n !== undefined);
    // An unchanged folder is its parent's tree. (A parent tree that failed to load gives no
    // nodes, so it is never reused by mistake.)
    if (
      parentTree &&
      prev.size > 0 &&
      nodes.length === prev.size &&
      nodes.every((n) => {
        const p = prev.get(n.name);
        return p !== undefined && sameNode(n, p);
      }) &&
      this.w.hasBlob(Buffer.from(parentTree, "hex"))
    ) {
      return this.counted(parentTree, nodes);
    }
    return this.counted((await this.w.saveTree({ nodes })).id, nodes);
  }

  /** Files and bytes of a tree this backup produced, counted from its nodes; undefined for any
   * other tree. */
  treeCount(treeId: string): TreeCount | undefined {
    return this.counts.get(treeId);
  }

  private counted(treeId: string, nodes: readonly TreeNode[]): string {
    let files = 0;
    let bytes = 0;
    for (const n of nodes) {
      if (n.type === "file") {
        files++;
        bytes += n.size ?? 0;
      } else if (n.type === "dir" && n.subtree) {
        const below = this.counts.get(n.subtree);
        // (Never missing: every subtree of a new tree was built by this backup first.)
        if (!below) return treeId;
        files += below.files;
        bytes += below.bytes;
      }
    }
    this.counts.set(treeId, { files, bytes });
    return treeId;
  }

  /**
   * Walks a subfolder now when the bound allows (FOLDERS_AHEAD), else after the folder's subfolders
   * before it (`turns`). It never waits for a slot it cannot get while holding one, so folders
   * nested deeper than the bound still finish. After a subfolder failed, the ones waiting
   * behind it fail with the same error without being walked.
   */
  private async subfolder(turns: Turns, walk: () => Promise<string>): Promise<string> {
    if (
      this.foldersAhead < FOLDERS_AHEAD ||
      (this.foldersAhead < FOLDERS_AHEAD_STARVED && !this.files.saturated)
    ) {
      this.foldersAhead++;
      try {
        return await walk();
      } finally {
        this.foldersAhead--;
      }
    }
    const mine = turns.last.then(() => {
      if (turns.failed) throw turns.failed.error;
      return walk();
    });
    turns.last = mine.then(
      () => undefined,
      (error: unknown) => {
        turns.failed ??= { error };
      },
    );
    return mine;
  }

  private async entry(
    dir: SourceDir,
    e: SourceEntry,
    prev: TreeNode | undefined,
    turns: Turns,
  ): Promise<TreeNode | undefined> {
    const where = joinName(dir.path, e.name);
    switch (e.kind) {
      case "dir": {
        const xattrs = this.xattrsOf(e.xattrs, e.meta, prev, "dir", where);
        const subtree = await this.subfolder(turns, () =>
          this.dir(e.dir, prev?.type === "dir" ? prev.subtree : undefined),
        );
        return this.admit(Object.assign(node(e.name, "dir", e.meta, xattrs), { subtree }), where);
      }
      case "symlink": {
        const xattrs = this.xattrsOf(e.xattrs, e.meta, prev, "symlink", where);
        return this.admit(
          Object.assign(node(e.name, "symlink", e.meta, xattrs), { target: e.target }),
          where,
        );
      }
      case "special": {
        const xattrs = this.xattrsOf(e.xattrs, e.meta, prev, e.type, where);
        const n = node(e.name, e.type, e.meta, xattrs);
        if (e.rdev !== undefined) n.rdev = e.rdev;
        return this.admit(n, where);
      }
      case "file": {
        const n = await this.file(e, prev, where);
        return n && this.admit(n, where);
      }
      case "skipped":
        this.warnings.push(e.warning);
        this.opts.onWarning?.(e.warning);
        return undefined;
      case "failed":
        this.errors.push(e.error);
        return undefined;
    }
  }

  /**
   * An entry's extended attributes: the parent's when its status-change time and inode are the
   * parent's (an attribute cannot change without changing ctime), else read. Attributes that
   * cannot be read are an error of the snapshot; the entry itself is kept.
   */
  private xattrsOf(
    read: XattrReader | undefined,
    meta: EntryMeta,
    prev: TreeNode | undefined,
    type: NodeType,
    where: string,
  ): Xattr[] | undefined {
    if (!read) return undefined;
    if (
      this.opts.parentXattrs &&
      prev?.type === type &&
      prev.ctime !== undefined &&
      prev.ctime === meta.ctime &&
      prev.inode === meta.inode
    )
      return prev.xattrs;
    try {
      const x = read();
      return x.length > 0 ? sortXattrs(x) : undefined;
    } catch (e) {
      const err = itemError(where, e, "UNREADABLE");
      this.errors.push({ ...err, message: `extended attributes not stored: ${err.message}` });
      return undefined;
    }
  }

  /** Enables a format feature once per backup (features.ts); resolves to why it could not be. */
  private enable(f: FeatureName): Promise<string | undefined> {
    let p = this.enabling.get(f);
    if (!p) {
      p = this.featureQueue.then(() =>
        this.repo.enableFeature(f).then(
          () => undefined,
          (e: unknown) => {
            if (e instanceof LifeboatError && e.code === "NEEDS_FULL_KEY")
              return `the repository needs format feature ${f} (${FEATURES[f].what}) and a write-only key cannot record it: run a backup (or any config change) once with a full key (docs/format.md, "Format features")`;
            if (e instanceof LifeboatError && e.code === "PERMISSION_DENIED")
              return `the repository needs format feature ${f} (${FEATURES[f].what}) and its storage refuses to replace the config (append-only): enable it where the repository is stored, e.g. by running this backup once with direct access to the storage (docs/format.md, "Format features")`;
            if (e instanceof LifeboatError && e.code !== "STORAGE_ERROR") throw e;
            return `the repository needs format feature ${f} (${FEATURES[f].what}) and it could not be recorded: ${(e as Error).message}`;
          },
        ),
      );
      this.featureQueue = p.catch(() => {});
      this.enabling.set(f, p);
    }
    return p;
  }

  /**
   * A node goes into a tree only once the repository records the format features it needs, so
   * an older lifeboat refuses the repository instead of restoring mangled names or dropping
   * attributes. If a feature cannot be recorded, the entry (or its attributes) goes into the
   * snapshot's errors: nothing is left out without a word.
   */
  private admit(n: TreeNode, where: string): TreeNode | Promise<TreeNode | undefined> {
    if (isVersion1Node(n)) return n;
    return this.admitSlow(n, where);
  }

  private async admitSlow(n: TreeNode, where: string): Promise<TreeNode | undefined> {
    let out: TreeNode | undefined = n;
    for (const f of nodeFeatures(n)) {
      if (this.repo.hasFeature(f)) continue;
      const why = await this.enable(f);
      if (why === undefined) continue;
      if (f === "xattrs") {
        this.errors.push({
          path: where,
          code: "NEEDS_FEATURE",
          message: `extended attributes not stored: ${why}`,
        });
        const { xattrs: _dropped, ...rest } = n;
        out = rest;
      } else {
        this.errors.push({ path: where, code: "NEEDS_FEATURE", message: `not stored: ${why}` });
        return undefined;
      }
    }
    return out;
  }

  /**
   * One file: taken from the parent when its size, times and inode say it is unchanged (and its
   * blobs are still stored); otherwise read. A local file that changes while it is read is read
   * again once; if it changes again, what was read is kept and listed in `changed`.
   */
  async file(f: FileEntry, prev: TreeNode | undefined, where: string): Promise<TreeNode | undefined> {
    this.opts.signal?.throwIfAborted();
    this.summary.files++;
    this.summary.bytes += f.size;
    let xattrs = this.xattrsOf(f.xattrs, f.meta, prev, "file", where);
    if (
      !this.opts.force &&
      unchanged(prev, f) &&
      prev.content.every((id) => this.w.hasBlob(Buffer.from(id, "hex")))
    ) {
      this.summary.filesUnchanged++;
      this.progress.addFile(f.size);
      return fileNode(f.name, f.meta, xattrs, f.links, prev.size ?? 0, prev.content);
    }
    const content = f.content;
    if (content.kind === "stream") {
      let r: { content: string[]; size: number };
      try {
        r = await this.files.run(() => {
          this.opts.signal?.throwIfAborted(); // (a file may wait here long after the stop)
          return storeStream(this.w, content.read(), (n) => this.progress.addBytes(n));
        });
      } catch (e) {
        this.summary.files--;
        this.summary.bytes -= f.size;
        if (this.opts.signal?.aborted) throw e;
        if (e instanceof LifeboatError && e.code !== "SOURCE_UNREADABLE") throw e;
        this.errors.push(itemError(where, e, "UNREADABLE"));
        return undefined;
      }
      this.countRead(prev, f.size, r.size);
      return fileNode(f.name, f.meta, xattrs, f.links, r.size, r.content);
    }
    let size = f.size;
    let before = f.meta;
    for (let attempt = 0; attempt < 2; attempt++) {
      let r: Awaited<ReturnType<typeof storeFile>>;
      try {
        const gate = size >= this.w.chunkerMin ? this.largeFiles : this.files;
        r = await gate.run(() => {
          this.opts.signal?.throwIfAborted();
          return storeFile(this.w, content.path, size, (n) => this.progress.addBytes(n));
        });
      } catch (e) {
        this.summary.files--;
        this.summary.bytes -= f.size;
        if (this.opts.signal?.aborted) throw e;
        if (errnoCode(e) === "ENOENT") return undefined;
        if (e instanceof LifeboatError) throw e; // the repository, not the file: stop
        this.errors.push(itemError(where, e, "UNREADABLE"));
        return undefined;
      }
      // The device is the source's: a file-system snapshot is read on another device than
      // the one it records.
      const after = statMeta(r.after);
      if (before.device !== undefined) after.device = before.device;
      const stable =
        before.mtime === after.mtime &&
        before.ctime === after.ctime &&
        before.inode === after.inode &&
        BigInt(size) === r.after.size &&
        BigInt(r.size) === r.after.size;
      if (stable || attempt === 1) {
        if (!stable) this.changed.push(where);
        this.countRead(prev, f.size, r.size);
        // Changed since the listing: its attributes are read again, as they are now.
        if (after.ctime !== f.meta.ctime) xattrs = this.xattrsOf(f.xattrs, after, undefined, "file", where);
        return fileNode(f.name, after, xattrs, f.links, r.size, r.content);
      }
      before = after;
      size = Number(r.after.size);
    }
    return undefined;
  }

  private countRead(prev: TreeNode | undefined, expected: number, read: number): void {
    if (prev?.type === "file") this.summary.filesChanged++;
    else this.summary.filesNew++;
    this.progress.addFile();
    this.summary.bytes += read - expected;
  }

  /**
   * The root tree of a virtual source: entries stream by with relative paths, each file's bytes
   * stored as it comes (a mailbox is read once, in the order the server sends it); folders are
   * saved at the end. `reuse` nodes of the parent snapshot are kept without reading.
   */
  async virtual(
    source: VirtualSource,
    lookup: ParentLookup,
    parent: Parameters<VirtualSource["entries"]>[1],
  ) {
    interface DirBuild {
      node: TreeNode | undefined;
      children: Map<string, DirBuild | TreeNode>;
    }
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    const now = () => new Date();
    const meta = (mode: number, mtime: Date | undefined): EntryMeta => ({
      mode,
      uid,
      gid,
      mtime: nsOf(mtime ?? now()),
    });
    const root: DirBuild = { node: undefined, children: new Map() };
    const dirFor = (parts: string[]): DirBuild => {
      let d = root;
      for (const name of parts) {
        let next = d.children.get(name);
        if (!next || !("children" in next)) {
          next = { node: node(name, "dir", meta(0o755, undefined)), children: new Map() };
          d.children.set(name, next);
        }
        d = next;
      }
      return d;
    };
    for await (const e of source.entries(lookup, parent) as AsyncIterable<VirtualEntry>) {
      this.opts.signal?.throwIfAborted();
      const parts = e.path.split("/").filter((p) => p !== "");
      if (parts.length === 0 || !parts.every(isSafeName)) {
        throw new LifeboatError(
          "SOURCE_UNREADABLE",
          `source ${source.name} produced an unsafe path ${JSON.stringify(e.path)}`,
        );
      }
      const name = parts.at(-1)!;
      if (e.kind === "dir") {
        dirFor(parts).node = node(name, "dir", meta(e.mode ?? 0o755, e.mtime));
        continue;
      }
      const dir = dirFor(parts.slice(0, -1));
      const m = meta(e.mode ?? 0o644, e.mtime);
      const reuse = e.reuse;
      if (
        reuse?.type === "file" &&
        reuse.content &&
        reuse.content.every((id) => this.w.hasBlob(Buffer.from(id, "hex")))
      ) {
        dir.children.set(name, fileNode(name, m, undefined, undefined, reuse.size ?? 0, reuse.content));
        this.summary.files++;
        this.summary.filesUnchanged++;
        this.summary.bytes += reuse.size ?? 0;
        this.progress.addFile(reuse.size ?? 0);
        continue;
      }
      if (!e.read)
        throw new LifeboatError(
          "SOURCE_UNREADABLE",
          `source ${source.name}: ${e.path} has no content to read`,
        );
      const r = await storeStream(this.w, e.read(), (n) => this.progress.addBytes(n), e.pieceSize);
      dir.children.set(name, fileNode(name, m, undefined, undefined, r.size, r.content));
      this.summary.files++;
      this.summary.filesNew++;
      this.summary.bytes += r.size;
      this.progress.addFile();
    }
    const save = async (d: DirBuild): Promise<string> => {
      const nodes: TreeNode[] = [];
      for (const child of d.children.values()) {
        if ("children" in child) nodes.push({ ...child.node!, subtree: await save(child) });
        else nodes.push(child);
      }
      this.summary.dirs++;
      return this.counted((await this.w.saveTree({ nodes })).id, nodes);
    };
    return save(root);
  }
}
