import { randomBytes } from "node:crypto";
import fsSync, { constants, promises as fs } from "node:fs";
import path from "node:path";
import { mapLimit } from "../../core/concurrency.js";
import { CorruptionError, errnoCode, isLifeboatError, LifeboatError } from "../../core/errors.js";
import type { Repository } from "../../repo/repository.js";
import type { Snapshot } from "../../repo/snapshot.js";
import type { TreeNode } from "../../repo/tree.js";
import { isSafeName } from "../../repo/tree.js";
import { Excludes } from "../backup/excludes.js";
import { type BackupProgress, ProgressCounter } from "../backup/progress.js";
import { fileMatches } from "./compare.js";
import { resolveSubpath } from "./subpath.js";

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
  onProgress?: (p: BackupProgress) => void;
}

export interface RestoreResult {
  files: number;
  /** Files already present with the right content (a resumed restore skips them). */
  filesSkipped: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  verified: number;
  /** Paths (relative to target) that failed, with the reason. */
  errors: string[];
}

interface Ctx {
  repo: Repository;
  include: Excludes | undefined;
  exclude: Excludes;
  verify: boolean;
  asRoot: boolean;
  result: RestoreResult;
  progress: ProgressCounter;
  /** device:inode → first restored path, to recreate hard links. */
  links: Map<string, string>;
}

/** Restores a snapshot (or a path inside it) into `target`, never writing outside it. */
export async function restore(
  repo: Repository,
  snapshot: Snapshot,
  options: RestoreOptions,
): Promise<RestoreResult> {
  const root = await resolveSubpath(repo, snapshot, options.subpath ?? "/");
  await fs.mkdir(options.target, { recursive: true });
  const target = await fs.realpath(options.target);
  const ctx: Ctx = {
    repo,
    include: options.include && options.include.length > 0 ? new Excludes(options.include) : undefined,
    exclude: new Excludes(options.exclude ?? []),
    verify: options.verify ?? false,
    asRoot: process.getuid?.() === 0,
    result: { files: 0, filesSkipped: 0, dirs: 0, symlinks: 0, bytes: 0, verified: 0, errors: [] },
    progress: new ProgressCounter(options.onProgress),
    links: new Map(),
  };
  if (options.onProgress) {
    const totals = await countTotals(
      repo,
      root.kind === "dir" ? root.tree : undefined,
      root.kind === "node" ? [root.node] : [],
    );
    ctx.progress.setTotals(totals.files, totals.bytes);
  }
  if (root.kind === "dir") {
    await restoreDir(ctx, root.tree, target, "", false);
  } else {
    await restoreNode(ctx, root.node, target, root.node.name, true);
  }
  ctx.progress.finish();
  return ctx.result;
}

