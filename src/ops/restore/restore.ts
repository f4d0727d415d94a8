import fsSync, { constants, promises as fs } from "node:fs";
import path from "node:path";
import { mapLimit, Semaphore } from "../../core/concurrency.js";
import {
  CorruptionError,
  errnoCode,
  failure,
  type ItemError,
  itemError,
  LifeboatError,
} from "../../core/errors.js";
import { displayName, fsPath, nameFromBytes } from "../../core/names.js";
import {
  applyMetaFd,
  discardTemp,
  type FileMeta,
  finishTemp,
  openTemp,
  tempPathFor,
} from "../../fsio/file-write.js";
import {
  chmodNoFollow,
  makeNode,
  nativeUnavailable,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
  setXattr,
} from "../../fsio/native.js";
import type { Repository } from "../../repo/repository.js";
import type { Snapshot } from "../../repo/snapshot.js";
import type { TreeNode } from "../../repo/tree.js";
import { isSafeName } from "../../repo/tree.js";
import { Excludes } from "../../snapshot/excludes.js";
import { type BackupProgress, ProgressCounter } from "../../snapshot/progress.js";
import { resolveSubpath } from "../../snapshot/subpath.js";
import { walkTree } from "../../snapshot/walker.js";
import { fileMatches } from "./compare.js";

export interface RestoreOptions {
  target: string;
  /** Path inside the snapshot to restore (its contents land directly in `target`). */
  subpath?: string;
  /** gitignore-style patterns, relative to the restored root: restore only what matches. */
  include?: string[];
  /** gitignore-style patterns, relative to the restored root: skip what matches. */
  exclude?: string[];
  /** Re-read every restored file and compare it with the snapshot. */
  verify?: boolean;
  /** Restore extended attributes (default true). As another user than root, those in the
   * `trusted.` and `security.` namespaces are left out (the kernel refuses them), with a warning. */
  xattrs?: boolean;
  onProgress?: (p: BackupProgress) => void;
  /** Stops the restore between files (a later run resumes: finished files are skipped). */
  signal?: AbortSignal;
}

export interface RestoreResult {
  files: number;
  /** Files already present with the right content (a resumed restore skips them). */
  filesSkipped: number;
  dirs: number;
  symlinks: number;
  /** FIFOs and device nodes. */
  special: number;
  bytes: number;
  verified: number;
  /** What failed, by path relative to the target (`.` for the target itself). */
  errors: ItemError[];
  /** What was left out on purpose (device nodes and privileged attributes when not root). */
  warnings: string[];
}

interface Ctx {
  repo: Repository;
  signal: AbortSignal | undefined;
  include: Excludes | undefined;
  exclude: Excludes;
  verify: boolean;
  asRoot: boolean;
  xattrs: boolean;
  /** Attributes left out (not root, or no native helper), counted for one warning at the end. */
  xattrsSkipped: number;
  devicesSkipped: number;
  result: RestoreResult;
  progress: ProgressCounter;
  /** device:inode → first restored path, to recreate hard links. */
  links: Map<string, string>;
  /** Bounds files being restored at once across all folders (large ones also hold memory). */
  smallFiles: Semaphore;
  largeFiles: Semaphore;
  /** Hard-linked files, restored one by one after everything else (see restoreDir). */
  linked: { node: TreeNode; dir: string; rel: string; all: boolean }[];
  /** Folders whose owner, mode and times are set at the very end (creating entries in a
   * folder changes its modification time). */
  dirMeta: { dest: string; node: TreeNode }[];
  /** Extra folder branches being restored in parallel (see restoreDir). */
  activeFolders: number;
}

