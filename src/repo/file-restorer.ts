import type { Backend } from "../backend/backend.js";
import { CorruptionError, isLifeboatError } from "../core/errors.js";
import {
  closeNewFile,
  createNewFile,
  discardNewFile,
  type FileMeta,
  finishNewFile,
  type NewFile,
  removeQuietly,
  reopenNewFile,
} from "../fsio/file-write.js";
import {
  type BlobPool,
  type RangeBlob,
  type RangeFile,
  type RangeOutcome,
  rebuildError,
} from "./blob-pool.js";
import { names } from "./config.js";
import type { IndexedBlob } from "./master-index.js";
import { oversizedData, PACK_PREFIX } from "./pack.js";
import { type RangeArena, returnArena, takeArena } from "./range-arena.js";
import { restoreRange } from "./range-restore.js";

/** One file to restore (see FileRestorer). */
export interface FileToRestore {
  dest: string;
  /** true: create it under its final name (O_EXCL), in a folder nothing presents yet; false:
   * under a temporary name beside it, renamed into place once complete. */
  direct: boolean;
  size: number;
  meta: FileMeta;
  /** Names the file in errors (`file docs/a.txt`). */
  label: string;
  /** Its blobs (hex ids, as trees hold them), in order. */
  content: readonly string[];
}

/** What became of a file: written (with the attributes that could not be set), or why not. */
export type FileOutcome = { ok: true; notes: string[] } | { ok: false; error: unknown };

export interface RestoreFilesOptions {
  /** Called once per file, as soon as it is complete or has failed. */
  onFile: (index: number, outcome: FileOutcome) => void;
  /** Bytes written (as ranges are done). */
  onBytes?: (n: number) => void;
  /** Stops between reads; files not finished are removed, and the call rejects. */
  signal?: AbortSignal;
}

/** What the restorer needs from the repository (its parts stay private there). */
export interface RestorerParts {
  backend: Backend;
  lookup(id: Buffer): IndexedBlob | undefined;
  /** The chunker's maximum: no data blob of this repository is larger (see oversizedData). */
  maxChunk: number;
  /** Reads the index again (a prune may have moved blobs); concurrent callers share one read. */
  reindex(): Promise<void>;
  /** Reads the index files written since the index was loaded (see BlobReader.catchUp). */
  catchUp(): Promise<void>;
  /** See BlobReader.packKey. */
  packKey(packId: string, type: number, prefix?: Buffer): Promise<Buffer>;
  /** The restorer's worker (one: the main thread works beside it). */
  pool(): BlobPool;
  /** The key of blob ids, for the ranges restored on the main thread. */
  idKey: Buffer;
}

/** A range read aims at this size; it may grow to RANGE_MAX to keep a file in one read. */
const RANGE_TARGET = 4 * 1024 * 1024;
const RANGE_MAX = 8 * 1024 * 1024;
/** Unneeded bytes between two needed blobs that are read rather than skipped with a new read. */
const GAP_MAX = 1024 * 1024;
/** Sealed bytes read and not yet written, across all ranges: the size of the arena they are
 * read into (larger when one range is; see range-arena.ts). With two workers, one range is
 * decoded on each while the next two are read. */
const IN_FLIGHT_BYTES = 16 * 1024 * 1024;
const IN_FLIGHT_RANGES = 4;
/** Files fed by several ranges kept open between them; beyond this, idle ones are closed and
 * opened again when their next range comes. */
const OPEN_FILES_MAX = 256;
/** Slices queued on the worker before the main thread restores the next one itself: the
 * worker is never idle while the main thread is busy with one. */
const WORKER_JOBS = 2;
/** A range's files are restored in slices of at most this many files or about this many
 * sealed bytes (see sliceRange). Files of 1 KiB restored into tmpfs, 10,000 of them: 0.96 s
 * with whole ranges, 0.90 s in slices of 64; 16 to 128 files made no difference. */
const SLICE_FILES = 64;
const SLICE_SEALED = 1024 * 1024;
/** A batch with no more sealed bytes than this is restored on the main thread alone (no
 * worker started: a few files cost less than a thread's start). */
const MAIN_ONLY_BYTES = 1024 * 1024;
/** Index reloads after packs were found gone (a prune moved their blobs), per call. */
const RELOADS_MAX = 8;

