import { Worker } from "node:worker_threads";
import { asBuffer, ownsMemory, release, transferable } from "../core/buffers.js";
import type { ChunkerParams } from "../core/chunker.js";
import type { CompressionType } from "../core/compress.js";
import { CorruptionError } from "../core/errors.js";
import type { FileStat, WholeRead } from "../fsio/file-read.js";
import type { FileMeta } from "../fsio/file-write.js";
import type { BlobLocation, BlobTypeValue } from "./blob.js";
import { readBatch } from "./file-batch.js";

export interface PooledBlob {
  id: Buffer;
  data: Buffer;
  compression: CompressionType;
  /** For blobs that share memory with others (a batch of small files): call once `data` was
   * copied or dropped; the memory is freed when all of them have. */
  done?: () => void;
}

/** What the worker needs to decrypt and verify one blob (see `decodeBlob` in pack.ts). */
export interface DecodeJob {
  type: BlobTypeValue;
  compression: number;
  id: Buffer;
  rawLength: number;
  /** The pack's key. */
  key: Buffer;
  /** The pack, for error messages. */
  what: string;
}

/** What a worker learned reading a small file (see `readWholeFd`): its metadata and length
 * after the read, or why it was not read. */
export type FileRead =
  | { kind: "read"; after: FileStat; length: number }
  | Exclude<WholeRead, { kind: "read" }>;

/** A pack checked in windows: the worker that holds its running hash. */
export interface PackCheck {
  readonly stream: number;
  readonly worker: number;
  /** Windows sent so far. */
  sent: number;
}

/** Messages to a worker; `id` numbers the job (the blob's own id is `blob`). */
export type WorkerRequest =
  | { id: number; op: "encode"; buf: Uint8Array }
  | { id: number; op: "encodeFiles"; paths: string[]; sizes: number[] }
  | {
      id: number;
      op: "chunkFile";
      path: string;
      params: ChunkerParams;
      gear: Uint32Array;
      /** Int32 [credits, cancelled]: see `chunkFile`. */
      control: SharedArrayBuffer;
    }
  | {
      id: number;
      op: "verifyWindow";
      /** Numbers the pack being checked (see BlobPool.verifyWindow). */
      stream: number;
      first: boolean;
      last: boolean;
      bytes: Uint8Array;
      packId: string;
      key: Uint8Array;
      what: string;
      /** Offsets are in `bytes`. */
      blobs: {
        blob: Uint8Array;
        type: BlobTypeValue;
        compression: number;
        offset: number;
        length: number;
        rawLength: number;
      }[];
    }
  | ({ id: number; op: "decode"; sealed: Uint8Array; blob: Uint8Array } & Omit<DecodeJob, "id">)
  | ({ id: number; op: "restoreRange" } & RangeJob);

/**
 * One read of a pack (`sealed`, the bytes of one contiguous range) and the files it feeds, or a
 * slice of those files (see repo/file-restorer.ts): every blob listed is decrypted,
 * decompressed, verified and written at each of its places. A `new` file has all its data
 * here: the worker creates, writes and finishes it. An `open` file was created by the main thread, which finishes it once every
 * range feeding it is written.
 */
export interface RangeJob {
  sealed: Uint8Array;
  key: Uint8Array;
  /** The pack, for error messages. */
  what: string;
  blobs: RangeBlob[];
  files: RangeFile[];
}

export interface RangeBlob {
  /** Offset in `sealed`. */
  at: number;
  length: number;
  blob: Uint8Array;
  type: BlobTypeValue;
  compression: number;
  rawLength: number;
  /** Where it goes: pairs of (index in `files`, offset in that file). */
  to: number[];
}

export type RangeFile =
  | { kind: "new"; dest: string; direct: boolean; size: number; meta: FileMeta }
  | { kind: "open"; fd: number };

/** What became of each file of a range job: `holes` = some of its data was left as holes;
 * `notes` (new files) = attributes that could not be set. */
export interface RangeOutcome {
  holes: boolean;
  notes?: string[];
  failure?: WorkerFailure;
}

/** An error as it crosses from a worker (rebuilt by `rebuildError`). */
export interface WorkerFailure {
  message: string;
  object?: string;
  blobs?: string[];
  code?: string;
}

