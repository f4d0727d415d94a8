import fsSync, { promises as fs } from "node:fs";
import { itemError } from "../../core/errors.js";
import { displayName, fsPath, joinName, nameFromBytes } from "../../core/names.js";
import { currentUmask } from "../../fsio/file-write.js";
import { nativeUnavailable, readXattrs } from "../../fsio/native.js";
import type { Repository } from "../../repo/repository.js";
import type { Snapshot } from "../../repo/snapshot.js";
import type { TreeNode } from "../../repo/tree.js";
import { isSafeName } from "../../repo/tree.js";
import { Excludes } from "../../snapshot/excludes.js";
import { ProgressCounter } from "../../snapshot/progress.js";
import { resolveSubpath } from "../../snapshot/subpath.js";
import { walkTree } from "../../snapshot/walker.js";
import { FileBatcher } from "./files.js";
import { applyMetaNoFollow, ensureRealDir, restoreSpecial, restoreSymlink } from "./nodes.js";
import { isStagingName, listExisting, prepareStage, publish, type Stage, stagingName } from "./staging.js";
import type { Ctx, DirState, ExistingEntry, RestoreOptions, RestoreResult } from "./types.js";

export type { RestoreOptions, RestoreResult };

/**
 * Restores a snapshot (or a path inside it) into `target`, never writing outside it. Folders,
 * symlinks and special files are made as the trees are walked; files are collected in batches
 * and written by the repository pack by pack (Repository.restoreFiles); folder metadata and hard
 * links come last. Into an empty target, everything goes through a staging folder (staging.ts).
 * A prune that repacks meanwhile does not make it fail: a pack found gone sends the reads to
 * where the blobs moved, after reading the index again (docs/gc.md). It writes nothing to the
 * repository, so it works with read-only access.
 */
export async function restore(
  repo: Repository,
  snapshot: Snapshot,
  options: RestoreOptions,
): Promise<RestoreResult> {
  repo.requireFullKey("restore (it reads data)"); // before anything is created in the target
  const subpath = options.subpath ?? "/";
  const root = await resolveSubpath(repo, snapshot, subpath);
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
    linked: [],
    dirMeta: [],
    files: undefined as unknown as FileBatcher,
    newFiles: undefined,
  };
  const files = new FileBatcher(ctx);
  ctx.files = files;
  if (options.onProgress) {
    const totals = await countTotals(
      repo,
      root.kind === "dir" ? root.tree : undefined,
      root.kind === "node" ? [root.node] : [],
    );
    ctx.progress.setTotals(totals.files, totals.bytes);
  }
  if (root.kind === "node") {
    // One file, link or special file: written beside its destination and renamed into place.
    const fresh = (await fs.readdir(fsPath(target))).length === 0;
    const dir: DirState = { path: target, rel: "", fresh, staged: false };
    await restoreNode(
      ctx,
      root.node,
      dir,
      root.node.name,
      true,
      fresh ? undefined : existingOf(target, root.node.name),
    );
    await files.finish();
    await restoreLinked(ctx, files);
    finishRestore(ctx, (p) => p);
    return ctx.result;
  }
  const stage = prepareStage(target, stagingName(snapshot.tree, subpath), ctx.result.errors);
  try {
    if (stage.staging) ctx.newFiles = newFileOwner(stage.staging);
    await restoreDir(
      ctx,
      root.tree,
      { path: stage.dir, rel: "", fresh: stage.fresh, staged: !!stage.staging },
      false,
    );
    await files.finish();
    await restoreLinked(ctx, files);
  } finally {
    // Finished or stopped: what is in the staging folder is whole (a stopped restore waited
    // for the files in progress and removed the unfinished ones).
    await files.finish().catch(() => {});
    publishStage(ctx, stage, target);
  }
  // Folder modes come after the move out of the staging folder: moving a folder to another
  // parent needs write permission on it, which its final mode may not give.
  const staging = stage.staging;
  finishRestore(ctx, staging ? (p) => target + p.slice(staging.length) : (p) => p);
  return ctx.result;
}

