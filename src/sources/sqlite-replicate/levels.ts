import { LifeboatError } from "../../core/errors.js";

/**
 * Compaction levels of continuous replication (docs/replication.md, "Levels"), after Litestream
 * 0.5's LTX compaction: level 0 holds one segment per shipping interval; each level above merges
 * the segments whose reads finished within one window of its length (aligned to the epoch, so a
 * window of a level lies within one window of every coarser level) into one segment holding the
 * last version of each page (see windowOf). A segment of a level is deleted once it is older than that level's
 * `keepMs` and a coarser segment covers it, so restore granularity coarsens with age.
 */
export interface Level {
  /** Window length in ms (0 for level 0: the shipping interval). */
  windowMs: number;
  /** How long this level's segments stay after a coarser one covers them (Infinity: with the generation). */
  keepMs: number;
}

/** Interval segments for 5 minutes, 30-second ones for an hour, 5-minute ones for a day, then hourly. */
export const DEFAULT_LEVELS: readonly Level[] = [
  { windowMs: 0, keepMs: 5 * 60_000 },
  { windowMs: 30_000, keepMs: 3_600_000 },
  { windowMs: 5 * 60_000, keepMs: 24 * 3_600_000 },
  { windowMs: 3_600_000, keepMs: Number.POSITIVE_INFINITY },
];

export const DEFAULT_LEVELS_SPEC = "5m,30s:1h,5m:24h,1h";

/**
 * Parses `KEEP0,WINDOW1:KEEP1,...,WINDOWn[:KEEPn]`: how long interval segments are kept, then
 * each coarser level's window and how long its segments are kept (the last one may omit it: kept
 * as long as the generation). Each window must be a whole multiple of the one before.
 */
export function parseLevels(spec: string, parseDuration: (s: string, option: string) => number): Level[] {
  const bad = (why: string) =>
    new LifeboatError(
      "USAGE",
      `--levels ${JSON.stringify(spec)}: ${why}`,
      `e.g. --levels ${DEFAULT_LEVELS_SPEC} (interval segments kept 5m; 30s windows kept 1h; 5m windows kept 24h; 1h windows)`,
    );
  const parts = spec.split(",").map((p) => p.trim());
  if (parts.length < 1 || parts.some((p) => p === "")) throw bad("empty item");
  const levels: Level[] = [{ windowMs: 0, keepMs: parseDuration(parts[0]!, "--levels") }];
  for (const [i, p] of parts.slice(1).entries()) {
    const [w, k, extra] = p.split(":");
    if (extra !== undefined) throw bad(`${p} is not WINDOW or WINDOW:KEEP`);
    const last = i === parts.length - 2;
    if (k === undefined && !last) throw bad(`only the last level may omit how long it is kept (${p})`);
    const windowMs = parseDuration(w!, "--levels");
    const prev = levels.at(-1)!.windowMs;
    if (prev > 0 && windowMs % prev !== 0) throw bad(`window ${w} is not a multiple of the one before`);
    if (windowMs <= prev) throw bad(`windows must grow (${w})`);
    levels.push({
      windowMs,
      keepMs: k === undefined ? Number.POSITIVE_INFINITY : parseDuration(k, "--levels"),
    });
  }
  return levels;
}

/**
 * How many levels are produced (level 0 included): a level is made only if the segments of the
 * level below expire while the generation may still be restored (their keep is shorter than the
 * retention period); otherwise they stay with the generation and merging them would only cost.
 */
export function levelsInUse(levels: readonly Level[], retentionMs: number): number {
  let n = 1;
  while (n < levels.length && levels[n - 1]!.keepMs < retentionMs) n++;
  return n;
}

/**
 * The window of a level a read that finished at `timeMs` belongs to: window k covers
 * (k × windowMs, (k + 1) × windowMs], so a merged segment ends at or before a round time and
 * a read that finished exactly at one closes the window before it.
 */
export function windowOf(timeMs: number, windowMs: number): number {
  return Math.ceil(timeMs / windowMs) - 1;
}

/** What the chain search needs of a segment. */
export interface ChainEntry {
  level: number;
  first: number;
  last: number;
  /** ms since the epoch. */
  commitsBefore: number;
  size: number;
}

/** Each segment read costs a request besides its bytes. */
const REQUEST_COST = 64 * 1024;

/**
 * The cheapest sequence of segments that applies in order from interval segment `from`
 * (each next one starts right after the previous one's `last`), using only segments whose
 * commits were all before `limit`:
 * - with `to`: one that ends exactly at `to` (undefined when there is none);
 * - without: one that reaches the furthest interval segment possible ([] when none applies).
 * Cost: bytes read plus a fixed cost per segment. Segments form a DAG (every step moves forward),
 * so one pass in order of position finds the cheapest path to every reachable position.
 */
export function cheapestChain<T extends ChainEntry>(
  entries: readonly T[],
  from: number,
  opts: { to?: number; limit?: number } = {},
): T[] | undefined {
  const limit = opts.limit ?? Number.POSITIVE_INFINITY;
  const byFirst = new Map<number, T[]>();
  const positions = new Set<number>([from]);
  for (const e of entries) {
    if (e.commitsBefore > limit || e.first < from || e.last < e.first) continue;
    if (opts.to !== undefined && e.last > opts.to) continue;
    const list = byFirst.get(e.first) ?? [];
    list.push(e);
    byFirst.set(e.first, list);
    positions.add(e.last + 1);
  }
  const cost = new Map<number, number>([[from, 0]]);
  const via = new Map<number, T>();
  for (const p of [...positions].sort((a, b) => a - b)) {
    const here = cost.get(p);
    if (here === undefined) continue;
    for (const e of byFirst.get(p) ?? []) {
      const c = here + e.size + REQUEST_COST;
      const next = e.last + 1;
      const known = cost.get(next);
      if (known === undefined || c < known) {
        cost.set(next, c);
        via.set(next, e);
      }
    }
  }
  let end: number;
  if (opts.to !== undefined) {
    end = opts.to + 1;
    if (!cost.has(end)) return undefined;
  } else {
    end = Math.max(...cost.keys());
  }
  const chain: T[] = [];
  for (let p = end; p !== from; ) {
    const e = via.get(p)!;
    chain.push(e);
    p = e.first;
  }
  return chain.reverse();
}