export type WorkerReply =
  | { id: number; op: "encoded"; blobId: Uint8Array; data: Uint8Array; compression: CompressionType }
  | { id: number; op: "decoded"; plain: Uint8Array }
  | { id: number; op: "verified"; damaged: number[]; nameMatches: boolean }
  | {
      id: number;
      op: "chunk";
      blobId: Uint8Array;
      data: Uint8Array;
      compression: CompressionType;
      rawLength: number;
    }
  | { id: number; op: "fileChunked"; read: FileRead }
  | {
      id: number;
      op: "filesEncoded";
      /** See file-batch.ts; failed files' errors are in `failures` (by index). */
      bytes: ArrayBuffer;
      failures: [number, WorkerFailure][];
    }
  | { id: number; op: "rangeRestored"; files: RangeOutcome[] }
  | ({ id: number; op: "failed" } & WorkerFailure);

interface Pending {
  resolve: (r: WorkerReply) => void;
  reject: (e: unknown) => void;
  worker: number;
  weight: number;
  /** Streaming jobs (chunkFile): each chunk as it arrives. */
  onChunk?: (m: Extract<WorkerReply, { op: "chunk" }>) => void;
}

/** Chunks a worker may send ahead of the main thread having stored them (per file). Storing a
 * chunk takes the main thread a millisecond or two, so a few suffice: 3 instead of 8 took the
 * default profile's first backup from ~263 to ~230 MiB at the same speed (also on one 600 MiB
 * file of random bytes, where the worker waits most). */
const CHUNK_CREDITS = 3;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Throws a worker's failure (see rebuildError); passes any other reply through. */
function failIfFailed(m: WorkerReply): WorkerReply {
  if (m.op === "failed") throw rebuildError(m);
  return m;
}

/** A worker's error as the main thread's: a CorruptionError keeps its object and blobs, and
 * errno codes (ENOSPC, EACCES) survive for callers that tell them apart. */
export function rebuildError(f: WorkerFailure): Error {
  if (f.object !== undefined)
    return new CorruptionError(f.object, f.message.slice(f.object.length + 2), f.blobs ?? []);
  return Object.assign(new Error(f.message), f.code ? { code: f.code } : {});
}

/** A sealed blob as a worker takes it: bytes of their own (to transfer), the blob id as `blob`
 * (`id` numbers the job). */
function sealedBlob(sealed: Buffer, job: DecodeJob) {
  const { id: blob, ...rest } = job;
  return { sealed: transferable(sealed), blob, ...rest };
}

/** Small files to back up go to workers in batches of up to this many (one message each way,
 * one buffer back): a mail store's 30,000 messages make ~2,000 round trips instead of 30,000. */
const READ_BATCH = 16;

/** A pool starts one worker and adds the next only when every running one has had work
 * queued without a break for this long, while this thread's event loop was busy for less than
 * GROW_BELOW_LOOP of that time: the workers hold things up, and a core is free for another. */
const GROW_AFTER_MS = 100;
const GROW_BELOW_LOOP = 0.3;

/**
 * Whether a lazy pool that may grow starts another worker: when every running one is busy and
 * the job is a large file, or when every one has been busy for GROW_AFTER_MS (`busySince`, in
 * performance.now() time) while this thread's event loop was busy less than GROW_BELOW_LOOP of
 * the last GROW_AFTER_MS or more (`loopBusy`).
 */
export function shouldGrow(s: {
  busySince: readonly (number | undefined)[];
  now: number;
  loopBusy: number;
  large: boolean;
}): boolean {
  if (s.busySince.some((t) => t === undefined)) return false;
  if (s.large) return true;
  return s.busySince.every((t) => s.now - t! >= GROW_AFTER_MS) && s.loopBusy < GROW_BELOW_LOOP;
}

/**
 * Worker threads for the CPU-heavy steps of a blob: hashing and compressing on the way in
 * (backup), decrypting, decompressing and verifying on the way out (restore, check). The owner
 * picks how many workers; a lazy pool starts one, and another each time the running ones hold
 * the main thread up (GROW_AFTER_MS): where the main thread is the bottleneck (a backup of many
 * small files) another isolate would only cost memory (~10-25 MiB) and turns on the cores.
 * Each job goes to the least busy and callers bound how many are in flight, so memory stays
 * flat. Buffers are transferred, not copied, when they own their memory.
 */
export class BlobPool {
  private readonly workers: Worker[] = [];
  private readonly busy: number[] = [];
  /** When each worker last went from idle to busy (undefined while idle). */
  private readonly busySince: (number | undefined)[] = [];
  /** This thread's event loop use since `loopMark`, measured each GROW_AFTER_MS (see leastLoaded). */
  private loopMark = performance.eventLoopUtilization();
  private loopBusy = 1;
  /** Pack checks going on, by worker (see packCheck). */
  private readonly packChecks: number[] = [];
  private readonly jobs = new Map<number, Pending>();
  private next = 0;
  private closing = false;
  /** Small files waiting to be read together (see encodeFile). */
  private readQueue: {
    path: string;
    size: number;
    resolve: (r: { read: FileRead; blob?: PooledBlob }) => void;
    reject: (e: unknown) => void;
  }[] = [];

