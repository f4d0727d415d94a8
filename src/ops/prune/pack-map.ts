import type { BlobLocation } from "../../repo/blob.js";
import { isStorageId } from "../../repo/config.js";
import type { Repository } from "../../repo/repository.js";

export interface PackInfo {
  id: string;
  blobs: BlobLocation[];
  /** Size in storage (undefined when the pack is indexed but missing). */
  size: number | undefined;
}

export interface PackMap {
  /** Indexed packs by id, from the index files in force. */
  packs: Map<string, PackInfo>;
  /** Packs in storage that no index file lists, with their sizes. */
  unindexed: Map<string, number>;
  /** The index files read (a rewritten index supersedes exactly these). */
  indexFiles: string[];
  /** Index files already superseded but still stored: a rewritten index supersedes them too,
   * so that they never come back into force when the file superseding them is deleted. */
  supersededFiles: string[];
}

/** Reads every pack's blob list from the index files the repository has loaded, and storage sizes. */
export async function readPackMap(repo: Repository): Promise<PackMap> {
  const stored = new Map<string, number>();
  for await (const o of repo.backend.list("data/")) {
    const id = o.name.split("/").at(-1)!;
    if (isStorageId(id)) stored.set(id, o.size);
  }
  const packs = new Map<string, PackInfo>();
  const files = repo.indexFiles();
  for (const f of files.loaded) {
    for (const p of (await repo.readIndexFile(f)).packs) {
      if (!packs.has(p.id)) packs.set(p.id, { id: p.id, blobs: p.blobs, size: stored.get(p.id) });
    }
  }
  const unindexed = new Map([...stored].filter(([id]) => !packs.has(id)));
  return {
    packs,
    unindexed,
    indexFiles: [...files.loaded],
    supersededFiles: [...files.superseded],
  };
}
