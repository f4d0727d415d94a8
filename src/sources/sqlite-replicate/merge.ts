import type { SegmentHeader } from "../../repo/records-segment-levels.js";

/** One page of a segment. */
export interface Page {
  pgno: number;
  page: Buffer;
}

/** A segment to merge: its size bounds and its pages in ascending page order. */
export interface PageSource {
  minDbPages: number;
  dbPages: number;
  pages: AsyncIterable<Page>;
}

/**
 * Merges consecutive segments (in the order they apply) into the pages of one segment that,
 * applied the same way (cut the file to the smallest size over the range, write the pages, set
 * the final size), gives the same file as applying them one by one: each page in its last
 * version, and a page only if no later segment cut the database below it (a later one that
 * wrote it again brings it back). Streams every source once, in page order (a k-way merge), so
 * memory stays at one page per source.
 */
export async function* mergePages(sources: readonly PageSource[]): AsyncGenerator<Page> {
  const n = sources.length;
  // cutAfter[i]: the smallest size any segment after i cut the database to.
  const cutAfter = new Array<number>(n).fill(Number.POSITIVE_INFINITY);
  for (let i = n - 2; i >= 0; i--) cutAfter[i] = Math.min(cutAfter[i + 1]!, sources[i + 1]!.minDbPages);
  const its = sources.map((s) => s.pages[Symbol.asyncIterator]());
  const heads: (Page | undefined)[] = await Promise.all(
    its.map(async (it) => {
      const r = await it.next();
      return r.done ? undefined : r.value;
    }),
  );
  const advance = async (i: number) => {
    const prev = heads[i]!.pgno;
    const r = await its[i]!.next();
    heads[i] = r.done ? undefined : r.value;
    if (heads[i] && heads[i]!.pgno <= prev)
      throw new Error(`internal error: pages of a segment out of order (${heads[i]!.pgno} after ${prev})`);
  };
  for (;;) {
    let min = Number.POSITIVE_INFINITY;
    for (const h of heads) if (h && h.pgno < min) min = h.pgno;
    if (min === Number.POSITIVE_INFINITY) return;
    // The newest segment holding this page has its last version.
    let newest = -1;
    for (let i = 0; i < n; i++) if (heads[i]?.pgno === min) newest = i;
    const page = heads[newest]!;
    if (min <= cutAfter[newest]!) yield { pgno: min, page: page.page };
    for (let i = 0; i < n; i++) if (heads[i]?.pgno === min) await advance(i);
  }
}

/** The header fields a merged segment takes from the segments it replaces (in order). */
export function mergedHeader(
  parts: readonly SegmentHeader[],
  level: number,
  storedAt: string,
  pages: number,
  size: number,
): SegmentHeader {
  const first = parts[0]!;
  const last = parts.at(-1)!;
  return {
    version: 1,
    source: first.source,
    hostname: first.hostname,
    generation: first.generation,
    level,
    first: first.first,
    last: last.last,
    walStart: first.walStart,
    walEnd: last.walEnd,
    walRestarted: first.walRestarted,
    pageSize: first.pageSize,
    minDbPages: Math.min(...parts.map((p) => p.minDbPages)),
    dbPages: last.dbPages,
    frames: parts.reduce((s, p) => s + p.frames, 0),
    commits: parts.reduce((s, p) => s + p.commits, 0),
    pages,
    commitsAfter: first.commitsAfter,
    commitsBefore: last.commitsBefore,
    storedAt,
    size,
  };
}

/** Page records as stored: page number (u32 big-endian) + page. */
export function pageRecord(pgno: number, page: Buffer): Buffer[] {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(pgno, 0);
  return [head, page];
}

/** Splits a buffer of page records. */
export function* pagesOf(data: Buffer, pageSize: number): Generator<Page> {
  const rec = 4 + pageSize;
  for (let o = 0; o + rec <= data.length; o += rec)
    yield { pgno: data.readUInt32BE(o), page: data.subarray(o + 4, o + rec) };
}
