import os from "node:os";
import { isLifeboatError } from "../../core/errors.js";
import { type CatalogRecord, catalogKind } from "../../repo/records-segment-levels.js";
import type { Repository } from "../../repo/repository.js";
import { entryOf, infoOf, readGeneration, type SegmentInfo, segmentObjects } from "./catalog.js";
import {
  doesNotFollow,
  type LevelSegment,
  levelSegmentPages,
  loadLevelSegment,
  type RepoTurns,
  storeLevelSegment,
} from "./level-segments.js";
import { cheapestChain, type Level, windowOf } from "./levels.js";
import { mergedHeader, mergePages, pageRecord } from "./merge.js";

export interface CompactedEvent {
  generation: string;
  level: number;
  first: number;
  last: number;
  /** How many segments were merged. */
  merged: number;
  pages: number;
  bytes: number;
  inline: boolean;
  object: string;
}

export interface MaintainContext {
  repo: Repository;
  levels: readonly Level[];
  /** Levels produced (levelsInUse). */
  inUse: number;
  /** The time of this pass (ms). */
  now: number;
  clock: () => number;
  turns: RepoTurns;
  stopping: () => boolean;
  onCompacted?: ((e: CompactedEvent) => void) | undefined;
  onWarning?: ((message: string) => void) | undefined;
}

/** Replaced segments whose deletion storage refused are tried again this often. */
const RETRY_REPLACED_MS = 3_600_000;

/**
 * One generation in levels, as the replicate process that maintains it sees it: its segments,
 * its catalog, and the compaction of its complete windows (docs/replication.md "Levels").
 *
 * Crash safety, in the order things are written: a merged segment is stored (data, then its
 * object) before the catalog that lists it; the catalog is rewritten (new, then the old deleted)
 * before the segments it no longer lists are deleted. A crash anywhere leaves segments that are
 * all valid and a chain that restores every point: at worst a merged segment no catalog lists
 * yet (found by the listing), or replaced segments still stored (skipped or deleted next time).
 */
export class LevelledGeneration {
  readonly segments = new Map<string, SegmentInfo>();
  /** Catalogs stored now (the newest last). */
  private catalogs: string[] = [];
  private seq = -1;
  private replaced = new Set<string>();
  private replacedTriedAt = 0;
  private readonly warned = new Set<string>();
  /** The process that wrote the newest catalog. */
  owner: { machine: string; pid: number; written: number } | undefined;

  constructor(
    readonly id: string,
    readonly source: string,
    readonly hostname: string,
  ) {}

  /** What is stored of a generation (from its catalogs and one listing). */
  static async load(
    repo: Repository,
    id: string,
    source: string,
    hostname: string,
  ): Promise<LevelledGeneration> {
    const g = new LevelledGeneration(id, source, hostname);
    const found = await readGeneration(repo, id, { lenient: true });
    for (const s of found.segments) g.segments.set(s.object, s);
    g.replaced = found.replaced;
    const sorted = [...found.catalogs].sort((a, b) => a.record.seq - b.record.seq);
    g.catalogs = sorted.map((c) => c.object);
    const newest = sorted.at(-1)?.record;
    if (newest) {
      g.seq = newest.seq;
      g.owner = { machine: newest.machine, pid: newest.pid, written: Date.parse(newest.written) };
    }
    return g;
  }

  add(s: SegmentInfo): void {
    this.segments.set(s.object, s);
  }

  /** Newest commit time of any segment (undefined without segments). */
  newest(): number | undefined {
    let t: number | undefined;
    for (const s of this.segments.values()) if (t === undefined || s.commitsBefore > t) t = s.commitsBefore;
    return t;
  }

  /** Writes a catalog of the segments in force, then deletes the older catalogs. */
  async writeCatalog(repo: Repository, now: number): Promise<void> {
    const record: CatalogRecord = {
      version: 1,
      source: this.source,
      hostname: this.hostname,
      generation: this.id,
      seq: this.seq + 1,
      written: new Date(now).toISOString(),
      machine: os.hostname(),
      pid: process.pid,
      segments: [...this.segments.values()]
        .sort((a, b) => a.first - b.first || b.level - a.level)
        .map(entryOf),
      replaced: [...this.replaced],
    };
    const stored = await repo.records.write(catalogKind, record, { label: this.id });
    this.seq = record.seq;
    this.owner = { machine: record.machine, pid: record.pid, written: now };
    const old = this.catalogs;
    this.catalogs = [stored.object];
    for (const o of old) {
      if (!(await deleteObject(repo, o))) this.catalogs.unshift(o);
    }
  }

  /** Whether a coarser segment covers `s`. */
  private covered(s: SegmentInfo): boolean {
    for (const t of this.segments.values())
      if (t.level > s.level && t.first <= s.first && t.last >= s.last) return true;
    return false;
  }