  /** `size`: workers at most. `lazy`: start one, and the others as work piles up (see
   * GROW_AFTER_MS); otherwise all at once. */
  constructor(
    private readonly idKey: Buffer,
    private readonly size: number,
    lazy = false,
  ) {
    do this.grow();
    while (!lazy && this.workers.length < size);
  }

  /** Starts one more worker. */
  private grow(): void {
    this.workers.push(this.spawn(this.workers.length));
    this.busy.push(0);
    this.busySince.push(undefined);
    this.packChecks.push(0);
  }

  /** Workers running (they start as work piles up, up to the pool's size). */
  get running(): number {
    return this.workers.length;
  }

  private spawn(slot: number): Worker {
    const w = new Worker(new URL("./blob-worker.js", import.meta.url), {
      workerData: { idKey: this.idKey },
      // A small young generation: buffers a worker is done with (pack windows handed over by a
      // check, decrypted blobs) are freed at the next scavenge, which comes after a few hundred
      // KiB of allocation instead of 16 MiB (`check --read-data` peaked 12 MiB lower).
      resourceLimits: { maxYoungGenerationSizeMb: 1 },
    });
    w.on("message", (m: WorkerReply) => {
      const job = this.jobs.get(m.id);
      if (!job) return;
      if (m.op === "chunk") {
        job.onChunk?.(m);
        return;
      }
      this.settle(m.id, job);
      job.resolve(m);
    });
    // A worker that dies (an uncaught error, out of memory) fails only its own jobs, and a
    // fresh one takes its place: jobs on other workers, such as writes into an open restored
    // file, finish normally before their caller closes anything.
    const died = (e: unknown) => {
      if (this.workers[slot] !== w) return;
      for (const [id, job] of this.jobs) {
        if (job.worker !== slot) continue;
        this.settle(id, job);
        job.reject(e);
      }
      this.busy[slot] = 0;
      this.busySince[slot] = undefined;
      if (this.closing) return;
      this.workers[slot] = this.spawn(slot);
    };
    w.on("error", died);
    w.on("exit", (code) => died(new Error(`a blob worker stopped unexpectedly (exit code ${code})`)));
    // Referenced while the pool has jobs, as the running ones are (see post).
    if (this.jobs.size === 0) w.unref();
    return w;
  }

  private settle(id: number, job: Pending): void {
    this.jobs.delete(id);
    this.busy[job.worker]! -= job.weight;
    if (this.busy[job.worker] === 0) this.busySince[job.worker] = undefined;
    if (this.jobs.size === 0) for (const x of this.workers) x.unref();
  }

  /** Hashes and compresses `buf`; `buf` must not be used by the caller afterwards. */
  async encode(buf: Buffer): Promise<PooledBlob> {
    const m = await this.post({ op: "encode", buf }, ownsMemory(buf) ? [buf.buffer as ArrayBuffer] : []);
    if (m.op !== "encoded") throw new Error("blob worker: unexpected reply");
    return { id: asBuffer(m.blobId), data: asBuffer(m.data), compression: m.compression };
  }

  /**
   * Reads a small file whole on a worker (see `readWholeFd`), then hashes and compresses it
   * as one blob (none for an empty file): for small files the system calls cost more than the
   * data, and a worker makes them without a trip through the thread pool for each. Files go to
   * workers in batches (see `queueRead`), and come back in one buffer per batch.
   */
  encodeFile(path: string, size: number): Promise<{ read: FileRead; blob?: PooledBlob }> {
    return new Promise((resolve, reject) => {
      this.readQueue.push({ path, size, resolve, reject });
      if (this.readQueue.length >= READ_BATCH) this.sendReads();
      else if (this.readQueue.length === 1) setImmediate(() => this.sendReads());
    });
  }