/** Restores a snapshot (or a path inside it) into `target`, never writing outside it. */
export async function restore(
  repo: Repository,
  snapshot: Snapshot,
  options: RestoreOptions,
): Promise<RestoreResult> {
  const root = await resolveSubpath(repo, snapshot, options.subpath ?? "/");
  await fs.mkdir(fsPath(options.target), { recursive: true });
  const target = nameFromBytes(await fs.realpath(fsPath(options.target), { encoding: "buffer" }));
  const ctx: Ctx = {
    repo,
    signal: options.signal,
    include: options.include && options.include.length > 0 ? new Excludes(options.include) : undefined,
    exclude: new Excludes(options.exclude ?? []),
    verify: options.verify ?? false,
    asRoot: process.getuid?.() === 0,
    xattrs: options.xattrs !== false,
    xattrsSkipped: 0,
    devicesSkipped: 0,
    result: {
      files: 0,
      filesSkipped: 0,
      dirs: 0,
      symlinks: 0,
      special: 0,
      bytes: 0,
      verified: 0,
      errors: [],
      warnings: [],
    },
    progress: new ProgressCounter(options.onProgress),
    links: new Map(),
    smallFiles: new Semaphore(SMALL_FILES_IN_FLIGHT),
    largeFiles: new Semaphore(LARGE_FILES_IN_FLIGHT),
    linked: [],
    dirMeta: [],
    activeFolders: 0,
  };
  if (options.onProgress) {
    const totals = await countTotals(
      repo,
      root.kind === "dir" ? root.tree : undefined,
      root.kind === "node" ? [root.node] : [],
    );
    ctx.progress.setTotals(totals.files, totals.bytes);
  }
  // In a folder that was empty, nothing needs to be looked up before a file is written.
  const fresh = (await fs.readdir(fsPath(target))).length === 0;
  if (root.kind === "dir") {
    await restoreDir(ctx, root.tree, target, "", false, fresh);
  } else {
    await restoreNode(ctx, root.node, target, root.node.name, true, fresh);
  }
  // One by one, so the first copy of each link group is complete before the others link to it.
  for (const l of ctx.linked) await restoreNode(ctx, l.node, l.dir, l.rel, l.all, false);
  for (const d of ctx.dirMeta.reverse()) {
    const rel = path.relative(target, d.dest) || ".";
    try {
      applyMetaNoFollow(ctx, d.dest, d.node, true, rel);
    } catch (e) {
      ctx.result.errors.push(itemError(rel, e, "UNWRITABLE"));
    }
  }
  if (ctx.xattrsSkipped > 0) {
    const why = nativeUnavailable() ?? "the trusted. and security. namespaces need root";
    ctx.result.warnings.push(`${ctx.xattrsSkipped} extended attribute(s) not restored: ${why}`);
  }
  if (ctx.devicesSkipped > 0)
    ctx.result.warnings.push(`${ctx.devicesSkipped} device node(s) not restored: creating them needs root`);
  ctx.progress.finish();
  return ctx.result;
}

/** The attributes of a node to restore: all of them as root; otherwise those the kernel lets
 * an owner set (user. and system. ACLs). The others are counted for a warning. */
function xattrsFor(ctx: Ctx, node: TreeNode): { name: string; value: string }[] | undefined {
  if (!ctx.xattrs || !node.xattrs || node.xattrs.length === 0) return undefined;
  if (nativeUnavailable()) {
    ctx.xattrsSkipped += node.xattrs.length;
    return undefined;
  }
  if (ctx.asRoot) return node.xattrs;
  const allowed = node.xattrs.filter(
    (x) => !x.name.startsWith("trusted.") && !x.name.startsWith("security."),
  );
  ctx.xattrsSkipped += node.xattrs.length - allowed.length;
  return allowed;
}

/** Attributes that could not be set on `rel`: each an error of the restore (the item itself is there). */
function reportXattrProblems(ctx: Ctx, rel: string, problems: string[]): void {
  for (const message of problems) ctx.result.errors.push({ path: rel, code: "UNWRITABLE", message });
}