/** A blob to read and where it goes: pairs of (file index, offset in the file). */
interface Planned {
  loc: IndexedBlob;
  to: number[];
}

interface Range {
  packId: string;
  type: number;
  start: number;
  end: number;
  blobs: Planned[];
  files: Set<number>;
}

interface FileState {
  /** Ranges not yet written that feed it. */
  pending: number;
  /** Created (by a worker, as a `new` file, or here). */
  started: boolean;
  /** Created here: the file and its descriptor (-1 while closed to bound open files). */
  open?: NewFile;
  /** Jobs in flight that write into `open`. */
  users: number;
  holes: boolean;
  failed?: unknown;
  done: boolean;
}

/**
 * Restores files by pack, as restic's restorer does: every blob the files need is looked up,
 * the blobs are grouped by pack (packs in the order the files first need them) and each pack is
 * read in a few large contiguous ranges, each range once, in order; a range's blobs are
 * decrypted, verified and written at every place they go, a slice of its files at a time (a
 * 4 MiB range of small files is thousands of them), on the one worker thread or, while it has
 * WORKER_JOBS queued, on the main thread (two cores busy with one worker isolate fewer: ~10 MiB
 * empty, ~25 MiB at work). A file whose data comes from one range is created, written and
 * finished with it (four system calls for a small file); one fed by several ranges is created
 * here and finished after its last range. Ranges are read into one arena (range-arena.ts):
 * memory is the ranges in flight (IN_FLIGHT_BYTES), whatever the number of files.
 */
export class FileRestorer {
  private readonly queue: (Range | undefined)[] = [];
  /** The next range of `queue` to read. */
  private next = 0;
  private states: FileState[] = [];
  private openCount = 0;
  private reloads = 0;
  private reloading: Promise<void> | undefined;
  private arena: RangeArena | undefined;
  /** Jobs on the worker; -1: this batch is small enough for the main thread alone. */
  private workerJobs = 0;

  constructor(
    private readonly parts: RestorerParts,
    private readonly files: readonly FileToRestore[],
    private readonly options: RestoreFilesOptions,
  ) {}

  async run(): Promise<void> {
    const { files, options } = this;
    this.states = files.map(() => ({ pending: 0, started: false, users: 0, holes: false, done: false }));
    const where: ([IndexedBlob, number][] | undefined)[] = new Array(files.length);
    const missing: number[] = [];
    files.forEach((file, f) => {
      if (file.content.length === 0) this.writeEmpty(f);
      else {
        const w = this.locate(file, f, false);
        if (w === "missing") missing.push(f);
        else where[f] = w;
      }
    });
    if (missing.length > 0) {
      // Blobs of a snapshot stored after the index was read are in index files read since.
      await this.parts.catchUp();
      for (const f of missing) {
        const w = this.locate(files[f]!, f, true);
        if (w !== "missing") where[f] = w;
      }
    }
    const packs = new Map<string, Map<string, Planned>>();
    where.forEach((w, f) => {
      if (!w) return;
      for (const [loc, pos] of w) {
        let pack = packs.get(loc.packId);
        if (!pack) {
          pack = new Map();
          packs.set(loc.packId, pack);
        }
        const hex = loc.id.toString("hex");
        const p = pack.get(hex);
        if (p) p.to.push(f, pos);
        else pack.set(hex, { loc, to: [f, pos] });
      }
    });
    let largest = 0;
    let total = 0;
    for (const [packId, blobs] of packs)
      for (const r of this.enqueue(packId, [...blobs.values()])) {
        largest = Math.max(largest, r.end - r.start);
        total += r.end - r.start;
      }
    packs.clear();
    if (total <= MAIN_ONLY_BYTES) this.workerJobs = -1;
    if (largest > 0) this.arena = takeArena(Math.max(IN_FLIGHT_BYTES, largest));
    try {
      await this.drain();
    } finally {
      if (this.arena) returnArena(this.arena);
      this.arena = undefined;
    }
    if (options.signal?.aborted) {
      this.states.forEach((s, f) => {
        if (!s.done && s.open) this.discard(f);
      });
      options.signal.throwIfAborted();
    }
  }

