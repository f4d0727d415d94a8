import type { PackMap } from "./pack-map.js";

/** A pack below this share of the configured pack size counts as small. */
export const SMALL_PACK_SHARE = 0.5;
/** Small packs of one blob type are merged once there are at least this many. */
export const MIN_SMALL_PACKS = 10;

/**
 * Packs to merge because they are small: every process that flushes often writes a pack each
 * time (`pg wal-push` one per WAL file, `replicate` one per merged segment, every backup its last
 * data and tree packs), and each costs an object, a listing entry and an index entry forever.
 * Once a blob type has MIN_SMALL_PACKS small packs, all of them are planned for repacking: their
 * used blobs are copied into full-size packs (the last one may be small again, and waits for
 * the next ones). `skip`: packs the plan already deletes or repacks.
 */
export function smallPacks(
  map: PackMap,
  packSize: number,
  skip: (id: string) => boolean,
  usedBytes: (id: string) => number,
): { id: string; used: number; unused: number }[] {
  const byType = new Map<number, { id: string; used: number; unused: number }[]>();
  for (const p of map.packs.values()) {
    if (p.size === undefined || p.size >= packSize * SMALL_PACK_SHARE || skip(p.id)) continue;
    const type = p.blobs[0]?.type ?? 0;
    const used = usedBytes(p.id);
    const stored = p.blobs.reduce((n, b) => n + b.length, 0);
    const list = byType.get(type) ?? [];
    list.push({ id: p.id, used, unused: stored - used });
    byType.set(type, list);
  }
  return [...byType.values()].filter((l) => l.length >= MIN_SMALL_PACKS).flat();
}
