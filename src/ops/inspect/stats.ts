import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";

export interface DataStats {
  /** File entries (a hard-linked or repeated file counts each time it appears). */
  files: number;
  /** Sum of file sizes. */
  logicalBytes: number;
  /** Distinct data blobs referenced. */
  blobs: number;
  /** Plaintext bytes of those distinct blobs. */
  uniqueBytes: number;
  /** Bytes those blobs take in packs (compressed and encrypted; the index `length`). */
  storedBytes: number;
  /** logical / unique (1 when nothing is shared; 0 when there is no data). */
  dedupRatio: number;
  /** unique / stored (about 1 for random data, above 1 for compressible data). */
  compressionRatio: number;
  /** Referenced blobs the index does not know (damage: see `lifeboat check`). */
  missingBlobs: number;
}

export interface SnapshotStats extends DataStats {
  snapshot: SnapshotWithId;
}

export interface RepoStats {
  snapshots: SnapshotStats[];
  /** All the given snapshots together (blobs shared between them counted once). */
  total: DataStats;
  /** Every pack in storage, from the storage listing. */
  packs: number;
  packBytes: number;
  /** Blobs in the index (data and trees). */
  indexedBlobs: number;
}

const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);

class Acc {
  files = 0;
  logicalBytes = 0;
  readonly blobs = new Set<string>();
  result(repo: Repository): DataStats {
    let uniqueBytes = 0;
    let storedBytes = 0;
    let missingBlobs = 0;
    for (const id of this.blobs) {
      const loc = repo.lookup(Buffer.from(id, "hex"));
      if (!loc) {
        missingBlobs++;
        continue;
      }
      uniqueBytes += loc.rawLength;
      storedBytes += loc.length;
    }
    return {
      files: this.files,
      logicalBytes: this.logicalBytes,
      blobs: this.blobs.size,
      uniqueBytes,
      storedBytes,
      dedupRatio: ratio(this.logicalBytes, uniqueBytes),
      compressionRatio: ratio(uniqueBytes, storedBytes),
      missingBlobs,
    };
  }
}

/**
 * Sizes of snapshots and of the repository. Per tree, the file count and logical size are
 * computed once and reused; within one snapshot each distinct tree's blobs are collected once.
 */
export async function repositoryStats(repo: Repository, snapshots: SnapshotWithId[]): Promise<RepoStats> {
  const counts = new Map<string, { files: number; bytes: number }>();
  const total = new Acc();

  const visit = async (
    tree: string,
    seen: Set<string>,
    acc: Acc,
  ): Promise<{ files: number; bytes: number }> => {
    const known = counts.get(tree);
    if (known && seen.has(tree)) return known;
    seen.add(tree);
    let files = 0;
    let bytes = 0;
    for (const n of (await repo.loadTree(tree)).nodes) {
      if (n.type === "file") {
        files++;
        bytes += n.size ?? 0;
        for (const id of n.content ?? []) acc.blobs.add(id);
      } else if (n.type === "dir" && n.subtree) {
        const sub = await visit(n.subtree, seen, acc);
        files += sub.files;
        bytes += sub.bytes;
      }
    }
    const c = { files, bytes };
    counts.set(tree, c);
    return c;
  };

  const per: SnapshotStats[] = [];
  for (const snap of snapshots) {
    const acc = new Acc();
    const c = await visit(snap.tree, new Set(), acc);
    acc.files = c.files;
    acc.logicalBytes = c.bytes;
    per.push({ snapshot: snap, ...acc.result(repo) });
    total.files += c.files;
    total.logicalBytes += c.bytes;
    for (const id of acc.blobs) total.blobs.add(id);
  }

  let packs = 0;
  let packBytes = 0;
  for await (const o of repo.backend.list("data/")) {
    if (!/^data\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(o.name)) continue;
    packs++;
    packBytes += o.size;
  }
  return { snapshots: per, total: total.result(repo), packs, packBytes, indexedBlobs: repo.indexSize };
}