  private sendReads(): void {
    const batch = this.readQueue;
    if (batch.length === 0) return;
    this.readQueue = [];
    const msg = {
      op: "encodeFiles" as const,
      paths: batch.map((b) => b.path),
      sizes: batch.map((b) => b.size),
    };
    this.post(msg, [], batch.length).then(
      (m) => {
        if (m.op === "failed") {
          for (const b of batch) b.reject(rebuildError(m));
          return;
        }
        if (m.op !== "filesEncoded") {
          for (const b of batch) b.reject(new Error("blob worker: unexpected reply"));
          return;
        }
        const failed = new Map(m.failures);
        const bytes = new Uint8Array(m.bytes);
        const files = readBatch(bytes, batch.length);
        // The batch's memory goes once every blob in it was taken (see PooledBlob.done).
        let left = files.filter((f) => f.kind === "read" && f.blob).length;
        const done = () => {
          if (--left === 0) release(bytes);
        };
        files.forEach((f, i) => {
          const b = batch[i]!;
          if (f.kind === "failed")
            b.reject(rebuildError(failed.get(i) ?? { message: "blob worker: no error" }));
          else if (f.kind !== "read") b.resolve({ read: { kind: f.kind } });
          else
            b.resolve({
              read: { kind: "read", after: f.after, length: f.length },
              ...(f.blob
                ? { blob: { id: f.blob.id, data: f.blob.data, compression: f.blob.compression, done } }
                : {}),
            });
        });
      },
      (e: unknown) => {
        for (const b of batch) b.reject(e);
      },
    );
  }

  /**
   * Reads a large file on a worker and cuts it into chunks there (content-defined, `params` and
   * `gear` as the repository's), hashing and compressing each: `onChunk` receives them in file
   * order and resolves once the chunk is stored. The worker runs at most CHUNK_CREDITS chunks
   * ahead (a shared counter it waits on), so memory stays flat however large the file. If
   * `onChunk` fails, the worker stops reading and the job fails with that error. Resolves with
   * the file's metadata after the read and the bytes read (or why it was not a file any more).
   */
  async chunkFile(
    path: string,
    params: ChunkerParams,
    gear: Uint32Array,
    onChunk: (blob: PooledBlob & { rawLength: number }) => Promise<void>,
  ): Promise<FileRead> {
    const control = new Int32Array(new SharedArrayBuffer(8));
    control[0] = CHUNK_CREDITS;
    let failure: unknown;
    // Chunks being stored (each removes itself when done, so this stays small).
    const stored = new Set<Promise<void>>();
    const handle = (m: Extract<WorkerReply, { op: "chunk" }>) => {
      const blob = {
        id: asBuffer(m.blobId),
        data: asBuffer(m.data),
        compression: m.compression,
        rawLength: m.rawLength,
      };
      const p: Promise<void> = (failure ? Promise.reject(failure) : onChunk(blob)).then(
        () => {
          Atomics.add(control, 0, 1);
          Atomics.notify(control, 0);
        },
        (e: unknown) => {
          failure ??= e;
          Atomics.store(control, 1, 1);
          Atomics.notify(control, 0);
        },
      );
      stored.add(p);
      p.finally(() => stored.delete(p));
    };
    let reply: WorkerReply;
    try {
      reply = failIfFailed(
        await this.post(
          { op: "chunkFile", path, params, gear, control: control.buffer as SharedArrayBuffer },
          [],
          16,
          handle,
        ),
      );
    } catch (e) {
      // The worker may still be waiting for credit (if it is alive): tell it to stop.
      Atomics.store(control, 1, 1);
      Atomics.notify(control, 0);
      await Promise.all(stored);
      throw failure ?? e;
    }
    await Promise.all(stored);
    if (failure) throw failure;
    if (reply.op !== "fileChunked") throw new Error("blob worker: unexpected reply");
    return reply.read;
  }

  /**
   * Starts checking a pack in windows (see verifyWindow): its windows all go to the worker
   * picked here, the least busy.
   */
  packCheck(): PackCheck {
    // Counted from now on: packs started together, before any window is sent, go to
    // different workers.
    const load = (i: number) => this.busy[i]! + this.packChecks[i]!;
    const w = this.leastLoaded(load);
    this.packChecks[w]!++;
    return { stream: this.next++, worker: w, sent: 0 };
  }

  /** A pack check is over (every window answered, or it stopped). */
  endPackCheck(check: PackCheck): void {
    this.packChecks[check.worker]!--;
  }

