import { randomBytes } from "node:crypto";
import os from "node:os";
import type { Backend } from "../backend/backend.js";
import { type ChunkerParams, gearTable } from "../core/chunker.js";
import { maybeCompress } from "../core/compress.js";
import { blobId, storageId } from "../core/crypto.js";
import { CorruptionError, isLifeboatError, LifeboatError } from "../core/errors.js";
import { type FileMeta, writeOrHole } from "../fsio/file-write.js";
import { type BlobLocation, BlobType, type BlobTypeValue } from "./blob.js";
import { BlobPool, type FileRead } from "./blob-pool.js";
import {
  DEFAULT_PACK_SIZE,
  decodeConfig,
  defaultChunkerParams,
  isStorageId,
  names,
  type RepoConfig,
} from "./config.js";
import { listPlans } from "./gc-plan.js";
import { decodeIndex, encodeIndex, type IndexFile, type IndexPack } from "./index-file.js";
import {
  createKeyFile,
  generateMasterKeys,
  type KeyFile,
  type MasterKeys,
  parseKeyFile,
  unwrapKeyFile,
} from "./keys.js";
import { type IndexedBlob, MasterIndex } from "./master-index.js";
import { decodeBlob, PACK_PREFIX, PackBuilder, packKey, parsePrefix } from "./pack.js";
import { PackReader } from "./pack-reader.js";
import { ObjectKind, type ObjectKindValue, openObject, sealObject } from "./sealed-object.js";
import { decodeSnapshot, type Snapshot, type SnapshotWithId } from "./snapshot.js";
import { decodeTree, encodeTree, type Tree } from "./tree.js";

export interface InitOptions {
  chunker?: ChunkerParams;
  packSize?: number;
}

export interface SaveResult {
  id: Buffer;
  /** False when the blob was already in the repository (deduplicated). */
  added: boolean;
}

export interface KeyInfo {
  id: string;
  created: string;
  hostname: string;
  username: string;
  current: boolean;
}

const cores = () => Math.max(1, os.availableParallelism?.() ?? os.cpus().length);

/** How many finished packs may be uploading while the next ones are built. */
const UPLOADS_IN_FLIGHT = 2;
/** An index file is written after this many packs or this many ms, whichever comes first, so a
 * killed backup loses little: the next run finds those blobs in the index and skips them. */
const INDEX_EVERY_PACKS = 8;
const INDEX_EVERY_MS = 15_000;
/** Blobs from this size up are hashed and compressed on worker threads (a mail-sized message
 * is already worth the hop); tiny ones are done inline. */
const POOL_MIN = 2 * 1024;
/** Blobs from this stored size up are decrypted, decompressed and verified on worker threads
 * when read; smaller ones (trees, mail-sized files) cost less than the hop. */
const DECODE_POOL_MIN = 16 * 1024;
/** Bounds the blobs waiting for compression, so memory stays flat (~this many x chunk size). */
const COMPRESS_IN_FLIGHT = 4;

/**
 * An open repository: keys, config, the in-memory index, and the writer that packs blobs.
 * Write order (the invariant every reader relies on): packs → index files → snapshot. A snapshot
 * is saved only after `flush` has made every blob it references durable and indexed.
 */
/** Folders of small sealed JSON documents (prune plans, sessions, restore drill records). */
export type DocumentPrefix = "gc/" | "sessions/" | "drills/" | "acks/" | "sqlite-wal/";

export class Repository {
  readonly backend: Backend;
  readonly config: RepoConfig;
  readonly keyId: string;
  /** Every indexed blob; replaced as a whole by `reloadIndex`. */
  index = new MasterIndex();
  private readonly keys: MasterKeys;
  private gear: Uint32Array | undefined;