async function countTotals(repo: Repository, tree: string | undefined, extra: TreeNode[]) {
  let files = 0;
  let bytes = 0;
  const count = (n: TreeNode) => {
    if (n.type !== "file") return undefined;
    files++;
    bytes += n.size ?? 0;
    return undefined;
  };
  if (tree) await walkTree(repo, tree, { node: count });
  for (const n of extra) count(n);
  return { files, bytes };
}

type Want = "all" | "some" | "none";

/** With --include, a folder that does not match itself may still hold matching paths ("some"). */
async function wanted(ctx: Ctx, node: TreeNode, rel: string, all: boolean): Promise<Want> {
  const isDir = node.type === "dir";
  if (ctx.exclude.excluded(rel, isDir)) return "none";
  if (all || !ctx.include || ctx.include.excluded(rel, isDir)) return "all";
  if (isDir && node.subtree && (await hasIncluded(ctx, node.subtree, rel))) return "some";
  return "none";
}

async function hasIncluded(ctx: Ctx, treeId: string, rel: string): Promise<boolean> {
  for (const n of (await ctx.repo.loadTree(treeId)).nodes) {
    if (!isSafeName(n.name)) continue;
    if ((await wanted(ctx, n, `${rel}/${n.name}`, false)) !== "none") return true;
  }
  return false;
}

/**
 * Restores the nodes of tree `treeId` into the existing real directory `dir` (`fresh`: one this
 * restore created, so it holds nothing yet).
 */
async function restoreDir(
  ctx: Ctx,
  treeId: string,
  dir: string,
  rel: string,
  all: boolean,
  fresh: boolean,
): Promise<void> {
  let nodes: TreeNode[];
  try {
    nodes = (await ctx.repo.loadTree(treeId)).nodes;
  } catch (e) {
    ctx.result.errors.push(itemError(rel || ".", e, "DAMAGED"));
    return;
  }
  const seen = new Set<string>();
  const plain: [TreeNode, string][] = [];
  const dirs: [TreeNode, string][] = [];
  for (const node of nodes) {
    // Whatever a (possibly crafted) snapshot holds, only plain, unique names are created.
    if (!isSafeName(node.name) || seen.has(node.name)) {
      ctx.result.errors.push({
        path: rel || ".",
        code: "UNSAFE_NAME",
        message: `refused unsafe or duplicate name ${JSON.stringify(displayName(node.name))} in the snapshot`,
      });
      continue;
    }
    seen.add(node.name);
    const childRel = rel ? `${rel}/${node.name}` : node.name;
    if (node.type === "file" && (node.links ?? 1) > 1) {
      const w = await wanted(ctx, node, childRel, all);
      if (w !== "none") ctx.linked.push({ node, dir, rel: childRel, all: w === "all" });
    } else (node.type === "dir" ? dirs : plain).push([node, childRel]);
  }
  // Files and symlinks of a folder are restored concurrently (bounded across folders by
  // ctx.smallFiles/largeFiles), then its subfolders, a few at once: file creation takes a lock
  // on its folder, so several folders keep more than one core busy.
  await mapLimit(plain, FILES_PER_FOLDER, async ([node, childRel]) => {
    const w = await wanted(ctx, node, childRel, all);
    if (w !== "none") await restoreNode(ctx, node, dir, childRel, w === "all", fresh);
  });
  // Subfolders a few at a time, unless many folders are already in progress: the width then
  // stops multiplying with the depth of the tree (memory stays bounded in deep trees).
  const width = ctx.activeFolders < MAX_ACTIVE_FOLDERS ? FOLDERS_IN_FLIGHT : 1;
  ctx.activeFolders += width - 1;
  try {
    await mapLimit(dirs, width, async ([node, childRel]) => {
      const w = await wanted(ctx, node, childRel, all);
      if (w !== "none") await restoreNode(ctx, node, dir, childRel, w === "all", fresh);
    });
  } finally {
    ctx.activeFolders -= width - 1;
  }
}

