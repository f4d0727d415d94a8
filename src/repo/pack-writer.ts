import type { Backend, ObjectWriter } from "../backend/backend.js";
import { release } from "../core/buffers.js";
import { Chunker } from "../core/chunker.js";
import { maybeCompress } from "../core/compress.js";
import { BlobType, type BlobTypeValue } from "./blob.js";
import type { BlobPool, FileRead } from "./blob-pool.js";
import { names, type RepoConfig } from "./config.js";
import type { IndexPack } from "./index-file.js";
import type { IndexState } from "./index-state.js";
import type { KeyRing } from "./key-ring.js";
import { PackBuilder } from "./pack.js";
import { encodeTree, type Tree } from "./tree.js";

export interface SaveResult {
  id: Buffer;
  /** False when the blob was already in the repository (deduplicated). */
  added: boolean;
}

/** What this process added: blobs, their plaintext bytes, and the bytes they take in packs. */
export interface WriteStats {
  blobsAdded: number;
  bytesAdded: number;
  bytesStored: number;
}

/** How many finished packs may be uploading while the next ones are built. */
const UPLOADS_IN_FLIGHT = 2;
/** An index file is written after this many packs or this many ms, whichever comes first, so a
 * killed backup loses little: the next run finds those blobs in the index and skips them. */
const INDEX_EVERY_PACKS = 8;
const INDEX_EVERY_MS = 15_000;
/** Blobs from this size up are hashed and compressed on worker threads (a mail-sized message
 * is already worth the hop); tiny ones are done inline. */
const POOL_MIN = 2 * 1024;
/** Streamed packs (storage with `openWriter`) are written in pieces of about this size as they
 * fill, so a pack costs a few of these instead of its whole size in memory. */
const PIECE = 1024 * 1024;
/** Pieces kept for reuse (one filling, one writing, one waiting per pack type at most). */
const SPARE_PIECES = 4;
/** What sealing adds to a blob: nonce and tag. */
const SEAL_OVERHEAD = 28;
/** Bounds the blobs waiting for compression, so memory stays flat (~this many x chunk size). */
const COMPRESS_IN_FLIGHT = 4;

/** A pack being streamed: its storage writer, and the chain of its pieces' writes (never
 * rejects; failures go to the writer's uploadError). */
interface PackStream {
  writer: Promise<ObjectWriter>;
  tail: Promise<void>;
}

/**
 * The blob-writing side of a repository, handed to the function given to
 * `Repository.withWriter`: deduplicates, compresses and encrypts blobs into packs, uploads them
 * and writes index files. Nothing is durable until the scope ends (the repository flushes then).
 */
export interface BlobWriter {
  /** Whether a blob is already stored (outside any prune plan) or queued by this process. */
  hasBlob(id: Buffer): boolean;
  /** Stores a blob unless the repository already has it; resolves once it is queued. */
  saveBlob(type: BlobTypeValue, plain: Buffer, id?: Buffer): Promise<SaveResult>;
  /**
   * Like `saveBlob` for large data blobs, but hashing and compression run on worker threads:
   * resolves once the blob is queued, with a promise of its id. The caller must not touch
   * `plain` afterwards (its memory may be handed to a worker).
   */
  saveBlobDeferred(type: BlobTypeValue, plain: Buffer): Promise<{ id: Promise<Buffer> }>;
  /** Reads a small file on a worker thread and stores it as one data blob (none when empty). */
  saveSmallFile(path: string, size: number): Promise<{ read: FileRead; id?: Buffer }>;
  /** Reads, chunks, hashes and compresses a large file on a worker thread; stores new chunks. */
  saveLargeFile(path: string, onBytes: (n: number) => void): Promise<{ read: FileRead; ids: Buffer[] }>;
  saveTree(tree: Tree): Promise<{ id: string; added: boolean }>;
  /** A content-defined chunker with this repository's parameters and secret gear table. */
  newChunker(): Chunker;
  /** Files below the chunker's minimum chunk size are one blob (read whole). */
  readonly chunkerMin: number;
}

