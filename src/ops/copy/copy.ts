import type { BlobWriter, Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import type { TreeNode } from "../../repo/tree.js";
import { type BackupProgress, ProgressCounter } from "../../snapshot/progress.js";
import { withSession } from "../../snapshot/session.js";
import { storeStream } from "../../snapshot/store-file.js";

export interface CopyOptions {
  /** Source snapshots to copy (resolved); default every snapshot. */
  snapshots?: SnapshotWithId[];
  dryRun?: boolean;
  onProgress?: (p: BackupProgress) => void;
  onCopied?: (from: SnapshotWithId, to: string) => void;
  /** Stops between snapshots and folders; a later copy reuses what was stored. */
  signal?: AbortSignal;
}

export interface CopyResult {
  copied: { from: string; to: string }[];
  /** Source snapshots the destination already has a copy of. */
  skipped: string[];
  bytesAdded: number;
  bytesStored: number;
}

/** The mark a copy carries so that copying again skips it: `<source repo id>:<snapshot id>`. */
export const copiedFrom = (src: Repository, id: string) => `${src.config.id}:${id}`;

/**
 * Copies snapshots into another repository with other keys. Blob ids are keyed per repository
 * and chunk boundaries are secret per repository, so file contents are streamed through the
 * destination's chunker: what the destination already holds (from its own backups or an
 * earlier copy) is not stored again. A copied snapshot records its origin in `meta.copiedFrom`,
 * so running copy again copies nothing twice.
 */
export async function copySnapshots(
  src: Repository,
  dst: Repository,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const wanted = options.snapshots ?? (await src.listSnapshots());
  const have = new Set(
    (await dst.listSnapshots())
      .map((s) => s.meta?.copiedFrom)
      .filter((m): m is string => typeof m === "string"),
  );
  const toCopy = wanted.filter((s) => !have.has(copiedFrom(src, s.id)));
  const skipped = wanted.filter((s) => have.has(copiedFrom(src, s.id))).map((s) => s.id);
  const result: CopyResult = { copied: [], skipped, bytesAdded: 0, bytesStored: 0 };
  if (options.dryRun || toCopy.length === 0) return result;
  const before = { ...dst.writeStats };
  const progress = new ProgressCounter(options.onProgress);
  progress.setTotals(
    toCopy.length,
    toCopy.reduce((n, s) => n + (s.summary?.bytes ?? 0), 0),
  );
  await withSession(dst, async () => {
    const trees = new Map<string, string>();
    const contents = new Map<string, string[]>();
    const copyTree = async (w: BlobWriter, id: string): Promise<string> => {
      const done = trees.get(id);
      if (done) return done;
      options.signal?.throwIfAborted();
      const nodes: TreeNode[] = [];
      for (const n of (await src.loadTree(id)).nodes) {
        if (n.type === "dir" && n.subtree) nodes.push({ ...n, subtree: await copyTree(w, n.subtree) });
        else if (n.type === "file" && n.content)
          nodes.push({ ...n, content: await copyContent(w, n.content) });
        else nodes.push(n);
      }
      const out = (await w.saveTree({ nodes })).id;
      trees.set(id, out);
      return out;
    };
    const copyContent = async (w: BlobWriter, ids: string[]): Promise<string[]> => {
      const key = ids.join(",");
      const done = contents.get(key);
      if (done) return done;
      async function* blobs(): AsyncIterable<Buffer> {
        for (const id of ids) yield await src.loadBlob(Buffer.from(id, "hex"));
      }
      const r = await storeStream(w, blobs(), (n) => progress.addBytes(n));
      contents.set(key, r.content);
      return r.content;
    };
    for (const s of toCopy) {
      const { id: _id, parent: _parent, ...rest } = s;
      const tree = await dst.withWriter((w) => copyTree(w, s.tree));
      const to = await dst.writeSnapshot({
        ...rest,
        tree,
        meta: { ...(s.meta ?? {}), copiedFrom: copiedFrom(src, s.id) },
      });
      result.copied.push({ from: s.id, to });
      progress.addFile(0);
      options.onCopied?.(s, to);
    }
  });
  result.bytesAdded = dst.writeStats.bytesAdded - before.bytesAdded;
  result.bytesStored = dst.writeStats.bytesStored - before.bytesStored;
  return result;
}