  /**
   * Compacts every complete window that is not compacted yet, level by level, then deletes the
   * segments older than their level's keep that a coarser one covers (catalog first).
   */
  async maintain(ctx: MaintainContext): Promise<void> {
    let changed = false;
    for (let l = 1; l < ctx.inUse; l++) {
      const w = ctx.levels[l]!.windowMs;
      const groups = new Map<number, SegmentInfo[]>();
      for (const s of this.segments.values()) {
        if (s.level >= l) continue;
        const k = windowOf(s.commitsBefore, w);
        // Complete once its end has passed: every later read finishes after the end.
        if ((k + 1) * w >= ctx.now) continue;
        const list = groups.get(k) ?? [];
        list.push(s);
        groups.set(k, list);
      }
      for (const [k, parts] of [...groups].sort((a, b) => a[0] - b[0])) {
        if (ctx.stopping()) return;
        const from = Math.min(...parts.map((p) => p.first));
        const to = Math.max(...parts.map((p) => p.last));
        if ([...this.segments.values()].some((s) => s.level >= l && s.first <= from && s.last >= to))
          continue;
        const chain = cheapestChain(parts, from, { to });
        if (!chain) {
          const key = `${l}/${k}`;
          if (!this.warned.has(key)) {
            this.warned.add(key);
            ctx.onWarning?.(
              `generation ${this.id}: segments ${from}..${to} do not form an unbroken chain; level ${l} window left uncompacted`,
            );
          }
          continue;
        }
        if (chain.length === 1) continue; // one segment: nothing to merge
        if (await this.compact(ctx, l, chain)) changed = true;
      }
    }
    const doomed = [...this.segments.values()].filter(
      // (A level --levels no longer has is kept: nothing coarser is made for it.)
      (s) =>
        ctx.now - s.commitsBefore >= (ctx.levels[s.level]?.keepMs ?? Number.POSITIVE_INFINITY) &&
        this.covered(s),
    );
    const retry = this.replaced.size > 0 && ctx.now - this.replacedTriedAt >= RETRY_REPLACED_MS;
    if (!changed && doomed.length === 0 && !retry) return;
    for (const s of doomed) {
      this.segments.delete(s.object);
      this.replaced.add(s.object);
    }
    // The catalog first: from now on readers skip the replaced segments without reading them.
    await this.writeCatalog(ctx.repo, ctx.now);
    if (doomed.length === 0 && !retry) return;
    // Refused deletions (Object Lock) stay listed as replaced and are tried again now and then.
    const attempt = retry ? [...this.replaced] : doomed.map((s) => s.object);
    if (retry) this.replacedTriedAt = ctx.now;
    for (const o of attempt) if (await deleteObject(ctx.repo, o)) this.replaced.delete(o);
    if (!retry && this.replaced.size > 0 && this.replacedTriedAt === 0) this.replacedTriedAt = ctx.now;
  }

  /** Merges a chain of segments into one of `level`. False when the chain does not hold together. */
  private async compact(ctx: MaintainContext, level: number, chain: SegmentInfo[]): Promise<boolean> {
    const parts: LevelSegment[] = [];
    for (const s of chain) parts.push(await loadLevelSegment(ctx.repo, s.object));
    for (let i = 1; i < parts.length; i++) {
      const why = doesNotFollow(parts[i - 1]!.header, parts[i]!.header);
      if (why) {
        ctx.onWarning?.(`generation ${this.id}: ${why}; level ${level} window left uncompacted`);
        return false;
      }
    }
    let pages = 0;
    const merged = mergePages(
      parts.map((p) => ({
        minDbPages: p.header.minDbPages,
        dbPages: p.header.dbPages,
        pages: levelSegmentPages(ctx.repo, p),
      })),
    );
    async function* records(): AsyncIterable<Buffer> {
      for await (const p of merged) {
        pages++;
        yield* pageRecord(p.pgno, p.page);
      }
    }
    const seg = await storeLevelSegment(
      ctx.repo,
      (size, storedAt) =>
        mergedHeader(
          parts.map((p) => p.header),
          level,
          storedAt,
          pages,
          size,
        ),
      records(),
      { now: ctx.clock, turns: ctx.turns },
    );
    this.add(infoOf(seg.object, seg.header));
    ctx.onCompacted?.({
      generation: this.id,
      level,
      first: seg.header.first,
      last: seg.header.last,
      merged: parts.length,
      pages: seg.header.pages,
      bytes: seg.header.size,
      inline: seg.data !== undefined,
      object: seg.object,
    });
    return true;
  }

  /** Deletes every segment and then the catalogs (after the generation's snapshot is gone). */
  async deleteAll(repo: Repository): Promise<number> {
    const objects = new Set([...(await segmentObjects(repo, this.id)), ...this.segments.keys()]);
    let n = 0;
    for (const o of objects) if (await deleteObject(repo, o)) n++;
    const catalogs = await repo.records.objects(catalogKind, this.id);
    for (const o of catalogs) await deleteObject(repo, o);
    this.segments.clear();
    return n;
  }
}

/** Deletes an object; false when storage refuses because of retention (Object Lock). */
async function deleteObject(repo: Repository, object: string): Promise<boolean> {
  try {
    await repo.records.delete(object);
    return true;
  } catch (e) {
    if (isLifeboatError(e) && e.code === "NOT_FOUND") return true;
    if (isLifeboatError(e) && e.code === "PERMISSION_DENIED") return false;
    throw e;
  }
}
