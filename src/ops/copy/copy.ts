import { createHash } from "node:crypto";
import { CorruptionError, isLifeboatError } from "../../core/errors.js";
import { type SegmentRecord, segmentKind } from "../../repo/records-segment.js";
import { type WalBlobHint, type WalRecord, walKind } from "../../repo/records-wal.js";
import type { BlobWriter, Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { nodeFeatures, type TreeNode } from "../../repo/tree.js";
import { type BackupProgress, ProgressCounter } from "../../snapshot/progress.js";
import { withSession } from "../../snapshot/session.js";
import { storeStream } from "../../snapshot/store-file.js";
import {
  copyLevels,
  type LevelsPlan,
  levelsGeneration,
  levelsGenerations,
  levelsToCopy,
} from "./copy-levels.js";

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
  /** Source snapshots forgotten (and pruned) in the source while they were being copied. */
  forgotten: string[];
  /** Records copied (or, in a dry run, to copy) and skipped because the destination has them:
   * archived PostgreSQL WAL files and SQLite replication segments (of both layouts). */
  records: { wal: RecordCount; segments: RecordCount };
  bytesAdded: number;
  bytesStored: number;
}

export interface RecordCount {
  copied: number;
  skipped: number;
}

/** The mark a copy carries so that copying again skips it: `<source repo id>:<snapshot id>`. */
export const copiedFrom = (src: Repository, id: string) => `${src.config.id}:${id}`;

/**
 * Copies snapshots into another repository with other keys, and the records point-in-time
 * recovery needs besides them: archived PostgreSQL WAL and SQLite replication segments. Blob
 * ids are keyed per repository and chunk boundaries are secret per repository, so contents are
 * streamed through the destination's chunker: what the destination already holds (from its own
 * backups or an earlier copy) is not stored again. A copied snapshot records its origin in
 * `meta.copiedFrom`, a copied record in `copiedFrom`, so running copy again copies nothing twice.
 */