  /** A file's blobs with their offsets in it, or undefined (and the file failed); "missing"
   * when a blob is not in the index and this is not the `final` look. */
  private locate(
    file: FileToRestore,
    f: number,
    final: boolean,
  ): [IndexedBlob, number][] | undefined | "missing" {
    const out: [IndexedBlob, number][] = [];
    let pos = 0;
    for (const hex of file.content) {
      const id = Buffer.from(hex, "hex");
      const loc = this.parts.lookup(id);
      if (!loc && !final) return "missing";
      if (!loc) {
        this.finish(
          f,
          new CorruptionError(
            `blob ${hex}`,
            "is referenced but not in the index",
            [hex],
            "run `lifeboat repair index`; if the pack is gone, `lifeboat repair snapshots`",
          ),
        );
        return undefined;
      }
      const oversized = oversizedData(loc, this.parts.maxChunk);
      if (oversized) {
        this.finish(f, new CorruptionError(`blob ${hex}`, oversized, [hex]));
        return undefined;
      }
      out.push([loc, pos]);
      pos += loc.rawLength;
    }
    if (pos !== file.size) {
      this.finish(
        f,
        new CorruptionError(file.label, `restored ${pos} bytes but the snapshot says ${file.size}`),
      );
      return undefined;
    }
    return out;
  }

  /** Cuts a pack's blobs (in offset order) into ranges and queues them; counts them per file. */
  private enqueue(packId: string, blobs: Planned[]): Range[] {
    blobs.sort((a, b) => a.loc.offset - b.loc.offset);
    const ranges: Range[] = [];
    let cur: Range | undefined;
    for (const b of blobs) {
      const end = b.loc.offset + b.loc.length;
      if (cur && b.loc.offset - cur.end <= GAP_MAX) {
        const length = end - cur.start;
        // Past the target size, a range still takes the rest of a file it already feeds.
        if (length <= RANGE_TARGET || (length <= RANGE_MAX && feedsAny(cur, b))) {
          cur.blobs.push(b);
          cur.end = Math.max(cur.end, end);
          for (let i = 0; i < b.to.length; i += 2) cur.files.add(b.to[i]!);
          continue;
        }
      }
      // The first read of a pack also takes its prefix when it starts near it: the key comes
      // from there, without a read of its own.
      const start = ranges.length === 0 && b.loc.offset <= GAP_MAX ? 0 : b.loc.offset;
      cur = { packId, type: b.loc.type, start, end, blobs: [b], files: new Set() };
      for (let i = 0; i < b.to.length; i += 2) cur.files.add(b.to[i]!);
      ranges.push(cur);
    }
    for (const r of ranges) for (const f of r.files) this.states[f]!.pending++;
    this.queue.push(...ranges);
    return ranges;
  }

  /** Reads and writes queued ranges in order, a bounded number of bytes at a time (the arena). */
  private async drain(): Promise<void> {
    const running = new Set<Promise<void>>();
    for (;;) {
      // Ranges planned again after a reload leave holes (see replanQueued).
      while (this.next < this.queue.length && !this.queue[this.next]) this.next++;
      const r = this.options.signal?.aborted ? undefined : this.queue[this.next];
      if (!r) {
        if (running.size === 0) break;
        await Promise.race(running);
        continue;
      }
      const size = r.end - r.start;
      // A range planned after a reload may exceed the arena: read into memory of its own.
      const fits = !!this.arena && size <= this.arena.size;
      const region = running.size < IN_FLIGHT_RANGES && fits ? this.arena!.take(size) : undefined;
      if (running.size > 0 && !region) {
        await Promise.race(running);
        continue;
      }
      this.queue[this.next++] = undefined; // let it go once done
      const p: Promise<void> = this.runRange(r, region).finally(() => {
        if (region) this.arena!.release(region);
        running.delete(p);
      });
      running.add(p);
    }
  }