  private readonly builders = new Map<BlobTypeValue, PackBuilder>();
  private readonly pending = new Set<string>();
  private readonly uploads = new Set<Promise<void>>();
  private readonly compressing = new Set<Promise<void>>();
  /** Workers for backups (read small files, hash, compress): one per core. The main thread
   * chunks large files too, but small files keep workers waiting on reads; one per core
   * measured faster than one fewer (first backup of the bench dataset 3.95 -> 3.7 s). */
  private encoder: BlobPool | undefined;
  /** Workers for restores (decode + write): one per core, the main thread mostly waits. */
  private decoder: BlobPool | undefined;
  private reader: PackReader | undefined;
  /** Packs listed in prune's deletion plans (see loadIndex). */
  doomed = new Set<string>();
  /** Index files in force when the index was loaded (prune supersedes exactly these). */
  loadedIndexes: string[] = [];
  /** Index files still in storage but replaced by another's `supersedes` (left by a prune that
   * was interrupted or not allowed to delete them); the next index rewrite supersedes them too. */
  supersededIndexes: string[] = [];
  /** What this process added: blobs, their plaintext bytes, and the bytes they take in packs. */
  readonly writeStats = { blobsAdded: 0, bytesAdded: 0, bytesStored: 0 };
  private uploadError: unknown;
  private unindexed: IndexPack[] = [];
  private lastIndexWrite = Date.now();
  private readonly packKeys = new Map<string, Buffer>();
  private readonly treeCache = new Map<string, Tree>();
  /** Index files written by this process (so `loadIndex` after a flush does not double-read). */
  readonly writtenIndexes: string[] = [];

  private constructor(backend: Backend, config: RepoConfig, keys: MasterKeys, keyId: string) {
    this.backend = backend;
    this.config = config;
    this.keys = keys;
    this.keyId = keyId;
  }

  /** Whether a finished repository (one with a config object) is at this backend. */
  static async exists(backend: Backend): Promise<boolean> {
    return (await backend.exists()) && (await backend.stat(names.config)) !== undefined;
  }

  static alreadyExists(backend: Backend): LifeboatError {
    return new LifeboatError(
      "REPO_EXISTS",
      `a repository already exists at ${backend.location}`,
      "use it as it is (nothing was changed), or choose another location for a new one",
    );
  }

  static notFound(backend: Backend): LifeboatError {
    return new LifeboatError(
      "REPO_NOT_FOUND",
      `there is no lifeboat repository at ${backend.location}`,
      "check -r/--repo (or LIFEBOAT_REPOSITORY), or create one with `lifeboat init`",
    );
  }

  /** Creates a new repository; refuses if one already exists there. */
  static async init(backend: Backend, password: string, options: InitOptions = {}): Promise<Repository> {
    if (await Repository.exists(backend)) throw Repository.alreadyExists(backend);
    await backend.create();
    const keys = generateMasterKeys();
    const config: RepoConfig = {
      version: 1,
      id: randomBytes(32).toString("hex"),
      created: new Date().toISOString(),
      chunker: options.chunker ?? defaultChunkerParams(),
      packSize: options.packSize ?? DEFAULT_PACK_SIZE,
    };
    const key = await createKeyFile(password, keys);
    await backend.put(names.key(key.id), key.bytes);
    // The config goes last: its presence is what marks a finished repository.
    await backend.put(
      names.config,
      sealObject(keys.meta, ObjectKind.config, Buffer.from(JSON.stringify(config))),
    );
    return new Repository(backend, config, keys, key.id);
  }

  /** Opens an existing repository with one of its passwords and loads its index. */
  static async open(
    backend: Backend,
    password: string,
    options: { loadIndex?: boolean } = {},
  ): Promise<Repository> {
    if (!(await Repository.exists(backend))) throw Repository.notFound(backend);
    const keyIds: string[] = [];
    for await (const o of backend.list("keys/")) {
      const id = o.name.slice("keys/".length);
      if (isStorageId(id)) keyIds.push(id);
    }
    if (keyIds.length === 0) {
      throw new CorruptionError(
        "keys/",
        "the repository has no key files",
        [],
        "restore the keys/ folder from a copy",
      );
    }
    for (const id of keyIds) {
      const file = parseKeyFile(await backend.get(names.key(id)), names.key(id));
      const keys = await unwrapKeyFile(file, password);
      if (!keys) continue;
      const config = decodeConfig(
        openObject(keys.meta, ObjectKind.config, await backend.get(names.config), "config"),
      );
      const repo = new Repository(backend, config, keys, id);
      if (options.loadIndex ?? true) await repo.loadIndex();
      return repo;
    }
    throw new LifeboatError(
      "WRONG_PASSWORD",
      `wrong password for the repository at ${backend.location} (tried ${keyIds.length} key${keyIds.length > 1 ? "s" : ""})`,
      "check --password-file, --password-command or LIFEBOAT_PASSWORD",
    );
  }