/**
 * Write order (the invariant every reader relies on): packs → index files → snapshot or record.
 * `flush` uploads every open pack and writes the index for all of them; the repository calls it
 * when a writer scope ends, before anything may point at the blobs.
 */
export class PackWriter implements BlobWriter {
  readonly stats: WriteStats = { blobsAdded: 0, bytesAdded: 0, bytesStored: 0 };
  private readonly builders = new Map<BlobTypeValue, PackBuilder>();
  private readonly pending = new Set<string>();
  private readonly uploads = new Set<Promise<void>>();
  private readonly compressing = new Set<Promise<void>>();
  /** Full packs waiting for an upload slot, and blobs waiting for them to go (see addToPack). */
  private fullWaiting = 0;
  private roomWaiters: (() => void)[] = [];
  /** A stored pack's memory, for the next pack to be built in (see uploadPack). */
  private spare: Buffer | undefined;
  /** Packs being streamed to storage (see PackStream). */
  private readonly streams = new Map<PackBuilder, PackStream>();
  private readonly pieces: Buffer[] = [];
  private uploadError: unknown;
  private unindexed: IndexPack[] = [];
  private lastIndexWrite = Date.now();

  constructor(
    private readonly backend: Backend,
    private readonly keys: KeyRing,
    private readonly config: RepoConfig,
    private readonly index: IndexState,
    /** Worker threads that read, hash and compress (created on first use). */
    private readonly encoder: () => BlobPool,
  ) {}

  get chunkerMin(): number {
    return this.config.chunker.min;
  }

  newChunker(): Chunker {
    return new Chunker(this.config.chunker, this.keys.gearTable());
  }

  hasBlob(id: Buffer): boolean {
    return this.index.isStored(id) || this.pending.has(id.toString("hex"));
  }

  async saveBlob(type: BlobTypeValue, plain: Buffer, id = this.keys.blobId(plain)): Promise<SaveResult> {
    if (this.uploadError) throw this.uploadError;
    const added = this.admit(id, plain.length);
    if (added) {
      const { data, compression } = maybeCompress(plain);
      await this.addToPack(type, id, data, compression, plain.length);
    }
    return { id, added };
  }

  async saveBlobDeferred(type: BlobTypeValue, plain: Buffer): Promise<{ id: Promise<Buffer> }> {
    if (this.uploadError) throw this.uploadError;
    // (An object around the promise: `await` would otherwise wait for the id itself.)
    if (plain.length < POOL_MIN) return { id: Promise.resolve((await this.saveBlob(type, plain)).id) };
    while (this.compressing.size >= COMPRESS_IN_FLIGHT) await Promise.race(this.compressing);
    if (this.uploadError) throw this.uploadError;
    const rawLength = plain.length;
    const job = this.encoder()
      .encode(plain)
      .then(async ({ id, data, compression }) => {
        // Deduplication is decided here, on the main thread, once the id is known.
        if (this.admit(id, rawLength)) await this.addToPack(type, id, data, compression, rawLength);
        release(data); // the worker's output, sealed into the pack (or a duplicate)
        return id;
      });
    const tracked = job.then(
      () => {},
      (e) => {
        this.uploadError ??= e;
      },
    );
    const done = tracked.finally(() => this.compressing.delete(done));
    this.compressing.add(done);
    job.catch(() => {}); // failures surface through uploadError and the caller's await of `id`
    return { id: job };
  }

  async saveSmallFile(path: string, size: number): Promise<{ read: FileRead; id?: Buffer }> {
    if (this.uploadError) throw this.uploadError;
    const { read, blob } = await this.encoder().encodeFile(path, size);
    if (!blob || read.kind !== "read") return { read };
    if (this.admit(blob.id, read.length))
      await this.addToPack(BlobType.data, blob.id, blob.data, blob.compression, read.length);
    blob.done?.(); // sealed into the pack (or a duplicate): its batch may go
    return { read, id: blob.id };
  }

