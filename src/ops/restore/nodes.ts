import fsSync, { constants, promises as fs } from "node:fs";
import { errnoCode } from "../../core/errors.js";
import { displayName, fsPath } from "../../core/names.js";
import { applyMetaFd } from "../../fsio/file-write.js";
import {
  chmodNoFollow,
  makeNode,
  nativeUnavailable,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
  setXattr,
} from "../../fsio/native.js";
import type { TreeNode } from "../../repo/tree.js";
import type { Ctx } from "./types.js";

/*
 * Everything a restore creates that is not a regular file's content: folders, symlinks, FIFOs
 * and device nodes, and the metadata of each. Nothing is ever done through a symlink: links
 * are never followed (lchown, lutimes, O_NOFOLLOW) and a folder in the way of a link or a file
 * is removed, never entered.
 */

/** The attributes of a node to restore: all of them as root; otherwise those the kernel lets
 * an owner set (user. and system. ACLs). The others are counted for a warning. */
export function xattrsFor(ctx: Ctx, node: TreeNode): { name: string; value: string }[] | undefined {
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
export function reportXattrProblems(ctx: Ctx, rel: string, problems: string[]): void {
  for (const message of problems) ctx.result.errors.push({ path: rel, code: "UNWRITABLE", message });
}

/**
 * Makes `p` a real directory (not a symlink to one) so nothing is ever written through a link.
 * Returns whether it created it (inside a `fresh` folder there is nothing to look at first).
 */
export async function ensureRealDir(p: string, fresh: boolean): Promise<boolean> {
  if (!fresh) {
    const st = await fs.lstat(fsPath(p)).catch(() => undefined);
    if (st?.isDirectory()) return false;
    if (st) await fs.rm(fsPath(p), { recursive: true, force: true });
  }
  fsSync.mkdirSync(fsPath(p), { mode: 0o700 });
  return true;
}

export async function removeExisting(p: string): Promise<void> {
  const st = await fs.lstat(fsPath(p)).catch(() => undefined);
  if (st) await fs.rm(fsPath(p), { recursive: st.isDirectory(), force: true });
}

export async function restoreSymlink(ctx: Ctx, node: TreeNode, dest: string, rel: string, fresh: boolean) {
  if (!fresh) await removeExisting(dest);
  fsSync.symlinkSync(fsPath(node.target!), fsPath(dest));
  await applyLinkMeta(ctx, dest, node, rel);
  ctx.result.symlinks++;
}

/**
 * A FIFO or device node: created with mknod (device nodes only as root, as restic does; else a
 * warning), then owner, mode, attributes and times, never opening it (opening a device can have
 * effects) and never through a symlink swapped in.
 */
export async function restoreSpecial(ctx: Ctx, node: TreeNode, dest: string, rel: string, fresh: boolean) {
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
  await fs.lutimes(fsPath(dest), seconds(node.mtime), seconds(node.mtime));
  ctx.result.special++;
}

const seconds = (mtime: string) => {
  const ns = BigInt(mtime);
  return Number(ns / 1_000_000_000n) + Number(ns % 1_000_000_000n) / 1e9;
};

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

/** Owner, attributes and times of a symlink itself (lchown, lsetxattr, lutimes never follow it). */
async function applyLinkMeta(ctx: Ctx, p: string, node: TreeNode, rel: string): Promise<void> {
  if (ctx.asRoot) {
    try {
      await fs.lchown(fsPath(p), node.uid, node.gid);
    } catch (e) {
      if (errnoCode(e) !== "EPERM" && errnoCode(e) !== "EINVAL") throw e;
    }
  }
  setXattrsByPath(ctx, p, node, rel);
  await fs.lutimes(fsPath(p), seconds(node.mtime), seconds(node.mtime)).catch(() => {});
}

/**
 * Owner, mode and times of an existing folder or file, through a descriptor opened with
 * O_NOFOLLOW: if someone swapped a symlink in since it was restored, this fails instead of
 * changing whatever the link points to (restores often run as root).
 */
export function applyMetaNoFollow(ctx: Ctx, p: string, node: TreeNode, dir: boolean, rel: string): void {
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