async function countTotals(repo: Repository, tree: string | undefined, extra: TreeNode[]) {
  let files = 0;
  let bytes = 0;
  const walk = async (nodes: TreeNode[]) => {
    for (const n of nodes) {
      if (n.type === "file") {
        files++;
        bytes += n.size ?? 0;
      } else if (n.type === "dir" && n.subtree) await walk((await repo.loadTree(n.subtree)).nodes);
    }
  };
  if (tree) await walk((await repo.loadTree(tree)).nodes);
  await walk(extra);
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

/** Restores the nodes of tree `treeId` into the existing real directory `dir`. */
async function restoreDir(ctx: Ctx, treeId: string, dir: string, rel: string, all: boolean): Promise<void> {
  let nodes: TreeNode[];
  try {
    nodes = (await ctx.repo.loadTree(treeId)).nodes;
  } catch (e) {
    ctx.result.errors.push(`${rel || "."}: ${(e as Error).message}`);
    return;
  }
  const seen = new Set<string>();
  const plain: [TreeNode, string][] = [];
  const linked: [TreeNode, string][] = [];
  const dirs: [TreeNode, string][] = [];
  for (const node of nodes) {
    // Whatever a (possibly crafted) snapshot holds, only plain, unique names are created.
    if (!isSafeName(node.name) || seen.has(node.name)) {
      ctx.result.errors.push(
        `${rel || "."}: refused unsafe or duplicate name ${JSON.stringify(node.name)} in the snapshot`,
      );
      continue;
    }
    seen.add(node.name);
    const list = node.type === "dir" ? dirs : node.type === "file" && (node.links ?? 1) > 1 ? linked : plain;
    list.push([node, rel ? `${rel}/${node.name}` : node.name]);
  }
  // Files and symlinks of one folder are restored concurrently; hard-linked files and folders
  // one by one afterwards, so the first copy of each link group is complete before others link.
  await mapLimit(plain, FILES_IN_FLIGHT, async ([node, childRel]) => {
    const w = await wanted(ctx, node, childRel, all);
    if (w !== "none") await restoreNode(ctx, node, dir, childRel, w === "all");
  });
  for (const [node, childRel] of [...linked, ...dirs]) {
    const w = await wanted(ctx, node, childRel, all);
    if (w !== "none") await restoreNode(ctx, node, dir, childRel, w === "all");
  }
}

const FILES_IN_FLIGHT = 8;

let zeroes = Buffer.alloc(0);
/** Whether a blob is all zero bytes (a memcmp against a shared zero buffer). */
function isZero(b: Buffer): boolean {
  if (b.length < 4096) return false;
  if (zeroes.length < b.length) zeroes = Buffer.alloc(b.length);
  return b.equals(zeroes.subarray(0, b.length));
}

/** Restores one node into the real directory `dir`; `all` = everything below is wanted. */
async function restoreNode(ctx: Ctx, node: TreeNode, dir: string, rel: string, all: boolean): Promise<void> {
  const dest = path.join(dir, node.name);
  try {
    switch (node.type) {
      case "dir": {
        await ensureRealDir(dest);
        ctx.result.dirs++;
        await restoreDir(ctx, node.subtree!, dest, rel, all);
        await applyMeta(ctx, dest, node, false);
        break;
      }
      case "symlink": {
        await removeExisting(dest);
        await fs.symlink(node.target!, dest);
        await applyMeta(ctx, dest, node, true);
        ctx.result.symlinks++;
        break;
      }
      case "file":
        await restoreFile(ctx, node, dir, dest, rel);
        break;
    }
  } catch (e) {
    ctx.result.errors.push(`${rel}: ${isLifeboatError(e) ? e.message : (e as Error).message}`);
  }
}

/** Makes `p` a real directory (not a symlink to one) so nothing is ever written through a link. */
async function ensureRealDir(p: string): Promise<void> {
  const st = await fs.lstat(p).catch(() => undefined);
  if (st?.isDirectory()) return;
  if (st) await fs.rm(p, { recursive: true, force: true });
  await fs.mkdir(p, { mode: 0o700 });
}

async function removeExisting(p: string): Promise<void> {
  const st = await fs.lstat(p).catch(() => undefined);
  if (st) await fs.rm(p, { recursive: st.isDirectory(), force: true });
}

async function restoreFile(ctx: Ctx, node: TreeNode, dir: string, dest: string, rel: string): Promise<void> {
  const content = node.content ?? [];
  const linkKey =
    node.links && node.links > 1 && node.inode ? `${node.device ?? ""}:${node.inode}` : undefined;
  const first = linkKey ? ctx.links.get(linkKey) : undefined;
  if (first) {
    const a = await fs.lstat(first).catch(() => undefined);
    const b = await fs.lstat(dest).catch(() => undefined);
    if (!(a && b && a.ino === b.ino && a.dev === b.dev)) {
      await removeExisting(dest);
      await fs.link(first, dest);
    }
    ctx.result.files++;
    ctx.progress.addFile(node.size ?? 0);
    return;
  }
  const existing = await fs.lstat(dest).catch(() => undefined);
  const skipped =
    existing?.isFile() === true &&
    existing.size === node.size &&
    (await fileMatches(ctx.repo, dest, content));
  if (skipped) {
    ctx.result.filesSkipped++;
    ctx.progress.addFile(node.size ?? 0);
  } else {
    // Write beside the destination under a temporary name and rename it into place: a crash or
    // a damaged blob never leaves a half-written file under the real name.
    const tmp = path.join(dir, `.${node.name.slice(0, 100)}.lifeboat-${randomBytes(6).toString("hex")}`);
    const fh = await fs.open(
      tmp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    try {
      let written = 0;
      let holes = false;
      for (const id of content) {
        const blob = await ctx.repo.loadBlob(Buffer.from(id, "hex"));
        // Runs of zeroes become holes (sparse files): skip the write, set the size at the end.
        if (isZero(blob)) holes = true;
        else await fh.write(blob, 0, blob.length, written);
        written += blob.length;
        ctx.progress.addBytes(blob.length);
      }
      if (holes) await fh.truncate(written);
      if (written !== node.size) {
        throw new CorruptionError(
          `file ${rel}`,
          `restored ${written} bytes but the snapshot says ${node.size}`,
        );
      }
      // Owner, mode and times on the open descriptor: no path lookups, and three calls that
      // never wait for the disk instead of three trips through the thread pool.
      applyMetaFd(ctx, fh.fd, node);
      await fh.close();
    } catch (e) {
      await fh.close().catch(() => {});
      await fs.rm(tmp, { force: true });
      throw e;
    }
    if (existing && !existing.isFile()) await removeExisting(dest);
    await fs.rename(tmp, dest);
    ctx.result.bytes += node.size ?? 0;
    ctx.progress.addFile();
  }
  if (skipped) await applyMeta(ctx, dest, node, false);
  if (ctx.verify) {
    if (!(await fileMatches(ctx.repo, dest, content, node.size))) {
      throw new CorruptionError(`restored file ${rel}`, "does not match the snapshot after restore");
    }
    ctx.result.verified++;
  }
  ctx.result.files++;
  if (linkKey) ctx.links.set(linkKey, dest);
}

function applyMetaFd(ctx: Ctx, fd: number, node: TreeNode): void {
  const mtimeNs = BigInt(node.mtime);
  const secs = Number(mtimeNs / 1_000_000_000n) + Number(mtimeNs % 1_000_000_000n) / 1e9;
  if (ctx.asRoot) {
    try {
      fsSync.fchownSync(fd, node.uid, node.gid);
    } catch (e) {
      if (errnoCode(e) !== "EPERM" && errnoCode(e) !== "EINVAL") throw e;
    }
  }
  // After chown, which may clear set-id bits.
  fsSync.fchmodSync(fd, node.mode & 0o7777);
  fsSync.futimesSync(fd, secs, secs);
}

async function applyMeta(ctx: Ctx, p: string, node: TreeNode, isLink: boolean): Promise<void> {
  const mtimeNs = BigInt(node.mtime);
  const secs = Number(mtimeNs / 1_000_000_000n) + Number(mtimeNs % 1_000_000_000n) / 1e9;
  if (ctx.asRoot) {
    try {
      if (isLink) await fs.lchown(p, node.uid, node.gid);
      else await fs.chown(p, node.uid, node.gid);
    } catch (e) {
      if (errnoCode(e) !== "EPERM" && errnoCode(e) !== "EINVAL") throw e;
    }
  }
  if (isLink) {
    await fs.lutimes(p, secs, secs).catch(() => {});
    return;
  }
  await fs.chmod(p, node.mode & 0o7777);
  await fs.utimes(p, secs, secs);
}

export { LifeboatError };