const FILES_PER_FOLDER = 32;
const FOLDERS_IN_FLIGHT = 4;
const MAX_ACTIVE_FOLDERS = 16;
const SMALL_FILES_IN_FLIGHT = 64;
const LARGE_FILES_IN_FLIGHT = 4;

/**
 * Restores one node into the real directory `dir`; `all` = everything below is wanted, `fresh`
 * = `dir` was created by this restore.
 */
async function restoreNode(
  ctx: Ctx,
  node: TreeNode,
  dir: string,
  rel: string,
  all: boolean,
  fresh: boolean,
): Promise<void> {
  const dest = path.join(dir, node.name);
  ctx.signal?.throwIfAborted();
  try {
    switch (node.type) {
      case "dir": {
        const created = await ensureRealDir(dest, fresh);
        ctx.result.dirs++;
        ctx.dirMeta.push({ dest, node });
        await restoreDir(ctx, node.subtree!, dest, rel, all, created);
        break;
      }
      case "symlink": {
        if (!fresh) await removeExisting(dest);
        await fs.symlink(fsPath(node.target!), fsPath(dest));
        await applyLinkMeta(ctx, dest, node, rel);
        ctx.result.symlinks++;
        break;
      }
      case "fifo":
      case "chardev":
      case "blockdev":
        await restoreSpecial(ctx, node, dest, rel, fresh);
        break;
      case "file": {
        const gate = (node.size ?? 0) > SMALL_FILE ? ctx.largeFiles : ctx.smallFiles;
        // (Asked again once admitted: a file may wait here long after the restore was stopped.)
        await gate.run(async () => {
          ctx.signal?.throwIfAborted();
          await restoreFile(ctx, node, dest, rel, fresh);
        });
        break;
      }
    }
  } catch (e) {
    if (ctx.signal?.aborted) throw e;
    ctx.result.errors.push(itemError(rel, e, "UNWRITABLE"));
  }
}

/**
 * Makes `p` a real directory (not a symlink to one) so nothing is ever written through a link.
 * Returns whether it created it (inside a `fresh` folder there is nothing to look at first).
 */
async function ensureRealDir(p: string, fresh: boolean): Promise<boolean> {
  if (!fresh) {
    const st = await fs.lstat(fsPath(p)).catch(() => undefined);
    if (st?.isDirectory()) return false;
    if (st) await fs.rm(fsPath(p), { recursive: true, force: true });
  }
  await fs.mkdir(fsPath(p), { mode: 0o700 });
  return true;
}

async function removeExisting(p: string): Promise<void> {
  const st = await fs.lstat(fsPath(p)).catch(() => undefined);
  if (st) await fs.rm(fsPath(p), { recursive: st.isDirectory(), force: true });
}

/**
 * A FIFO or device node: created with mknod (device nodes only as root, as restic does; else a
 * warning), then owner, mode, attributes and times, never opening it (opening a device can have
 * effects) and never through a symlink swapped in.
 */
async function restoreSpecial(ctx: Ctx, node: TreeNode, dest: string, rel: string, fresh: boolean) {
  if (node.type !== "fifo" && !ctx.asRoot) {
    ctx.devicesSkipped++;
    return;
  }
  if (!fresh) await removeExisting(dest);
  const type = node.type === "fifo" ? S_IFIFO : node.type === "chardev" ? S_IFCHR : S_IFBLK;
  makeNode(dest, type, node.mode, BigInt(node.rdev ?? "0"));
  if (ctx.asRoot) {
    try {
      await fs.lchown(fsPath(dest), node.uid, node.gid);
    } catch (e) {
      if (errnoCode(e) !== "EPERM" && errnoCode(e) !== "EINVAL") throw e;
    }
  }
  chmodNoFollow(dest, node.mode);
  setXattrsByPath(ctx, dest, node, rel);
  const mtimeNs = BigInt(node.mtime);
  const secs = Number(mtimeNs / 1_000_000_000n) + Number(mtimeNs % 1_000_000_000n) / 1e9;
  await fs.lutimes(fsPath(dest), secs, secs);
  ctx.result.special++;
}

