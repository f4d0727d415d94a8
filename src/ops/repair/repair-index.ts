import { mapLimit } from "../../core/concurrency.js";
import { isStorageId, names } from "../../repo/config.js";
import type { IndexPack } from "../../repo/index-file.js";
import { PACK_PREFIX } from "../../repo/pack.js";
import { listStorageIds, type Repository } from "../../repo/repository.js";

export interface RepairIndexResult {
  packs: number;
  blobs: number;
  /** Packs whose header could not be read (damaged); their blobs are not indexed. */
  damaged: { pack: string; error: string }[];
  /** Index files replaced by the rebuilt one. */
  replaced: number;
  newIndex: string;
}

/**
 * Rebuilds the index from the pack headers alone: every pack in storage is asked for its
 * encrypted header (two ranged reads, not the whole pack), and one new index file replaces
 * every existing one. Packs whose header is damaged are named and left out; `check` and
 * `repair snapshots` deal with what they held.
 */
export async function repairIndex(
  repo: Repository,
  onPack?: (done: number, total: number) => void,
): Promise<RepairIndexResult> {
  const packs: { id: string; size: number }[] = [];
  for await (const o of repo.backend.list("data/")) {
    const id = o.name.split("/").at(-1)!;
    if (isStorageId(id)) packs.push({ id, size: o.size });
  }
  const oldIndexes = await listStorageIds(repo.backend, "index/");
  const damaged: RepairIndexResult["damaged"] = [];
  let done = 0;
  const entries = await mapLimit(packs, 8, async (p): Promise<IndexPack | undefined> => {
    const what = names.pack(p.id);
    try {
      const prefix = await repo.backend.get(what, { offset: 0, length: PACK_PREFIX });
      const tail = await repo.backend.get(what, { offset: Math.max(0, p.size - 4), length: 4 });
      const hlen = tail.length === 4 ? tail.readUInt32LE(0) : 0;
      const start = p.size - 4 - hlen;
      if (start < PACK_PREFIX) throw new Error("header length out of range");
      const header = await repo.backend.get(what, { offset: start, length: hlen });
      // The header decodes the same from prefix + header + length as from the whole pack.
      const blobs = repo.readPackHeader(Buffer.concat([prefix, header, tail]), what);
      return { id: p.id, blobs };
    } catch (e) {
      damaged.push({ pack: p.id, error: (e as Error).message });
      return undefined;
    } finally {
      onPack?.(++done, packs.length);
    }
  });
  const good = entries.filter((e): e is IndexPack => e !== undefined);
  const newIndex = await repo.writeIndexFile({ supersedes: oldIndexes, packs: good });
  for (const id of oldIndexes) if (id !== newIndex) await repo.backend.delete(names.index(id));
  await repo.reloadIndex(true);
  return {
    packs: good.length,
    blobs: good.reduce((n, p) => n + p.blobs.length, 0),
    damaged,
    replaced: oldIndexes.length,
    newIndex,
  };
}