  /**
   * Checks one window of a pack (`check --read-data`), windows in pack order: the worker adds
   * it to the pack's running SHA-256, and every listed blob (offsets in `bytes`) decrypts,
   * decompresses and matches its id (indexes of those that do not are returned). With `last`,
   * whether the SHA-256 of all the windows matches `packId`. `bytes` is handed over (not copied
   * when it owns its memory).
   */
  async verifyWindow(
    check: PackCheck,
    w: { bytes: Buffer; last: boolean; packId: string; key: Buffer; what: string; blobs: BlobLocation[] },
  ): Promise<{ damaged: number[]; nameMatches: boolean }> {
    const own = transferable(w.bytes);
    const blobs = w.blobs.map((b) => ({
      blob: b.id,
      type: b.type,
      compression: b.compression,
      offset: b.offset,
      length: b.length,
      rawLength: b.rawLength,
    }));
    const msg = {
      ...w,
      op: "verifyWindow" as const,
      stream: check.stream,
      first: check.sent++ === 0,
      bytes: own,
      blobs,
    };
    const m = failIfFailed(await this.post(msg, [own.buffer as ArrayBuffer], 1, undefined, check.worker));
    if (m.op !== "verified") throw new Error("blob worker: unexpected reply");
    return { damaged: m.damaged, nameMatches: m.nameMatches };
  }

  /**
   * Decrypts, decompresses and verifies one blob. `sealed` is copied unless it owns its memory
   * (a view into a larger read buffer would otherwise be cloned whole); the caller must not use
   * it afterwards.
   */
  async decode(sealed: Buffer, job: DecodeJob): Promise<Buffer> {
    const b = sealedBlob(sealed, job);
    const m = failIfFailed(await this.post({ op: "decode", ...b }, [b.sealed.buffer as ArrayBuffer]));
    if (m.op !== "decoded") throw new Error("blob worker: unexpected reply");
    return asBuffer(m.plain);
  }

  /**
   * Decodes and writes one range of a pack, or a slice of one, into the files it feeds (see
   * RangeJob), on the least busy worker. `job.sealed` is handed over (copied first unless it
   * owns its memory), or read in place when it is shared memory (the caller keeps it until this
   * settles).
   * Resolves with what became of each file; a worker that dies fails the whole job.
   */
  async restoreRange(job: RangeJob): Promise<RangeOutcome[]> {
    // Shared memory (the restorer's arena) is read where it is; anything else is handed over.
    const shared = job.sealed.buffer instanceof SharedArrayBuffer;
    const sealed = shared ? job.sealed : transferable(asBuffer(job.sealed));
    const m = failIfFailed(
      await this.post(
        { op: "restoreRange", ...job, sealed },
        shared ? [] : [sealed.buffer as ArrayBuffer],
        Math.max(1, Math.ceil(sealed.length / (1024 * 1024))),
      ),
    );
    if (m.op !== "rangeRestored") throw new Error("blob worker: unexpected reply");
    return m.files;
  }

  /** `large`: the job is a large file (chunkFile), hashing and compressing on one worker for as
   * long as it takes to read: another worker starts at once if every running one is busy. */
  private leastBusy(large = false): number {
    return this.leastLoaded((i) => this.busy[i]!, large);
  }

  /** The worker with the least `load`; a new one when the running ones hold things up (see
   * GROW_AFTER_MS), or all are busy and `large`. */
  private leastLoaded(load: (i: number) => number, large = false): number {
    let w = 0;
    for (let i = 1; i < this.workers.length; i++) if (load(i) < load(w)) w = i;
    if (this.workers.length >= this.size || this.closing) return w;
    const loop = performance.eventLoopUtilization(this.loopMark);
    if (loop.idle + loop.active >= GROW_AFTER_MS) {
      this.loopBusy = loop.utilization;
      this.loopMark = performance.eventLoopUtilization();
    }
    const now = performance.now();
    if (!shouldGrow({ busySince: this.busySince, now, loopBusy: this.loopBusy, large })) return w;
    this.grow();
    return this.workers.length - 1;
  }

  /** `weight`: how much the job loads its worker (a whole file counts as many blobs); `pin`:
   * the worker that must take it (else the least busy). */
  private post(
    msg: DistributiveOmit<WorkerRequest, "id">,
    transfer: ArrayBuffer[],
    weight = 1,
    onChunk?: Pending["onChunk"],
    pin?: number,
  ): Promise<WorkerReply> {
    const id = this.next++;
    const w = pin ?? this.leastBusy(msg.op === "chunkFile");
    // Workers keep the process alive only while they have work (an idle pool must not).
    if (this.jobs.size === 0) for (const x of this.workers) x.ref();
    this.busySince[w] ??= performance.now();
    this.busy[w]! += weight;
    return new Promise((resolve, reject) => {
      const job: Pending = { resolve, reject, worker: w, weight, ...(onChunk ? { onChunk } : {}) };
      this.jobs.set(id, job);
      try {
        this.workers[w]!.postMessage({ id, ...msg }, transfer);
      } catch (e) {
        // E.g. a buffer that cannot be transferred: nothing was sent, so forget the job.
        this.settle(id, job);
        reject(e);
      }
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