/** Attributes of something that is not opened (a symlink, a FIFO, a device), by path (lsetxattr). */
function setXattrsByPath(ctx: Ctx, dest: string, node: TreeNode, rel: string): void {
  const problems: string[] = [];
  for (const x of xattrsFor(ctx, node) ?? []) {
    try {
      setXattr(dest, x.name, Buffer.from(x.value, "base64"));
    } catch (e) {
      problems.push(`extended attribute ${displayName(x.name)} not restored: ${(e as Error).message}`);
    }
  }
  reportXattrProblems(ctx, rel, problems);
}

async function restoreFile(
  ctx: Ctx,
  node: TreeNode,
  dest: string,
  rel: string,
  fresh: boolean,
): Promise<void> {
  const content = node.content ?? [];
  const linkKey =
    node.links && node.links > 1 && node.inode ? `${node.device ?? ""}:${node.inode}` : undefined;
  const first = linkKey ? ctx.links.get(linkKey) : undefined;
  if (first) {
    const a = await fs.lstat(fsPath(first)).catch(() => undefined);
    const b = await fs.lstat(fsPath(dest)).catch(() => undefined);
    if (!(a && b && a.ino === b.ino && a.dev === b.dev)) {
      await removeExisting(dest);
      await fs.link(fsPath(first), fsPath(dest));
    }
    ctx.result.files++;
    ctx.progress.addFile(node.size ?? 0);
    return;
  }
  const existing = fresh ? undefined : fsSync.lstatSync(fsPath(dest), { throwIfNoEntry: false });
  const skipped =
    existing?.isFile() === true &&
    existing.size === node.size &&
    (await fileMatches(ctx.repo, dest, content));
  if (skipped) {
    ctx.result.filesSkipped++;
    ctx.progress.addFile(node.size ?? 0);
    applyMetaNoFollow(ctx, dest, node, false, rel);
  } else {
    await writeFileAtomically(ctx, node, dest, rel, existing);
    ctx.result.bytes += node.size ?? 0;
    ctx.progress.addFile();
  }
  if (ctx.verify) {
    if (!(await fileMatches(ctx.repo, dest, content, node.size))) {
      throw failure("MISMATCH", "does not match the snapshot after restore");
    }
    ctx.result.verified++;
  }
  ctx.result.files++;
  if (linkKey) ctx.links.set(linkKey, dest);
}

/** Files up to this size are written whole by a worker thread (see Repository.restoreSmallFile);
 * larger ones blob by blob with several in flight. */
const SMALL_FILE = 1024 * 1024;

/**
 * Writes a file's content through a temporary file renamed into place (core/file-write.ts):
 * a crash or a damaged blob never leaves a half-written file under the real name.
 */
async function writeFileAtomically(
  ctx: Ctx,
  node: TreeNode,
  dest: string,
  rel: string,
  existing: fsSync.Stats | undefined,
): Promise<void> {
  const meta: FileMeta = {
    mode: node.mode,
    uid: node.uid,
    gid: node.gid,
    mtimeNs: node.mtime,
    chown: ctx.asRoot,
  };
  const xattrs = xattrsFor(ctx, node);
  if (xattrs) meta.xattrs = xattrs;
  const size = node.size ?? 0;
  const label = `file ${displayName(rel)}`;
  // A folder in the way cannot be renamed over; anything else can.
  if (existing?.isDirectory()) await removeExisting(dest);
  if (size <= SMALL_FILE) {
    const ids = (node.content ?? []).map((h) => Buffer.from(h, "hex"));
    reportXattrProblems(ctx, rel, await ctx.repo.restoreSmallFile(ids, dest, size, meta, label));
    ctx.progress.addBytes(size);
    return;
  }
  const tmp = tempPathFor(dest);
  const fd = openTemp(tmp);
  let r: { written: number; holes: boolean };
  try {
    r = await writeContent(ctx, node.content ?? [], fd);
    if (r.written !== size)
      throw new CorruptionError(label, `restored ${r.written} bytes but the snapshot says ${size}`);
  } catch (e) {
    discardTemp(fd, tmp);
    throw e;
  }
  reportXattrProblems(ctx, rel, finishTemp(fd, tmp, dest, r.written, r.holes, meta));
}