/** After the files: folder metadata (`where`: a folder's path now), warnings. */
function finishRestore(ctx: Ctx, where: (p: string) => string): void {
  for (const d of ctx.dirMeta.reverse()) {
    try {
      applyMetaNoFollow(ctx, where(d.dest), d.node, true, d.rel || ".");
    } catch (e) {
      ctx.result.errors.push(itemErrorOf(d.rel || ".", e));
    }
  }
  if (ctx.xattrsSkipped > 0) {
    const why = nativeUnavailable() ?? "the trusted. and security. namespaces need root";
    ctx.result.warnings.push(`${ctx.xattrsSkipped} extended attribute(s) not restored: ${why}`);
  }
  if (ctx.devicesSkipped > 0)
    ctx.result.warnings.push(`${ctx.devicesSkipped} device node(s) not restored: creating them needs root`);
  ctx.progress.finish();
}

function publishStage(ctx: Ctx, stage: Stage, target: string): void {
  try {
    publish(stage, target, ctx.result.errors);
  } catch (e) {
    ctx.result.errors.push(itemErrorOf(".", e));
  }
}

/**
 * Hard-linked files, after everything else: the first of each group is restored whole (its
 * batch finished before any other links to it), the others become links to it. If the first
 * could not be restored, the next one of its group is tried.
 */
async function restoreLinked(ctx: Ctx, files: FileBatcher): Promise<void> {
  let pending = ctx.linked;
  ctx.linked = [];
  while (pending.length > 0) {
    const later: typeof pending = [];
    const chosen = new Set<string>();
    for (const l of pending) {
      const key = `${l.node.device ?? ""}:${l.node.inode}`;
      const first = ctx.links.get(key);
      if (first) {
        await linkTo(ctx, first, l);
      } else if (chosen.has(key)) {
        later.push(l);
      } else {
        chosen.add(key);
        await restoreNode(
          ctx,
          l.node,
          l.dir,
          l.rel,
          l.all,
          l.dir.fresh ? undefined : existingOf(l.dir.path, l.node.name),
        );
      }
    }
    await files.finish();
    // Groups whose chosen first failed try their next member; the others link now.
    pending = later;
    if (later.every((l) => !ctx.links.has(`${l.node.device ?? ""}:${l.node.inode}`)) && chosen.size === 0)
      break;
  }
}

async function linkTo(ctx: Ctx, first: string, l: Ctx["linked"][number]): Promise<void> {
  const dest = joinName(l.dir.path, l.node.name);
  try {
    const a = fsSync.lstatSync(fsPath(first), { throwIfNoEntry: false });
    const b = fsSync.lstatSync(fsPath(dest), { throwIfNoEntry: false });
    if (!(a && b && a.ino === b.ino && a.dev === b.dev)) {
      if (b) await fs.rm(fsPath(dest), { recursive: b.isDirectory(), force: true });
      fsSync.linkSync(fsPath(first), fsPath(dest));
    }
    ctx.result.files++;
    ctx.progress.addFile(l.node.size ?? 0);
  } catch (e) {
    if (ctx.signal?.aborted) throw e;
    ctx.result.errors.push(itemErrorOf(l.rel, e));
  }
}

/**
 * Who owns a new file in the staging folder without a chown (this process, or the folder's
 * group when it has the set-group-id bit), the umask, and whether a default ACL sets modes
 * instead of it.
 */
function newFileOwner(staging: string): Ctx["newFiles"] {
  try {
    const st = fsSync.statSync(fsPath(staging));
    const gid = st.mode & 0o2000 ? st.gid : process.getegid?.();
    const uid = process.geteuid?.();
    if (uid === undefined || gid === undefined) return undefined;
    const defaultAcl = nativeUnavailable()
      ? true
      : readXattrs(staging).some((x) => x.name === "system.posix_acl_default");
    return { uid, gid, umask: currentUmask(), defaultAcl };
  } catch {
    return undefined;
  }
}

