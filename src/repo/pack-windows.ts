/** A contiguous range of a pack read at once, and the blobs that lie wholly inside it. */
export interface PackWindow {
  start: number;
  end: number;
  /** Indexes into the blob list given to `planWindows`. */
  blobs: number[];
}

/**
 * Cuts a pack of `size` bytes into contiguous windows that cover it from 0 to `size`, each
 * ending where a blob ends and about `window` bytes long (a blob longer than that gets a window
 * of its own size), so that a check holds a few windows at a time instead of whole packs.
 * Blobs that cannot lie wholly inside one window — past `size`, or overlapping a blob of the
 * previous window (an index that disagrees with the pack) — are returned as `stray`, to be
 * read on their own.
 */
export function planWindows(
  blobs: readonly { offset: number; length: number }[],
  size: number,
  window: number,
): { windows: PackWindow[]; stray: number[] } {
  const order = blobs.map((_, i) => i).sort((a, b) => blobs[a]!.offset - blobs[b]!.offset);
  const windows: PackWindow[] = [];
  const stray: number[] = [];
  let cur: PackWindow = { start: 0, end: 0, blobs: [] };
  for (const i of order) {
    const b = blobs[i]!;
    const end = b.offset + b.length;
    if (end > size || b.offset < cur.start) {
      stray.push(i);
      continue;
    }
    if (end - cur.start > window && cur.blobs.length > 0) {
      if (b.offset < cur.end) {
        stray.push(i);
        continue;
      }
      windows.push(cur);
      cur = { start: cur.end, end: cur.end, blobs: [] };
    }
    cur.blobs.push(i);
    cur.end = Math.max(cur.end, end);
  }
  // The rest (the header, any gap): in the last window when it fits, else in windows of its own.
  if (size - cur.start <= window) {
    cur.end = size;
    windows.push(cur);
    return { windows, stray };
  }
  if (cur.blobs.length > 0) windows.push(cur);
  for (let at = cur.end; at < size; at += window)
    windows.push({ start: at, end: Math.min(size, at + window), blobs: [] });
  return { windows, stray };
}