  /** `region`: arena memory to read the range into (released by the caller once this is done). */
  private async runRange(r: Range, region: Buffer | undefined): Promise<void> {
    let sealed: Buffer;
    let key: Buffer;
    try {
      const what = names.pack(r.packId);
      try {
        const length = r.end - r.start;
        sealed = await this.parts.backend.get(what, {
          offset: r.start,
          length,
          ...(region ? { into: region } : {}),
        });
        // A backend that does not read into the region answered with memory of its own: the
        // worker gets the region (copied) rather than that, so what it holds stays bounded.
        if (region && sealed.buffer !== region.buffer) {
          region.set(sealed);
          sealed = region.subarray(0, sealed.length);
        }
      } catch (e) {
        if (isLifeboatError(e) && e.code === "NOT_FOUND" && (await this.relocate(r))) return;
        throw e;
      }
      key = await this.parts.packKey(
        r.packId,
        r.type,
        r.start === 0 && sealed.length >= PACK_PREFIX ? sealed.subarray(0, PACK_PREFIX) : undefined,
      );
    } catch (e) {
      for (const f of r.files) this.partDone(f, e);
      return;
    }
    // The files of this range: new ones are created by whichever thread restores their slice;
    // the others are opened here.
    const specs = new Map<number, RangeFile>();
    for (const f of r.files) {
      const s = this.states[f]!;
      if (s.failed !== undefined) {
        this.partDone(f);
        continue;
      }
      let spec: RangeFile;
      if (!s.started && s.pending === 1) {
        const file = this.files[f]!;
        spec = { kind: "new", dest: file.dest, direct: file.direct, size: file.size, meta: file.meta };
      } else {
        const fd = this.descriptor(f);
        if (fd === undefined) continue;
        spec = { kind: "open", fd };
        s.users++;
      }
      s.started = true;
      specs.set(f, spec);
    }
    if (specs.size === 0) return;
    const what = names.pack(r.packId);
    // A range read into memory of its own (larger than the arena) is handed over to the worker
    // whole, so it is one job; in the arena, slices read it where it is.
    const shared = sealed.buffer instanceof SharedArrayBuffer;
    const slices = sliceRange(r, specs, !shared);
    const onWorker: Promise<void>[] = [];
    for (let i = 0; i < slices.length; i++) {
      const slice = slices[i]!;
      const job = { sealed, key, what, blobs: slice.blobs, files: slice.specs };
      // The worker takes a slice unless it has enough queued; then this thread restores it
      // (synchronously: reads already issued go on meanwhile) and lets the worker's answers in
      // before the next.
      if (this.workerJobs >= 0 && this.workerJobs < WORKER_JOBS) {
        this.workerJobs++;
        onWorker.push(
          this.parts
            .pool()
            .restoreRange(job)
            .finally(() => this.workerJobs--)
            .then(
              (outcomes) => this.sliceDone(slice, outcomes),
              (e: unknown) => this.sliceDone(slice, e),
            ),
        );
        continue;
      }
      let outcomes: RangeOutcome[] | unknown;
      try {
        outcomes = restoreRange(job, this.parts.idKey);
      } catch (e) {
        outcomes = e;
      }
      this.sliceDone(slice, outcomes);
      if (i + 1 < slices.length) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    // Every slice is settled before the region is given back: a worker may still be reading it.
    const settled = await Promise.allSettled(onWorker);
    for (const s of settled) if (s.status === "rejected") throw s.reason;
  }

  /** A slice was restored (`outcomes`, one per file), or its job failed as a whole (the worker
   * died: every file of it fails). */
  private sliceDone(slice: Slice, outcomes: RangeOutcome[] | unknown): void {
    if (!Array.isArray(outcomes)) {
      // A new file the job may have begun under its final name (in a folder nothing presents)
      // is removed; a temporary one is left for the next run to remove (by its name).
      slice.members.forEach((f, i) => {
        const spec = slice.specs[i]!;
        if (spec.kind === "open") this.states[f]!.users--;
        else if (spec.direct) removeQuietly(spec.dest);
        this.partDone(f, outcomes);
      });
      this.closeIdle();
      return;
    }
    this.options.onBytes?.(slice.written);
    slice.members.forEach((f, i) => {
      const o = (outcomes as RangeOutcome[])[i]!;
      const s = this.states[f]!;
      const error = o.failure ? rebuildError(o.failure) : undefined;
      if (slice.specs[i]!.kind === "new") {
        s.pending--;
        if (error) this.finish(f, error);
        else {
          s.done = true;
          this.options.onFile(f, { ok: true, notes: o.notes ?? [] });
        }
        return;
      }
      s.users--;
      s.holes ||= o.holes;
      this.partDone(f, error);
    });
    this.closeIdle();
  }

  /**
   * A range's pack is gone: a prune may have repacked its blobs and deleted it since the index
   * was read. Reads the index again and queues ranges of the packs that hold them now; false
   * when they have not moved (the pack is really missing).
   */
  private async relocate(r: Range): Promise<boolean> {
    // A reload already under way may have listed the index before this pack went: if it
    // shows no move, one more is read.
    for (let attempt = 0; attempt < 2; attempt++) {
      if (this.reloads >= RELOADS_MAX) return false;
      if (!this.reloading) {
        this.reloads++;
        this.reloading = this.parts.reindex().finally(() => {
          this.reloading = undefined;
        });
      }
      await this.reloading;
      const moved = this.whereMoved(r);
      if (!moved) continue;
      this.replace(r, moved);
      this.replanQueued();
      return true;
    }
    return false;
  }

  /** Range `r` is read from where its blobs are now instead: each of its files now waits for
   * the new ranges. */
  private replace(r: Range, moved: Map<string, Planned[]>): void {
    for (const f of r.files) this.states[f]!.pending--;
    for (const [packId, blobs] of moved) this.enqueue(packId, blobs);
  }

  /** After a reload: ranges not read yet whose pack the prune also emptied are planned again
   * from the new index (one reload per prune, not one per range). */
  private replanQueued(): void {
    const end = this.queue.length;
    for (let i = this.next; i < end; i++) {
      const q = this.queue[i];
      const moved = q && this.whereMoved(q);
      if (!q || !moved) continue;
      this.queue[i] = undefined;
      this.replace(q, moved);
    }
  }

  /** Where the index now puts every blob of `r`, by pack; undefined unless all have moved. */
  private whereMoved(r: Range): Map<string, Planned[]> | undefined {
    const moved = new Map<string, Planned[]>();
    for (const b of r.blobs) {
      const loc = this.parts.lookup(b.loc.id);
      if (!loc || (loc.packId === r.packId && loc.offset === b.loc.offset)) return undefined;
      const list = moved.get(loc.packId) ?? [];
      list.push({ loc, to: b.to });
      moved.set(loc.packId, list);
    }
    return moved;
  }

  /** The descriptor of a file fed by several ranges: created on first use, reopened if it was
   * closed meanwhile. undefined when that failed (the file is then failed). */
  private descriptor(f: number): number | undefined {
    const s = this.states[f]!;
    const file = this.files[f]!;
    try {
      if (!s.open) {
        s.open = createNewFile(file.dest, file.direct, file.meta);
        this.openCount++;
      } else if (s.open.fd < 0) {
        s.open.fd = reopenNewFile(s.open);
        this.openCount++;
      }
      return s.open.fd;
    } catch (e) {
      this.partDone(f, e);
      return undefined;
    }
  }

  /** One range of file `f` is done (or failed with `error`); after the last, the file is
   * finished (or removed). */
  private partDone(f: number, error?: unknown): void {
    const s = this.states[f]!;
    if (error !== undefined && s.failed === undefined) s.failed = error;
    s.pending--;
    if (s.pending > 0 || s.done) return;
    if (s.failed !== undefined) {
      this.finish(f, s.failed);
      return;
    }
    const file = this.files[f]!;
    const open = s.open!;
    let notes: string[];
    try {
      if (open.fd < 0) open.fd = reopenNewFile(open);
      else this.openCount--;
      notes = finishNewFile(open, file.dest, file.size, s.holes, file.meta);
    } catch (e) {
      s.open = undefined;
      this.finish(f, e);
      return;
    }
    s.open = undefined;
    s.done = true;
    this.options.onFile(f, { ok: true, notes });
  }

  /** Fails file `f` for good (once): whatever was created of it is removed. */
  private finish(f: number, error: unknown): void {
    const s = this.states[f]!;
    if (s.done) return;
    s.done = true;
    s.failed = error;
    if (s.open) this.discard(f);
    this.options.onFile(f, { ok: false, error });
  }

  private discard(f: number): void {
    const s = this.states[f]!;
    if (!s.open) return;
    if (s.open.fd >= 0) this.openCount--;
    try {
      discardNewFile(s.open);
    } catch {}
    s.open = undefined;
  }

  /** Closes files fed by several ranges that no job is writing, while too many are open. */
  private closeIdle(): void {
    if (this.openCount <= OPEN_FILES_MAX) return;
    for (const s of this.states) {
      if (this.openCount <= OPEN_FILES_MAX / 2) return;
      if (!s.open || s.open.fd < 0 || s.users > 0 || s.done) continue;
      closeNewFile(s.open);
      this.openCount--;
    }
  }

  /** An empty file: created and finished here (no data to read). */
  private writeEmpty(f: number): void {
    const file = this.files[f]!;
    if (file.size !== 0) {
      this.finish(f, new CorruptionError(file.label, `restored 0 bytes but the snapshot says ${file.size}`));
      return;
    }
    let notes: string[];
    try {
      notes = finishNewFile(createNewFile(file.dest, file.direct, file.meta), file.dest, 0, false, file.meta);
    } catch (e) {
      this.finish(f, e);
      return;
    }
    this.states[f]!.done = true;
    this.options.onFile(f, { ok: true, notes });
  }
}

/** Part of a range restored as one job: some of its files, and the blobs that go into them. */
interface Slice {
  /** The files (indexes into the restorer's list), in the order of `specs`. */
  members: number[];
  specs: RangeFile[];
  blobs: RangeBlob[];
  /** Plaintext bytes it writes (for progress). */
  written: number;
  /** Sealed bytes it decodes. */
  sealed: number;
}

/**
 * Cuts a range into slices of at most SLICE_FILES files or about SLICE_SEALED sealed bytes (one
 * slice if `whole`), each file in one slice with every blob of the range it needs (a blob
 * feeding files of two slices is decoded in each; a file whose first blob the current slice
 * decodes joins it past SLICE_SEALED): a range of small files is thousands of files, and in
 * slices the worker and this thread create them side by side instead of one doing it all.
 */
function sliceRange(r: Range, specs: Map<number, RangeFile>, whole: boolean): Slice[] {
  const maxFiles = whole ? Number.POSITIVE_INFINITY : SLICE_FILES;
  const maxSealed = whole ? Number.POSITIVE_INFINITY : SLICE_SEALED;
  const slices: Slice[] = [];
  /** Each file's slice and its index there. */
  const at = new Map<number, [Slice, number]>();
  /** The blob each slice took last, so that a blob is listed once per slice. */
  const last = new Map<Slice, Planned>();
  let cur: Slice | undefined;
  for (const b of r.blobs) {
    for (let i = 0; i < b.to.length; i += 2) {
      const f = b.to[i]!;
      let place = at.get(f);
      if (!place) {
        const spec = specs.get(f);
        if (!spec) continue;
        // A file whose blob the current slice already decodes joins it, up to maxFiles: a blob
        // shared by many files is decoded once per slice, not once per file.
        if (!cur || cur.members.length >= maxFiles || (cur.sealed >= maxSealed && last.get(cur) !== b)) {
          cur = { members: [], specs: [], blobs: [], written: 0, sealed: 0 };
          slices.push(cur);
        }
        place = [cur, cur.members.length];
        cur.members.push(f);
        cur.specs.push(spec);
        at.set(f, place);
      }
      const [slice, local] = place;
      if (last.get(slice) !== b) {
        last.set(slice, b);
        slice.sealed += b.loc.length;
        slice.blobs.push({
          at: b.loc.offset - r.start,
          length: b.loc.length,
          blob: b.loc.id,
          type: b.loc.type,
          compression: b.loc.compression,
          rawLength: b.loc.rawLength,
          to: [],
        });
      }
      slice.blobs[slice.blobs.length - 1]!.to.push(local, b.to[i + 1]!);
      slice.written += b.loc.rawLength;
    }
  }
  return slices;
}

/** Whether blob `b` goes into a file that range `r` already feeds. */
function feedsAny(r: Range, b: Planned): boolean {
  for (let i = 0; i < b.to.length; i += 2) if (r.files.has(b.to[i]!)) return true;
  return false;
}