/** Blobs of one file in flight at once (up to this many bytes): reads, decoding on the worker
 * threads and writes overlap instead of taking turns. */
const AHEAD_BYTES = 16 * 1024 * 1024;
const AHEAD_BLOBS = 16;

/** Writes a file's blobs at their offsets, several at once; returns the length written. */
async function writeContent(
  ctx: Ctx,
  content: string[],
  fd: number,
): Promise<{ written: number; holes: boolean }> {
  const inflight: Promise<{ length: number; hole: boolean }>[] = [];
  const sizes: number[] = [];
  let position = 0;
  let bytes = 0;
  let holes = false;
  const settle = async () => {
    const r = await inflight.shift()!;
    bytes -= sizes.shift()!;
    holes ||= r.hole;
    ctx.progress.addBytes(r.length);
  };
  try {
    for (const hex of content) {
      const id = Buffer.from(hex, "hex");
      const size = ctx.repo.lookup(id)?.rawLength ?? 0;
      while (inflight.length > 0 && (inflight.length >= AHEAD_BLOBS || bytes + size > AHEAD_BYTES)) {
        await settle();
      }
      const p = ctx.repo.writeBlobTo(id, fd, position);
      p.catch(() => {}); // awaited in order by settle()
      inflight.push(p);
      sizes.push(size);
      bytes += size;
      position += size;
    }
    while (inflight.length > 0) await settle();
  } finally {
    // On failure, let the other writes into this descriptor finish before it is closed.
    await Promise.allSettled(inflight);
  }
  return { written: position, holes };
}

/** Owner, attributes and times of a symlink itself (lchown, lsetxattr, lutimes never follow it). */
async function applyLinkMeta(ctx: Ctx, p: string, node: TreeNode, rel: string): Promise<void> {
  const mtimeNs = BigInt(node.mtime);
  const secs = Number(mtimeNs / 1_000_000_000n) + Number(mtimeNs % 1_000_000_000n) / 1e9;
  if (ctx.asRoot) {
    try {
      await fs.lchown(fsPath(p), node.uid, node.gid);
    } catch (e) {
      if (errnoCode(e) !== "EPERM" && errnoCode(e) !== "EINVAL") throw e;
    }
  }
  setXattrsByPath(ctx, p, node, rel);
  await fs.lutimes(fsPath(p), secs, secs).catch(() => {});
}

/**
 * Owner, mode and times of an existing folder or file, through a descriptor opened with
 * O_NOFOLLOW: if someone swapped a symlink in since it was restored, this fails instead of
 * changing whatever the link points to (restores often run as root).
 */
function applyMetaNoFollow(ctx: Ctx, p: string, node: TreeNode, dir: boolean, rel: string): void {
  const flags =
    constants.O_RDONLY | constants.O_NOFOLLOW | (dir ? constants.O_DIRECTORY : constants.O_NONBLOCK);
  const fd = fsSync.openSync(fsPath(p), flags);
  const xattrs = xattrsFor(ctx, node);
  try {
    const problems = applyMetaFd(
      fd,
      {
        mode: node.mode,
        uid: node.uid,
        gid: node.gid,
        mtimeNs: node.mtime,
        chown: ctx.asRoot,
        ...(xattrs ? { xattrs } : {}),
      },
      displayName(rel),
    );
    reportXattrProblems(ctx, rel, problems);
  } finally {
    fsSync.closeSync(fd);
  }
}

export { LifeboatError };
