import { CorruptionError, LifeboatError } from "../core/errors.js";
import type { Repository } from "../repo/repository.js";
import type { SnapshotWithId } from "../repo/snapshot.js";
import type { TreeNode } from "../repo/tree.js";
import { listNodes } from "./walker.js";

/** A file of a database snapshot: its path inside the snapshot and its tree node. */
export interface SnapshotFile {
  path: string;
  node: TreeNode;
}

/** Every regular file of a snapshot (database snapshots hold a handful). */
export async function listSnapshotFiles(repo: Repository, snap: SnapshotWithId): Promise<SnapshotFile[]> {
  const files = await listNodes(repo, snap.tree, (n) => n.type === "file");
  return files.map((f) => ({ path: f.path.slice(1), node: f.node }));
}

/**
 * The bytes of a file node, blob by blob, each one decrypted and verified by the repository.
 * The total size is checked against the node, so a truncated chain of blobs cannot pass.
 */
export async function* readSnapshotFile(repo: Repository, file: SnapshotFile): AsyncGenerator<Buffer> {
  let size = 0;
  for (const id of file.node.content ?? []) {
    const b = await repo.loadBlob(Buffer.from(id, "hex"));
    size += b.length;
    yield b;
  }
  if (size !== (file.node.size ?? 0)) {
    throw new CorruptionError(
      `file ${file.path}`,
      `has ${size} bytes in its blobs but the snapshot says ${file.node.size ?? 0}`,
    );
  }
}

/** Says clearly when a snapshot is not of the engine a command expects. */
export function requireSource(snap: SnapshotWithId, types: string[], what: string): void {
  if (!snap.source || !types.includes(snap.source)) {
    throw new LifeboatError(
      "USAGE",
      `snapshot ${snap.id.slice(0, 8)} is ${snap.source ? `a ${snap.source} snapshot` : "a file snapshot"}, not ${what}`,
      snap.source
        ? `restore it with the option for ${snap.source} (see \`lifeboat restore --help\`)`
        : "restore file snapshots with --target DIR",
    );
  }
}