  /**
   * Reads every index file in force into memory. Packs a prune has planned to delete ("doomed")
   * are indexed last, so a blob that also lives in another pack resolves there, and `isStored`
   * treats blobs found only in them as absent: a backup never deduplicates against data that
   * may be deleted under it. Index files named in another's `supersedes` are left out (they
   * exist only briefly, between a prune writing the new index and deleting the old ones).
   */
  async loadIndex(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        for (const id of (await listPlans(this)).flatMap((p) => p.packs)) this.doomed.add(id);
        const ids = await this.listIds("index/");
        const superseded = await this.addIndexFiles(ids);
        let live = ids;
        if (ids.some((id) => superseded.has(id))) {
          // Rare (after an interrupted prune): start over without the superseded files.
          live = ids.filter((id) => !superseded.has(id));
          this.index = new MasterIndex();
          await this.addIndexFiles(live);
        }
        this.loadedIndexes = live;
        this.supersededIndexes = ids.filter((id) => superseded.has(id));
        return;
      } catch (e) {
        // A prune replaced the index files while we read them: read the new ones.
        if (!isLifeboatError(e) || e.code !== "NOT_FOUND" || attempt >= 5) throw e;
        this.index = new MasterIndex();
      }
    }
  }

  /**
   * Forgets the loaded index and reads it again. `freshPlans` (prune) also forgets which packs
   * were doomed; backups never do (see `catchUpIndex`).
   */
  async reloadIndex(freshPlans = false): Promise<void> {
    this.index = new MasterIndex();
    this.treeCache.clear();
    if (freshPlans) this.doomed = new Set();
    await this.loadIndex();
  }

  /**
   * Called by a backup right after it announced its session: reads prune plans again and the
   * index files written since the index was loaded. If a prune replaced index files meanwhile
   * (so packs may have been deleted), the whole index is read again. Doomed packs stay doomed
   * even when their plan is gone: it was carried out (the pack is deleted) or kept (a copy
   * more costs only space).
   */
  async catchUpIndex(): Promise<void> {
    for (const id of (await listPlans(this)).flatMap((p) => p.packs)) this.doomed.add(id);
    const known = new Set([...this.loadedIndexes, ...this.writtenIndexes]);
    const listed = await this.listIds("index/");
    const listedSet = new Set(listed);
    const fresh = listed.filter((id) => !known.has(id));
    let replaced = this.loadedIndexes.some((id) => !listedSet.has(id));
    const files: IndexFile[] = [];
    for (const id of fresh) {
      if (replaced) break;
      const file = await this.readIndexFile(id).catch((e: unknown) => {
        if (isLifeboatError(e) && e.code === "NOT_FOUND") return undefined;
        throw e;
      });
      if (!file || file.supersedes.length > 0) replaced = true;
      else files.push(file);
    }
    if (replaced) return this.reloadIndex();
    const packs = files.flatMap((f) => f.packs);
    this.index.reserve(packs.reduce((n, p) => n + p.blobs.length, 0));
    for (const p of packs.filter((p) => !this.doomed.has(p.id)))
      for (const b of p.blobs) this.index.add(b, p.id);
    for (const p of packs.filter((p) => this.doomed.has(p.id)))
      for (const b of p.blobs) this.index.add(b, p.id);
    this.loadedIndexes = [...this.loadedIndexes, ...fresh];
  }

  private async addIndexFiles(ids: string[]): Promise<Set<string>> {
    const superseded = new Set<string>();
    const doomedPacks: IndexPack[] = [];
    const add = (packs: IndexPack[]) => {
      this.index.reserve(packs.reduce((n, p) => n + p.blobs.length, 0));
      for (const p of packs) for (const b of p.blobs) this.index.add(b, p.id);
    };
    for (const id of ids) {
      const file = await this.readIndexFile(id);
      for (const s of file.supersedes) superseded.add(s);
      add(file.packs.filter((p) => !this.doomed.has(p.id)));
      doomedPacks.push(...file.packs.filter((p) => this.doomed.has(p.id)));
    }
    add(doomedPacks);
    return superseded;
  }

  async readIndexFile(id: string): Promise<IndexFile> {
    const what = names.index(id);
    return decodeIndex(
      openObject(this.keys.meta, ObjectKind.index, await this.backend.get(what), what),
      what,
    );
  }

  /** Writes an index file (used by prune to replace others via `supersedes`). */
  async writeIndexFile(file: IndexFile): Promise<string> {
    const stored = sealObject(this.keys.meta, ObjectKind.index, encodeIndex(file), false);
    const id = storageId(stored);
    await this.backend.put(names.index(id), stored);
    return id;
  }

  /** Writes a small sealed JSON document of the given kind under `prefix`; returns its id. */
  async writeDocument(prefix: DocumentPrefix, kind: ObjectKindValue, doc: unknown): Promise<string> {
    const stored = sealObject(this.keys.meta, kind, Buffer.from(JSON.stringify(doc)));
    const id = storageId(stored);
    await this.backend.put(`${prefix}${id}`, stored);
    return id;
  }

  async readDocument(prefix: DocumentPrefix, kind: ObjectKindValue, id: string): Promise<unknown> {
    const what = `${prefix}${id}`;
    return JSON.parse(openObject(this.keys.meta, kind, await this.backend.get(what), what).toString("utf8"));
  }

  /** Whether a blob is stored in a pack that is not planned for deletion. */
  isStored(id: Buffer): boolean {
    const loc = this.index.get(id);
    return loc !== undefined && !this.doomed.has(loc.packId);
  }

  /** Storage ids under a folder (`snapshots/`, `index/`, `keys/`), ignoring stray names. */
  async listIds(prefix: string): Promise<string[]> {
    const out: string[] = [];
    for await (const o of this.backend.list(prefix)) {
      const id = o.name.slice(prefix.length);
      if (isStorageId(id)) out.push(id);
    }
    return out;
  }

  gearTable(): Uint32Array {
    this.gear ??= gearTable(this.keys.chunker);
    return this.gear;
  }

  blobId(plain: Uint8Array): Buffer {
    return blobId(this.keys.id, plain);
  }

  /** Whether a blob is already stored or queued by this process. */
  hasBlob(id: Buffer): boolean {
    return this.isStored(id) || this.pending.has(id.toString("hex"));
  }

  /**
   * Stores a blob unless the repository already has it; resolves once it is queued. `flush`
   * makes everything durable. Counters in `writeStats`.
   */
  async saveBlob(type: BlobTypeValue, plain: Buffer, id = this.blobId(plain)): Promise<SaveResult> {
    if (this.uploadError) throw this.uploadError;
    const added = this.admit(id, plain.length);
    if (added) {
      const { data, compression } = maybeCompress(plain);
      await this.addToPack(type, id, data, compression, plain.length);
    }
    return { id, added };
  }

  /**
   * Like `saveBlob` for large data blobs, but hashing and compression run on worker threads:
   * resolves once the blob is queued, with a promise of its id. The caller must not touch
   * `plain` afterwards (its memory may be handed to a worker).
   */
  async saveBlobDeferred(type: BlobTypeValue, plain: Buffer): Promise<{ id: Promise<Buffer> }> {
    if (this.uploadError) throw this.uploadError;
    // (An object around the promise: `await` would otherwise wait for the id itself.)
    if (plain.length < POOL_MIN) return { id: Promise.resolve((await this.saveBlob(type, plain)).id) };
    while (this.compressing.size >= COMPRESS_IN_FLIGHT) await Promise.race(this.compressing);
    if (this.uploadError) throw this.uploadError;
    const rawLength = plain.length;
    const job = this.encoderPool()
      .encode(plain)
      .then(async ({ id, data, compression }) => {
        // Deduplication is decided here, on the main thread, once the id is known.
        if (this.admit(id, rawLength)) await this.addToPack(type, id, data, compression, rawLength);
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

  /**
   * Reads a small file on a worker thread and stores it as one data blob (none when it is
   * empty); see `BlobPool.encodeFile`. Resolves once the blob is queued, with what the read
   * found (the file may have grown or changed type: then nothing was stored).
   */
  async saveSmallFile(path: string, size: number): Promise<{ read: FileRead; id?: Buffer }> {
    if (this.uploadError) throw this.uploadError;
    const { read, blob } = await this.encoderPool().encodeFile(path, size);
    if (!blob || read.kind !== "read") return { read };
    if (this.admit(blob.id, read.length))
      await this.addToPack(BlobType.data, blob.id, blob.data, blob.compression, read.length);
    return { read, id: blob.id };
  }

  /**
   * Reads a large file on a worker thread, which chunks, hashes and compresses it (see
   * `BlobPool.chunkFile`); each new chunk is stored as a data blob here. Returns the chunk ids in
   * order and what the read found. `onBytes` reports progress.
   */
  async saveLargeFile(
    path: string,
    onBytes: (n: number) => void,
  ): Promise<{ read: FileRead; ids: Buffer[] }> {
    if (this.uploadError) throw this.uploadError;
    const ids: Buffer[] = [];
    const read = await this.encoderPool().chunkFile(
      path,
      this.config.chunker,
      this.gearTable(),
      async (b) => {
        ids.push(b.id);
        onBytes(b.rawLength);
        if (this.uploadError) throw this.uploadError;
        if (this.admit(b.id, b.rawLength))
          await this.addToPack(BlobType.data, b.id, b.data, b.compression, b.rawLength);
      },
    );
    return { read, ids };
  }

  /** Marks a new blob as pending and counts it; false when it is already stored or queued. */
  private admit(id: Buffer, rawLength: number): boolean {
    const hex = id.toString("hex");
    if (this.isStored(id) || this.pending.has(hex)) return false;
    this.pending.add(hex);
    this.writeStats.blobsAdded++;
    this.writeStats.bytesAdded += rawLength;
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
    if (!builder) {
      builder = new PackBuilder(type, type === BlobType.tree ? this.keys.meta : this.keys.data);
      this.builders.set(type, builder);
    }
    const before = builder.byteSize;
    builder.add(id, data, compression, rawLength);
    this.writeStats.bytesStored += builder.byteSize - before;
    if (builder.byteSize >= this.config.packSize) {
      this.builders.delete(type);
      await this.uploadPack(builder);
    }
  }

  private async uploadPack(builder: PackBuilder): Promise<void> {
    while (this.uploads.size >= UPLOADS_IN_FLIGHT) await Promise.race(this.uploads);
    if (this.uploadError) throw this.uploadError;
    const { id, bytes, entries } = builder.finish();
    const p = (async () => {
      await this.backend.put(names.pack(id), bytes);
      for (const e of entries) {
        this.index.add(e, id);
        this.pending.delete(e.id.toString("hex"));
      }
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

  private async writeIndex(): Promise<void> {
    if (this.unindexed.length === 0) return;
    const packs = this.unindexed;
    this.unindexed = [];
    this.lastIndexWrite = Date.now();
    const stored = sealObject(
      this.keys.meta,
      ObjectKind.index,
      encodeIndex({ supersedes: [], packs }),
      false,
    );
    const id = storageId(stored);
    await this.backend.put(names.index(id), stored);
    this.writtenIndexes.push(id);
  }

  /** Uploads every open pack and writes the index for all of them. */
  async flush(): Promise<void> {
    while (this.compressing.size > 0) await Promise.race(this.compressing);
    for (const [type, builder] of this.builders) {
      this.builders.delete(type);
      if (builder.count > 0) await this.uploadPack(builder);
    }
    while (this.uploads.size > 0) await Promise.race(this.uploads);
    if (this.uploadError) throw this.uploadError;
    await this.writeIndex();
  }

  /** Writes a snapshot document. Callers must `flush` first (see the class comment). */
  async saveSnapshot(snapshot: Snapshot): Promise<string> {
    const stored = sealObject(this.keys.meta, ObjectKind.snapshot, Buffer.from(JSON.stringify(snapshot)));
    const id = storageId(stored);
    await this.backend.put(names.snapshot(id), stored);
    return id;
  }

  async loadSnapshot(id: string): Promise<SnapshotWithId> {
    const what = names.snapshot(id);
    const snap = decodeSnapshot(
      openObject(this.keys.meta, ObjectKind.snapshot, await this.backend.get(what), what),
      what,
    );
    return { ...snap, id };
  }

  /** Every snapshot, oldest first. */
  async listSnapshots(): Promise<SnapshotWithId[]> {
    const ids = await this.listIds("snapshots/");
    const out = await Promise.all(ids.map((id) => this.loadSnapshot(id)));
    return out.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
  }

  async deleteSnapshot(id: string): Promise<void> {
    await this.backend.delete(names.snapshot(id));
  }

  private async keyForPack(packId: string, type: number): Promise<Buffer> {
    let key = this.packKeys.get(packId);
    if (!key) {
      const what = names.pack(packId);
      const prefix = parsePrefix(await this.backend.get(what, { offset: 0, length: PACK_PREFIX }), what);
      if (prefix.type !== type) throw new CorruptionError(what, "pack type does not match the index");
      key = packKey(prefix.type === BlobType.tree ? this.keys.meta : this.keys.data, prefix.salt);
      if (this.packKeys.size > 10_000) this.packKeys.clear();
      this.packKeys.set(packId, key);
    }
    return key;
  }

  lookup(id: Buffer): IndexedBlob | undefined {
    return this.index.get(id);
  }

  /** Reads, decrypts and verifies one blob. */
  async loadBlob(id: Buffer): Promise<Buffer> {
    const { loc, sealed, what } = await this.readSealed(id);
    // Trees are decoded here: they are needed at once, and a backup that only reads its
    // parent's trees should not start worker threads for them.
    if (loc.length < DECODE_POOL_MIN || loc.type === BlobType.tree) return this.decodeLoaded(loc, sealed);
    const key = await this.keyForPack(loc.packId, loc.type);
    return this.decoderPool().decode(sealed, { ...loc, key, what });
  }

  /**
   * Reads one blob and writes its plaintext at `position` of the open file `fd` (decoded and
   * written on a worker thread when large). All-zero blobs are left as holes: the caller sets
   * the file size at the end. Returns the blob's length and whether it left a hole.
   */
  async writeBlobTo(id: Buffer, fd: number, position: number): Promise<{ length: number; hole: boolean }> {
    const { loc, sealed, what } = await this.readSealed(id);
    if (loc.length < DECODE_POOL_MIN) {
      const plain = await this.decodeLoaded(loc, sealed);
      return { length: plain.length, hole: writeOrHole(fd, plain, position) };
    }
    const key = await this.keyForPack(loc.packId, loc.type);
    return {
      length: loc.rawLength,
      hole: await this.decoderPool().decodeTo(sealed, { ...loc, key, what }, fd, position),
    };
  }

  /**
   * Writes the blobs `ids`, in order, as the new file `dest` through a temporary file (see
   * `writeNewFile` in core/file-write.ts); decoding and all the file's system calls run on a
   * worker thread. Meant for small files (their blobs are held in memory together).
   */
  async restoreSmallFile(
    ids: Buffer[],
    dest: string,
    size: number,
    meta: FileMeta,
    label: string,
  ): Promise<void> {
    const blobs = await Promise.all(
      ids.map(async (id) => {
        const { loc, sealed, what } = await this.readSealed(id);
        return { sealed, job: { ...loc, key: await this.keyForPack(loc.packId, loc.type), what } };
      }),
    );
    await this.decoderPool().writeFile(dest, blobs, size, meta, label);
  }

  /**
   * Verifies a whole pack read by the caller (`check --read-data`) on a worker thread: returns
   * the blobs of `expected` that fail to decrypt, decompress or match their id, and whether the
   * pack's SHA-256 matches its name. The pack key comes from the bytes themselves; a pack whose
   * type differs from the index's fails every blob. `bytes` must not be used afterwards.
   */
  async verifyPack(
    packId: string,
    bytes: Buffer,
    expected: IndexedBlob[],
  ): Promise<{ damaged: IndexedBlob[]; nameMatches: boolean }> {
    const what = names.pack(packId);
    let key: Buffer;
    try {
      const prefix = parsePrefix(bytes.subarray(0, PACK_PREFIX), what);
      if (expected.some((b) => b.type !== prefix.type)) throw new Error("pack type does not match the index");
      key = packKey(prefix.type === BlobType.tree ? this.keys.meta : this.keys.data, prefix.salt);
    } catch {
      return { damaged: expected, nameMatches: storageId(bytes) === packId };
    }
    const r = await this.decoderPool().verifyPack(bytes, packId, key, what, expected);
    return { damaged: r.damaged.map((i) => expected[i]!), nameMatches: r.nameMatches };
  }

  private encoderPool(): BlobPool {
    this.encoder ??= new BlobPool(this.keys.id, cores());
    return this.encoder;
  }

  private decoderPool(): BlobPool {
    this.decoder ??= new BlobPool(this.keys.id, cores());
    return this.decoder;
  }

  private async readSealed(id: Buffer): Promise<{ loc: IndexedBlob; sealed: Buffer; what: string }> {
    const loc = this.index.get(id);
    if (!loc) {
      throw new CorruptionError(
        `blob ${id.toString("hex")}`,
        "is referenced but not in the index",
        [id.toString("hex")],
        "run `lifeboat repair index`; if the pack is gone, `lifeboat repair snapshots`",
      );
    }
    const what = names.pack(loc.packId);
    this.reader ??= new PackReader(this.backend);
    const sealed = await this.reader.read(loc.packId, loc.offset, loc.length);
    if (sealed.length !== loc.length)
      throw new CorruptionError(what, "pack is shorter than the index says", [id.toString("hex")]);
    return { loc, sealed, what };
  }

  /** Decrypts and verifies a blob whose bytes the caller read itself (e.g. a whole-pack read). */
  async decodeLoaded(loc: IndexedBlob, sealed: Buffer): Promise<Buffer> {
    const key = await this.keyForPack(loc.packId, loc.type);
    return decodeBlob(sealed, loc, key, this.keys.id, names.pack(loc.packId));
  }

  async loadTree(idHex: string): Promise<Tree> {
    const cached = this.treeCache.get(idHex);
    if (cached) return cached;
    const tree = decodeTree(await this.loadBlob(Buffer.from(idHex, "hex")), `tree ${idHex}`);
    if (this.treeCache.size > 2000) this.treeCache.clear();
    this.treeCache.set(idHex, tree);
    return tree;
  }

  async saveTree(tree: Tree): Promise<{ id: string; added: boolean }> {
    const r = await this.saveBlob(BlobType.tree, encodeTree(tree));
    return { id: r.id.toString("hex"), added: r.added };
  }

  /** Decrypts the config for `cat config`. */
  configJson(): RepoConfig {
    return this.config;
  }

  /** Entries of one pack as recorded in the index (for `check` and `repair`). */
  roots(): { data: Buffer; meta: Buffer } {
    return { data: this.keys.data, meta: this.keys.meta };
  }

  // --- keys -------------------------------------------------------------------------------

  async listKeys(): Promise<KeyInfo[]> {
    const out: KeyInfo[] = [];
    for (const id of await this.listIds("keys/")) {
      const f: KeyFile = parseKeyFile(await this.backend.get(names.key(id)), names.key(id));
      out.push({
        id,
        created: f.created,
        hostname: f.hostname,
        username: f.username,
        current: id === this.keyId,
      });
    }
    return out.sort((a, b) => (a.created < b.created ? -1 : 1));
  }

  /** Adds a password; existing data is not re-encrypted (the same master keys are wrapped again). */
  async addKey(password: string): Promise<string> {
    const key = await createKeyFile(password, this.keys);
    await this.backend.put(names.key(key.id), key.bytes);
    return key.id;
  }

  async removeKey(id: string): Promise<void> {
    if (id === this.keyId) {
      throw new LifeboatError(
        "KEY_ERROR",
        "refusing to remove the key this command was opened with",
        "open the repository with another password to remove this one, or use `lifeboat key passwd`",
      );
    }
    const ids = await this.listIds("keys/");
    if (!ids.includes(id))
      throw new LifeboatError("KEY_ERROR", `no key with id ${id}`, "see `lifeboat key list`");
    await this.backend.delete(names.key(id));
  }

  async close(): Promise<void> {
    await Promise.all([this.encoder?.close(), this.decoder?.close()]);
    this.encoder = undefined;
    this.decoder = undefined;
    await this.backend.close();
  }
}

export type { BlobLocation };