  async saveLargeFile(
    path: string,
    onBytes: (n: number) => void,
  ): Promise<{ read: FileRead; ids: Buffer[] }> {
    if (this.uploadError) throw this.uploadError;
    const ids: Buffer[] = [];
    const read = await this.encoder().chunkFile(
      path,
      this.config.chunker,
      this.keys.gearTable(),
      async (b) => {
        ids.push(b.id);
        onBytes(b.rawLength);
        if (this.uploadError) throw this.uploadError;
        if (this.admit(b.id, b.rawLength))
          await this.addToPack(BlobType.data, b.id, b.data, b.compression, b.rawLength);
        release(b.data); // the worker's output, sealed into the pack (or a duplicate)
      },
    );
    return { read, ids };
  }

  async saveTree(tree: Tree): Promise<{ id: string; added: boolean }> {
    const r = await this.saveBlob(BlobType.tree, encodeTree(tree));
    return { id: r.id.toString("hex"), added: r.added };
  }

  /** Marks a new blob as pending and counts it; false when it is already stored or queued. */
  private admit(id: Buffer, rawLength: number): boolean {
    const hex = id.toString("hex");
    if (this.index.isStored(id) || this.pending.has(hex)) return false;
    this.pending.add(hex);
    this.stats.blobsAdded++;
    this.stats.bytesAdded += rawLength;
    return true;
  }

  private async addToPack(
    type: BlobTypeValue,
    id: Buffer,
    data: Buffer,
    compression: number,
    rawLength: number,
  ) {
    let builder = this.builders.get(type);
    // A new pack starts only when no full one is waiting for an upload slot: otherwise every
    // producer that finds its pack full starts another, and full packs pile up (a heap snapshot
    // of a first backup held six of 26 MiB, three of them waiting). So at most: the uploads in
    // flight, one full pack waiting, one filling.
    while (!builder && this.fullWaiting > 0) {
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
      if (this.uploadError) throw this.uploadError;
      builder = this.builders.get(type);
    }
    if (!builder) builder = this.newBuilder(type);
    // A streamed pack writes out what it holds before a blob would outgrow its piece.
    const streamed = this.streams.get(builder);
    let written: Promise<void> | undefined;
    if (streamed && builder.held > 0 && builder.room < data.length + SEAL_OVERHEAD)
      written = this.writePiece(builder, streamed);
    const before = builder.byteSize;
    builder.add(id, data, compression, rawLength);
    this.stats.bytesStored += builder.byteSize - before;
    if (builder.byteSize >= this.config.packSize) {
      this.builders.delete(type);
      await this.uploadPack(builder);
    } else if (written) {
      // At most one piece writing and one waiting per pack: the producer waits for storage.
      await written;
      if (this.uploadError) throw this.uploadError;
    }
  }

  private newBuilder(type: BlobTypeValue): PackBuilder {
    const key = this.keys.newPackKey(type);
    let builder: PackBuilder;
    if (this.backend.openWriter) {
      builder = new PackBuilder(type, key, PIECE, this.pieces.pop());
      const writer = this.backend.openWriter("data");
      writer.catch((e) => {
        this.uploadError ??= e;
      });
      this.streams.set(builder, {
        writer,
        tail: writer.then(
          () => {},
          () => {},
        ),
      });
    } else {
      // Room for a full pack, its last blob and its header: reserved, touched only as it fills.
      const room = this.config.packSize + this.config.chunker.max + (this.config.packSize >> 3);
      builder = new PackBuilder(type, key, room, this.spare);
      if (builder.memory === this.spare) this.spare = undefined;
    }
    this.builders.set(type, builder);
    return builder;
  }

  /** Hands a streamed pack's bytes so far to its writer, after the previous piece; resolves when
   * that previous piece is written (never rejects: failures go to uploadError). */
  private writePiece(builder: PackBuilder, stream: PackStream): Promise<void> {
    const piece = builder.take(this.pieces.pop() ?? Buffer.allocUnsafeSlow(PIECE));
    const previous = stream.tail;
    stream.tail = previous.then(async () => {
      if (this.uploadError) return;
      try {
        await (await stream.writer).write(piece);
        this.reusePiece(piece);
      } catch (e) {
        this.uploadError ??= e;
      }
    });
    return previous;
  }

