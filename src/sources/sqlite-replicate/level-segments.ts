import { CorruptionError } from "../../core/errors.js";
import {
  type SegmentHeader,
  type SegmentPagesRecord,
  type SegmentRefRecord,
  segmentPagesKind,
  segmentRefKind,
  type WalPoint,
} from "../../repo/records-segment-levels.js";
import type { Repository } from "../../repo/repository.js";
import { storeStream } from "../../snapshot/store-file.js";
import { type Page, pagesOf } from "./merge.js";
import { WAL_HEADER } from "./wal.js";

/**
 * Segments in levels (records-segment-levels.ts): pages up to INLINE_MAX bytes are stored inside
 * the segment's own object (one object per segment, deleted outright when replaced: nothing can
 * share it); larger ones as content-defined data blobs in packs, referenced by a small document.
 */
export const INLINE_MAX = 4 * 1024 * 1024;

export interface LevelSegment {
  /** Object name: `sqlite-seg/<K>/<id>` or `sqlite-segref/<K>/<id>`. */
  object: string;
  header: SegmentHeader;
  /** Page records, when stored inline. */
  data?: Buffer;
  /** Data blob ids, when stored as blobs. */
  content?: string[];
}

/** Segments and the background snapshot take turns at the repository (see Turns). */
export interface RepoTurns {
  run<T>(task: () => Promise<T>): Promise<T>;
  wait(): Promise<void>;
}

function withoutPayload(r: SegmentPagesRecord | SegmentRefRecord): SegmentHeader {
  const { data: _d, content: _c, ...header } = r as SegmentPagesRecord & Partial<SegmentRefRecord>;
  return header;
}

/**
 * Stores a segment whose page records come from `records`: inline when they fit INLINE_MAX,
 * else as blobs (durable and indexed before the document). `header` is completed with the byte
 * count and the time the data was stored. With `turns` (callers that do not hold the turn), the
 * blobs and the document wait for their turn; the pages are streamed either way.
 */
export async function storeLevelSegment(
  repo: Repository,
  header: (size: number, storedAt: string) => SegmentHeader,
  records: AsyncIterable<Buffer>,
  opts: { now: () => number; turns?: RepoTurns },
): Promise<LevelSegment> {
  const it = records[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let size = 0;
  let more = false;
  for (;;) {
    const r = await it.next();
    if (r.done) break;
    head.push(r.value);
    size += r.value.length;
    if (size > INLINE_MAX) {
      more = true;
      break;
    }
  }
  if (!more) {
    const h = header(size, new Date(opts.now()).toISOString());
    const data = Buffer.concat(head);
    const stored = await repo.records.write(segmentPagesKind, { ...h, data }, { label: h.generation });
    return { object: stored.object, header: h, data };
  }
  const turns = opts.turns;
  async function* all(): AsyncIterable<Buffer> {
    for (const b of head) yield b;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      if (turns) await turns.wait();
      yield r.value;
    }
  }
  const stored = await repo.withWriter((w) => storeStream(w, all(), () => {}));
  const write = async () => {
    const h = header(stored.size, new Date(opts.now()).toISOString());
    // (The record store flushes this process's writer first: the blobs are durable before it.)
    const rec = await repo.records.write(
      segmentRefKind,
      { ...h, content: stored.content },
      { label: h.generation },
    );
    return { object: rec.object, header: h, content: stored.content };
  };
  return turns ? turns.run(write) : write();
}

/** Reads a segment by its object name. */
export async function loadLevelSegment(repo: Repository, object: string): Promise<LevelSegment> {
  if (object.startsWith(segmentPagesKind.prefix)) {
    const r = await repo.records.read(segmentPagesKind, object);
    return { object, header: withoutPayload(r), data: r.data };
  }
  if (object.startsWith(segmentRefKind.prefix)) {
    const r = await repo.records.read(segmentRefKind, object);
    return { object, header: withoutPayload(r), content: r.content };
  }
  throw new Error(`internal error: ${object} is not a replication segment`);
}

/** The pages of a segment in ascending page order, checked against its header. */
export async function* levelSegmentPages(repo: Repository, seg: LevelSegment): AsyncGenerator<Page> {
  const h = seg.header;
  const rec = 4 + h.pageSize;
  const damaged = (why: string) =>
    new CorruptionError(
      seg.object,
      `segment ${h.first}..${h.last} (level ${h.level}) of generation ${h.generation} ${why}`,
    );
  let count = 0;
  let prev = 0;
  const check = (p: Page) => {
    if (p.pgno <= prev || p.pgno > h.dbPages) throw damaged(`holds page ${p.pgno} out of order or place`);
    prev = p.pgno;
    count++;
  };
  if (seg.data) {
    if (seg.data.length !== h.size || h.size % rec !== 0)
      throw damaged(`has ${seg.data.length} bytes of pages, its header says ${h.size}`);
    for (const p of pagesOf(seg.data, h.pageSize)) {
      check(p);
      yield p;
    }
  } else {
    let carry = Buffer.alloc(0);
    let total = 0;
    for (const c of seg.content ?? []) {
      const b = await repo.loadBlob(Buffer.from(c, "hex"));
      total += b.length;
      let data = carry.length > 0 ? Buffer.concat([carry, b]) : b;
      const whole = Math.floor(data.length / rec) * rec;
      for (const p of pagesOf(data.subarray(0, whole), h.pageSize)) {
        check(p);
        yield p;
      }
      data = data.subarray(whole);
      carry = Buffer.from(data);
    }
    if (total !== h.size || carry.length !== 0)
      throw damaged(`has ${total} bytes of pages, its header says ${h.size}`);
  }
  if (count !== h.pages) throw damaged(`holds ${count} pages, its header says ${h.pages}`);
}

/** Where a chain stands: the WAL position and interval segment it ended at. */
export interface ChainEnd {
  walEnd: WalPoint;
  last: number;
  pageSize: number;
}

/**
 * Why `next` cannot be applied after `prev` (undefined when it can): it must start at the next
 * interval segment, and where `prev` ended in the same WAL, or at the first frame of a
 * restarted one.
 */
export function doesNotFollow(prev: ChainEnd, next: SegmentHeader): string | undefined {
  if (next.first !== prev.last + 1)
    return `segment ${prev.last + 1} of generation ${next.generation} is missing`;
  const a = prev.walEnd;
  const b = next.walStart;
  const same = a.salt1 === b.salt1 && a.salt2 === b.salt2;
  const follows = (b.offset === a.offset && same) || (b.offset === WAL_HEADER && (!same || a.offset === 0));
  if (!follows)
    return `segment ${next.first}..${next.last} of generation ${next.generation} does not continue the WAL where the previous one ended`;
  if (next.pageSize !== prev.pageSize)
    return `segment ${next.first}..${next.last} of generation ${next.generation} has page size ${next.pageSize}, not ${prev.pageSize}`;
  return undefined;
}