function existingOf(dir: string, name: string): ExistingEntry | undefined {
  const st = fsSync.lstatSync(fsPath(joinName(dir, name)), { throwIfNoEntry: false });
  return !st ? undefined : st.isFile() ? "file" : st.isDirectory() ? "dir" : "other";
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

/** Entries of a fresh folder whose check for an existing copy is skipped. */
const NOTHING = new Map<string, ExistingEntry>();

/**
 * Restores the nodes of tree `treeId` into the existing real directory `dir`: folders, links
 * and special files at once, files handed to the batcher, subfolders depth first (the order
 * the backup wrote them, so the batches follow the packs).
 */
async function restoreDir(ctx: Ctx, treeId: string, dir: DirState, all: boolean): Promise<void> {
  let nodes: TreeNode[];
  try {
    // Each folder is read once here: not kept in the tree cache (a mail store's 1,199 folders
    // held 14 MiB there until the end). Trees read before (the walk that counts for progress,
    // --include's look below a folder) are still taken from it.
    nodes = (await ctx.repo.loadTree(treeId, { keep: false })).nodes;
  } catch (e) {
    ctx.result.errors.push(itemErrorOf(dir.rel || ".", e, "DAMAGED"));
    return;
  }
  const seen = new Set<string>();
  const safe: TreeNode[] = [];
  for (const node of nodes) {
    // Whatever a (possibly crafted) snapshot holds, only plain, unique names are created.
    if (
      !isSafeName(node.name) ||
      seen.has(node.name) ||
      (dir.staged && dir.rel === "" && isStagingName(node.name))
    ) {
      ctx.result.errors.push({
        path: dir.rel || ".",
        code: "UNSAFE_NAME",
        message: `refused unsafe or duplicate name ${JSON.stringify(displayName(node.name))} in the snapshot`,
      });
      continue;
    }
    seen.add(node.name);
    safe.push(node);
  }
  // A folder that was not empty is listed once: what is there, and leftovers of killed runs.
  let existing = NOTHING;
  if (!dir.fresh) {
    try {
      existing = listExisting(dir.path, seen);
    } catch (e) {
      ctx.result.errors.push(itemErrorOf(dir.rel || ".", e));
      return;
    }
  }
  const subdirs: [TreeNode, string, boolean][] = [];
  for (const node of safe) {
    const rel = dir.rel ? `${dir.rel}/${node.name}` : node.name;
    const w = await wanted(ctx, node, rel, all);
    if (w === "none") continue;
    if (node.type === "dir") {
      subdirs.push([node, rel, w === "all"]);
      continue;
    }
    if (node.type === "file" && (node.links ?? 1) > 1) {
      ctx.linked.push({ node, dir, rel, all: w === "all" });
      continue;
    }
    await restoreNode(ctx, node, dir, rel, w === "all", existing.get(node.name));
  }
  for (const [node, rel, sub] of subdirs)
    await restoreNode(ctx, node, dir, rel, sub, existing.get(node.name));
}

/** Restores one node into the real directory `dir`; `all` = everything below is wanted. */
async function restoreNode(
  ctx: Ctx,
  node: TreeNode,
  dir: DirState,
  rel: string,
  all: boolean,
  existing: ExistingEntry | undefined,
): Promise<void> {
  const dest = joinName(dir.path, node.name);
  ctx.signal?.throwIfAborted();
  try {
    switch (node.type) {
      case "dir": {
        const created = await ensureRealDir(dest, existing === undefined && dir.fresh);
        ctx.result.dirs++;
        ctx.dirMeta.push({ dest, node, rel });
        await restoreDir(ctx, node.subtree!, { path: dest, rel, fresh: created, staged: dir.staged }, all);
        break;
      }
      case "symlink":
        await restoreSymlink(ctx, node, dest, rel, existing === undefined);
        break;
      case "fifo":
      case "chardev":
      case "blockdev":
        await restoreSpecial(ctx, node, dest, rel, existing === undefined);
        break;
      case "file":
        await ctx.files.add(node, dir, rel, existing);
        break;
    }
  } catch (e) {
    if (ctx.signal?.aborted) throw e;
    ctx.result.errors.push(itemErrorOf(rel, e));
  }
}

function itemErrorOf(rel: string, e: unknown, fallback: "UNWRITABLE" | "DAMAGED" = "UNWRITABLE") {
  return itemError(rel, e, fallback);
}