  /** A written piece's memory goes back to the spares (or is freed now, if odd-sized). */
  private reusePiece(piece: Buffer): void {
    const whole = Buffer.from(piece.buffer, 0, piece.buffer.byteLength);
    if (whole.length === PIECE && this.pieces.length < SPARE_PIECES) this.pieces.push(whole);
    else release(whole);
  }

  private async uploadPack(builder: PackBuilder): Promise<void> {
    if (this.uploads.size >= UPLOADS_IN_FLIGHT) {
      this.fullWaiting++;
      try {
        while (this.uploads.size >= UPLOADS_IN_FLIGHT) await Promise.race(this.uploads);
      } finally {
        if (--this.fullWaiting === 0) for (const wake of this.roomWaiters.splice(0)) wake();
      }
    }
    if (this.uploadError) {
      this.abortStream(builder);
      throw this.uploadError;
    }
    const { id, bytes, entries } = builder.finish();
    const stream = this.streams.get(builder);
    this.streams.delete(builder);
    const p = (async () => {
      if (stream) {
        await stream.tail;
        const writer = await stream.writer;
        if (this.uploadError) {
          await writer.abort();
          return;
        }
        try {
          await writer.write(bytes);
          this.reusePiece(bytes);
          await writer.commit(names.pack(id));
        } catch (e) {
          await writer.abort();
          throw e;
        }
      } else {
        await this.backend.put(names.pack(id), bytes);
        // Stored: a backend keeps nothing of the bytes once a put has resolved (backend.ts), so
        // the next pack is built in this memory (pages already touched; no dead 26 MiB buffer
        // left for the garbage collector to find).
        this.spare ??= builder.memory;
      }
      this.index.addUploaded(id, entries);
      for (const e of entries) this.pending.delete(e.id.toString("hex"));
      this.unindexed.push({ id, blobs: entries });
      if (this.unindexed.length >= INDEX_EVERY_PACKS || Date.now() - this.lastIndexWrite > INDEX_EVERY_MS) {
        await this.writeIndex();
      }
    })().catch((e) => {
      this.uploadError ??= e;
    });
    const tracked = p.finally(() => this.uploads.delete(tracked));
    this.uploads.add(tracked);
  }

  /** Drops a streamed pack that will not be stored: its temporary object goes before `flush`
   * returns (the abort is tracked with the uploads). */
  private abortStream(builder: PackBuilder): void {
    const stream = this.streams.get(builder);
    if (!stream) return;
    this.streams.delete(builder);
    const p = stream.tail
      .then(() => stream.writer)
      .then(
        (w) => w.abort(),
        () => {},
      );
    const tracked = p.finally(() => this.uploads.delete(tracked));
    this.uploads.add(tracked);
  }

  private async writeIndex(): Promise<void> {
    if (this.unindexed.length === 0) return;
    const packs = this.unindexed;
    this.unindexed = [];
    this.lastIndexWrite = Date.now();
    await this.index.writeFile({ supersedes: [], packs });
  }

  /** Uploads every open pack and writes the index for all of them. */
  async flush(): Promise<void> {
    while (this.compressing.size > 0) await Promise.race(this.compressing);
    const open = [...this.builders.values()];
    this.builders.clear();
    try {
      for (const builder of open) if (builder.count > 0) await this.uploadPack(builder);
    } finally {
      // Empty packs, and any not uploaded after a failure: their temporary objects go (a no-op
      // for the uploaded ones).
      for (const builder of open) this.abortStream(builder);
    }
    while (this.uploads.size > 0) await Promise.race(this.uploads);
    if (this.uploadError) throw this.uploadError;
    // A writer that lives on (replication) holds no idle pack memory.
    this.spare = undefined;
    this.pieces.length = 0;
    await this.writeIndex();
  }
}
