import fsSync from "node:fs";
import { failure, isLifeboatError, itemError } from "../../core/errors.js";
import { displayName, fsPath, joinName } from "../../core/names.js";
import type { FileMeta } from "../../fsio/file-write.js";
import type { FileToRestore } from "../../repo/repository.js";
import type { TreeNode } from "../../repo/tree.js";
import { fileMatches } from "./compare.js";
import { applyMetaNoFollow, removeExisting, reportXattrProblems, xattrsFor } from "./nodes.js";
import type { Ctx, DirState, ExistingEntry, FileSink } from "./types.js";

/** A batch is handed to the repository when it holds this many files or blobs: the plan by
 * pack is per batch, so memory follows the batch, not the snapshot. Measured on the mail
 * profile (30,300 files): peak RSS 294 MiB with 8,192 files a batch, 230 MiB with 1,024. */
const BATCH_FILES = 2048;
const BATCH_BLOBS = 8192;
/** Files re-read at once for --verify. */
const VERIFYING = 8;

interface Item {
  node: TreeNode;
  dest: string;
  rel: string;
  linkKey: string | undefined;
}

/**
 * Collects the files a restore writes and hands them to the repository in batches (see
 * Repository.restoreFiles: each batch is read pack by pack). One batch is written while the
 * walk fills the next. Files already right (a resumed restore) are skipped here, with their
 * metadata set; --verify re-reads each file once it is written.
 */
export class FileBatcher implements FileSink {
  private files: FileToRestore[] = [];
  private items: Item[] = [];
  private blobs = 0;
  private running: Promise<void> | undefined;
  private readonly verifying = new Set<Promise<void>>();

  constructor(private readonly ctx: Ctx) {}

  async add(node: TreeNode, dir: DirState, rel: string, existing: ExistingEntry | undefined): Promise<void> {
    const { ctx } = this;
    const dest = joinName(dir.path, node.name);
    const linkKey =
      node.links && node.links > 1 && node.inode ? `${node.device ?? ""}:${node.inode}` : undefined;
    if (existing === "file" && (await this.alreadyRight(node, dest, rel))) {
      ctx.result.filesSkipped++;
      ctx.result.files++;
      ctx.progress.addFile(node.size ?? 0);
      if (linkKey) ctx.links.set(linkKey, dest);
      await this.verifyLater(node, dest, rel);
      return;
    }
    // A folder in the way is removed; anything else is replaced by the rename at the end.
    if (existing === "dir") await removeExisting(dest);
    const content = node.content ?? [];
    this.files.push({
      dest,
      direct: dir.staged && existing !== "file" && existing !== "other",
      size: node.size ?? 0,
      meta: this.meta(node, dir),
      label: `file ${displayName(rel)}`,
      content,
    });
    this.items.push({ node, dest, rel, linkKey });
    this.blobs += content.length;
    if (this.files.length >= BATCH_FILES || this.blobs >= BATCH_BLOBS) await this.flush();
  }

  /** Hands the files collected so far to the repository (after the batch before them is done). */
  async flush(): Promise<void> {
    const files = this.files;
    const items = this.items;
    this.files = [];
    this.items = [];
    this.blobs = 0;
    await this.running;
    if (files.length === 0) return;
    const p = this.write(files, items);
    p.catch(() => {}); // awaited by the next flush or by finish()
    this.running = p;
  }

  /** Waits for every file handed over (and its verification). */
  async finish(): Promise<void> {
    await this.flush();
    await this.running;
    this.running = undefined;
    await Promise.all(this.verifying);
  }

  private async write(files: FileToRestore[], items: Item[], lastTry = false): Promise<void> {
    const { ctx } = this;
    const gone: number[] = [];
    await ctx.repo.restoreFiles(files, {
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onBytes: (n) => {
        ctx.result.bytes += n;
        ctx.progress.addBytes(n);
      },
      onFile: (i, outcome) => {
        const item = items[i]!;
        if (!outcome.ok) {
          // A pack a prune deleted while this batch ran, its blobs moved to where the restorer
          // did not follow them: tried once more below, with the index read again.
          const packGone = isLifeboatError(outcome.error) && outcome.error.code === "NOT_FOUND";
          if (packGone && !lastTry) gone.push(i);
          else ctx.result.errors.push(itemError(item.rel, outcome.error, "UNWRITABLE"));
          return;
        }
        reportXattrProblems(ctx, item.rel, outcome.notes);
        ctx.progress.addFile();
        ctx.result.files++;
        if (item.linkKey) ctx.links.set(item.linkKey, item.dest);
        void this.verifyLater(item.node, item.dest, item.rel);
      },
    });
    if (gone.length === 0) return;
    // A failed file leaves nothing behind, so it is simply written again.
    await ctx.repo.reloadIndex();
    await this.write(
      gone.map((i) => files[i]!),
      gone.map((i) => items[i]!),
      true,
    );
  }

  /** With --verify, re-reads the file and compares it with the snapshot (a few at a time). */
  private async verifyLater(node: TreeNode, dest: string, rel: string): Promise<void> {
    const { ctx } = this;
    if (!ctx.verify) return;
    while (this.verifying.size >= VERIFYING) await Promise.race(this.verifying);
    const p: Promise<void> = fileMatches(ctx.repo, dest, node.content ?? [], node.size)
      .then((same) => {
        if (!same) throw failure("MISMATCH", "does not match the snapshot after restore");
        ctx.result.verified++;
      })
      .catch((e: unknown) => {
        ctx.result.errors.push(itemError(rel, e, "UNWRITABLE"));
        ctx.result.files--;
      })
      .finally(() => this.verifying.delete(p));
    this.verifying.add(p);
  }

  /** A file already in the target with the right size and content: its metadata is set
   * again and it is not written. */
  private async alreadyRight(node: TreeNode, dest: string, rel: string): Promise<boolean> {
    const st = fsSync.lstatSync(fsPath(dest), { throwIfNoEntry: false });
    if (!st?.isFile() || st.size !== node.size) return false;
    if (!(await fileMatches(this.ctx.repo, dest, node.content ?? []))) return false;
    applyMetaNoFollow(this.ctx, dest, node, false, rel);
    return true;
  }

  /**
   * Owner, mode, times and attributes of a new file. In a folder this restore created, a file
   * already belongs to the restoring user and group, and gets the mode it is created with when
   * the umask removes none of its bits and no default ACL decides instead: the fchown and the
   * fchmod are left out then.
   */
  private meta(node: TreeNode, dir: DirState): FileMeta {
    const { ctx } = this;
    const xattrs = xattrsFor(ctx, node);
    const n = dir.fresh ? ctx.newFiles : undefined;
    const meta: FileMeta = {
      mode: node.mode,
      uid: node.uid,
      gid: node.gid,
      mtimeNs: node.mtime,
      chown: ctx.asRoot && !(n && n.uid === node.uid && n.gid === node.gid),
      chmod: !(
        n &&
        n.umask !== undefined &&
        !n.defaultAcl &&
        !xattrs &&
        (node.mode & 0o7000) === 0 &&
        (node.mode & 0o777 & n.umask) === 0
      ),
    };
    if (xattrs) meta.xattrs = xattrs;
    return meta;
  }
}