export async function copySnapshots(
  src: Repository,
  dst: Repository,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const wanted = options.snapshots ?? (await src.listSnapshots());
  // A backup that stored its index files and snapshot after the source was opened: its snapshot
  // is listed, so read the index files written since (found by the S3 soak: "blob ... is
  // referenced but not in the index", exit 14, with backups running beside copy).
  await src.catchUpIndex();
  const have = new Set(
    (await dst.listSnapshots())
      .map((s) => s.meta?.copiedFrom)
      .filter((m): m is string => typeof m === "string"),
  );
  const toCopy = wanted.filter((s) => !have.has(copiedFrom(src, s.id)));
  const skipped = wanted.filter((s) => have.has(copiedFrom(src, s.id))).map((s) => s.id);
  const plan = await recordsToCopy(src, dst, wanted);
  const levelCount = plan.levels.reduce((n, l) => n + l.copy.length, 0);
  const result: CopyResult = {
    copied: [],
    skipped,
    forgotten: [],
    records: {
      wal: { copied: plan.wal.length, skipped: plan.walSkipped },
      segments: {
        copied: plan.segments.length + levelCount,
        skipped: plan.segmentsSkipped + plan.levels.reduce((n, l) => n + l.skipped, 0),
      },
    },
    bytesAdded: 0,
    bytesStored: 0,
  };
  if (options.dryRun || toCopy.length + plan.wal.length + plan.segments.length + levelCount === 0)
    return result;
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
        // The destination records what its trees use before it holds them (format features).
        for (const f of nodeFeatures(n)) if (!dst.hasFeature(f)) await dst.enableFeature(f);
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
    await copyRecords(src, dst, plan, (n) => progress.addBytes(n), options.signal);
    result.records.segments.copied += await copyAllLevels(
      src,
      dst,
      plan.levels,
      (n) => progress.addBytes(n),
      options.signal,
    );
    for (const s of toCopy) {
      // A version without segments in levels would restore such a snapshot alone as the latest.
      if (levelsGeneration(s) && !dst.hasFeature("sqlite-segment-levels"))
        await dst.enableFeature("sqlite-segment-levels");
      const { id: _id, parent: _parent, ...rest } = s;
      let tree: string;
      try {
        tree = await dst.withWriter((w) => copyTree(w, s.tree));
      } catch (e) {
        // A `forget --prune` beside the copy removed the snapshot and its data: not damage.
        if (!(await forgottenMeanwhile(src, s.id, e))) throw e;
        result.forgotten.push(s.id);
        // What the failed pass noted as copied may not have been flushed: copy it again if needed.
        trees.clear();
        contents.clear();
        continue;
      }
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

/** Whether reading a snapshot's data failed because the snapshot was forgotten since it was listed. */
async function forgottenMeanwhile(src: Repository, id: string, e: unknown): Promise<boolean> {
  if (!(e instanceof CorruptionError) && !(isLifeboatError(e) && e.code === "NOT_FOUND")) return false;
  return !(await src.snapshotIds()).includes(id);
}

interface RecordPlan {
  wal: { id: string; record: WalRecord }[];
  segments: { id: string; record: SegmentRecord }[];
  /** Segments in levels, per generation. */
  levels: LevelsPlan[];
  walSkipped: number;
  segmentsSkipped: number;
}

/**
 * The source's records the destination lacks. A record is there when one carries its origin
 * (`copiedFrom`), or holds the same thing: a WAL file of the same cluster and name with the same
 * bytes (archived into both, or copied along another path), a segment of the same source,
 * generation and index.
 */
async function recordsToCopy(
  src: Repository,
  dst: Repository,
  snapshots: SnapshotWithId[],
): Promise<RecordPlan> {
  const dstWal = await dst.records.list(walKind, { unreadable: "throw" });
  const dstSeg = await dst.records.list(segmentKind, { unreadable: "throw" });
  const origins = new Set(
    [...dstWal, ...dstSeg].map((r) => r.record.copiedFrom).filter((o): o is string => o !== undefined),
  );
  const walKey = (r: WalRecord) => `${r.cluster}\n${r.name}\n${r.sha256}`;
  const segKey = (r: SegmentRecord) => `${r.source}\n${r.generation}\n${r.index}`;
  const haveWal = new Set(dstWal.map((r) => walKey(r.record)));
  const haveSeg = new Set(dstSeg.map((r) => segKey(r.record)));
  const levels = await levelsToCopy(src, dst, await levelsGenerations(src, snapshots));
  const plan: RecordPlan = { wal: [], segments: [], levels, walSkipped: 0, segmentsSkipped: 0 };
  for (const r of await src.records.list(walKind, { unreadable: "throw" })) {
    if (origins.has(copiedFrom(src, r.id)) || haveWal.has(walKey(r.record))) plan.walSkipped++;
    else {
      haveWal.add(walKey(r.record));
      plan.wal.push({ id: r.id, record: r.record });
    }
  }
  for (const r of await src.records.list(segmentKind, { unreadable: "throw" })) {
    if (origins.has(copiedFrom(src, r.id)) || haveSeg.has(segKey(r.record))) plan.segmentsSkipped++;
    else {
      haveSeg.add(segKey(r.record));
      plan.segments.push({ id: r.id, record: r.record });
    }
  }
  // Oldest first, so an interrupted copy leaves a prefix of each WAL chain and generation.
  plan.wal.sort((a, b) => (a.record.name < b.record.name ? -1 : a.record.name > b.record.name ? 1 : 0));
  plan.segments.sort((a, b) =>
    a.record.generation === b.record.generation
      ? a.record.index - b.record.index
      : a.record.generation < b.record.generation
        ? -1
        : 1,
  );
  return plan;
}

/**
 * Streams a record's content (its data blobs, each verified against its id) into the
 * destination's chunker, checking the whole against the record's size (and SHA-256 if it has one).
 */
async function copyContent(
  src: Repository,
  dst: Repository,
  what: string,
  record: { content: string[]; size: number; sha256?: string },
  onBytes: (n: number) => void,
): Promise<string[]> {
  const hash = createHash("sha256");
  async function* blobs(): AsyncIterable<Buffer> {
    for (const id of record.content) {
      const b = await src.loadBlob(Buffer.from(id, "hex"));
      hash.update(b);
      yield b;
    }
  }
  // The scope ends with the blobs durable and indexed, before the record that pins them.
  const r = await dst.withWriter((w) => storeStream(w, blobs(), onBytes));
  if (r.size !== record.size || (record.sha256 !== undefined && hash.digest("hex") !== record.sha256))
    throw new CorruptionError(
      what,
      "its blobs do not add up to the bytes it records; nothing was copied for it",
    );
  return r.content;
}

/**
 * Copies WAL records and replication segments: content re-chunked into the destination, the
 * record written under the destination's keys (WAL under the label of its cluster and name,
 * keyed with the destination's id key) with where its blobs are now and where it came from.
 */
async function copyRecords(
  src: Repository,
  dst: Repository,
  plan: RecordPlan,
  onBytes: (n: number) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  for (const { id, record } of plan.wal) {
    signal?.throwIfAborted();
    const content = await copyContent(src, dst, `WAL file ${record.name}`, record, onBytes);
    const blobs: WalBlobHint[] = [];
    for (const c of new Set(content)) {
      const loc = dst.lookup(Buffer.from(c, "hex"));
      if (loc)
        blobs.push({
          id: c,
          pack: loc.packId,
          offset: loc.offset,
          length: loc.length,
          rawLength: loc.rawLength,
          compression: loc.compression,
        });
    }
    await dst.records.write(walKind, { ...record, content, blobs, copiedFrom: copiedFrom(src, id) });
  }
  for (const { id, record } of plan.segments) {
    signal?.throwIfAborted();
    const what = `replication segment ${record.index} of generation ${record.generation}`;
    const content = await copyContent(src, dst, what, record, onBytes);
    await dst.records.write(segmentKind, { ...record, content, copiedFrom: copiedFrom(src, id) });
  }
}

/**
 * Copies the segments in levels of each generation. A generation a live replicate compacted while
 * it was copied is planned and copied again (a few times), so the copy's chain has no hole; the
 * count is of segments copied beyond the plan's.
 */
async function copyAllLevels(
  src: Repository,
  dst: Repository,
  plans: LevelsPlan[],
  onBytes: (n: number) => void,
  signal: AbortSignal | undefined,
): Promise<number> {
  let extra = 0;
  for (const first of plans) {
    let plan = first;
    for (let attempt = 1; ; attempt++) {
      const r = await copyLevels(src, dst, plan, onBytes, signal);
      if (attempt > 1) extra += r.copied;
      if (!r.raced) break;
      if (attempt === 4)
        throw new CorruptionError(
          `generation ${plan.generation}`,
          "its segments kept changing while they were copied (a live replicate compacting them); run copy again",
        );
      plan = (await levelsToCopy(src, dst, [plan.generation]))[0] ?? { ...plan, copy: [] };
    }
  }
  return extra;
}
