import { randomBytes } from "node:crypto";
import os from "node:os";
import type { Backend } from "../backend/backend.js";
import { cannotLock, lockedBackend, type Retention } from "../backend/retention.js";
import type { ChunkerParams } from "../core/chunker.js";
import { storageId } from "../core/crypto.js";
import { CorruptionError, isLifeboatError, LifeboatError } from "../core/errors.js";
import { type BlobLocation, BlobType } from "./blob.js";
import { BlobPool } from "./blob-pool.js";
import { BlobReader } from "./blob-reader.js";
import {
  checkStorageId,
  DEFAULT_PACK_SIZE,
  decodeConfig,
  defaultChunkerParams,
  isStorageId,
  names,
  type RepoConfig,
} from "./config.js";
import {
  FEATURES,
  type FeatureName,
  type FeatureSet,
  hasFeature,
  NEW_REPOSITORY_FEATURES,
  newerFormat,
  unknownFeatures,
  withFeature,
} from "./features.js";
import { FileRestorer, type FileToRestore, type RestoreFilesOptions } from "./file-restorer.js";
import { defaultCacheDir, HostCache } from "./host-cache.js";
import type { IndexFile } from "./index-file.js";
import { IndexState } from "./index-state.js";
import { type KeyKind, KeyRing, needsFullKey } from "./key-ring.js";
import { type KeyFile, keyFileKind, parseKeyFile } from "./keys.js";
import type { IndexedBlob } from "./master-index.js";
import { KEY_MODE_SEALED, parsePrefix } from "./pack.js";
import { type BlobWriter, PackWriter, type WriteStats } from "./pack-writer.js";
import { RecordStore } from "./record-store.js";
import { ObjectKind } from "./sealed-object.js";
import { decodeSnapshot, type Snapshot, type SnapshotWithId } from "./snapshot.js";
import { decodeTree, encodeTree, type Tree } from "./tree.js";
import { getVerified } from "./verified-get.js";
import { putWhole } from "./whole-put.js";
import { writeOnlyBackend } from "./write-only-backend.js";

export interface InitOptions {
  chunker?: ChunkerParams;
  packSize?: number;
  /** Format features the new repository starts with (features.ts; default
   * NEW_REPOSITORY_FEATURES); any make it version 2. */
  features?: FeatureSet;
  /** Object Lock retention every writer applies (format feature `retention`). */
  retention?: Retention;
}

export interface KeyInfo {
  id: string;
  /** "full", "write-only", or "unknown" (a kind a later version made). */
  kind: KeyKind | "unknown";
  created: string;
  hostname: string;
  username: string;
  current: boolean;
}

export interface OpenOptions {
  loadIndex?: boolean;
  /** Starts the restore worker as soon as the key is known (a file restore follows): its
   * start-up (~70 ms of loading modules) then overlaps reading the index and the trees. */
  warmRestorer?: boolean;
  /** Where a write-only key keeps its host cache (default: `defaultCacheDir()`, see host-cache.ts). */
  cacheDir?: string;
}

const cores = () => Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
/** Decoded trees kept in memory (folders are revisited by restore, diff and backups). */
const TREES_CACHED = 2000;

/**
 * An open repository: a small facade over narrow parts — the key ring (keys never leave it),
 * the index state, the pack writer (only inside `withWriter`), the blob reader, a tree cache and
 * the record store. Nothing outside `repo/` changes their state; every read of existing
 * repository data goes through here, so one place decides what a key may read.
 *
 * Write order (the invariant every reader relies on): packs → index files → snapshot or record.
 * `withWriter` flushes when its scope ends; `writeSnapshot` and the record store (for records
 * that pin blobs) flush whatever is still queued before they write.
 */
export class Repository {
  readonly backend: Backend;
  private currentConfig: RepoConfig;
  readonly keyId: string;
  /** Small typed records: prune plans, sessions, drills, acks, WAL, replication segments. */
  readonly records: RecordStore;
  private readonly keys: KeyRing;
  private readonly index: IndexState;
  private readonly reader: BlobReader;
  private writer: PackWriter | undefined;
  /** Workers for backups (read small files, hash, compress): one per core. The main thread
   * chunks large files too, but small files keep workers waiting on reads; one per core
   * measured faster than one fewer (first backup of the bench dataset 3.95 -> 3.7 s). */
  private encoder: BlobPool | undefined;
  /** Workers that decode (check --read-data, large blobs): one per core. */
  private decoder: BlobPool | undefined;
  /** The worker of file restores (see restorerPool). */
  private restorer: BlobPool | undefined;
  private readonly treeCache = new Map<string, Tree>();
  private reindexing: Promise<void> | undefined;
  /** A write-only key's record of its own snapshots and trees (it cannot read the repository's). */
  private readonly hostCache: HostCache | undefined;

  private constructor(
    backend: Backend,
    config: RepoConfig,
    keys: KeyRing,
    keyId: string,
    hostCache?: HostCache,
  ) {
    // Every put of every part goes through here, so the config's retention locks all of it; a
    // write-only key also sees storage only through writeOnlyBackend (what it may read or delete).
    this.backend = lockedBackend(
      keys.kind === "write-only" ? writeOnlyBackend(backend) : backend,
      () => this.currentConfig.retention,
    );
    this.currentConfig = config;
    this.keys = keys;
    keys.configure(config);
    keys.onUnknownSigner(async () => {
      // A write-only key made since this process read the config: read it again.
      const wo = keys.kind === "write-only";
      const name = wo ? names.writeOnlyConfig : names.config;
      const kind = wo ? ObjectKind.writeOnlyConfig : ObjectKind.config;
      this.currentConfig = decodeConfig(keys.open(kind, await this.backend.get(name), name));
      keys.configure(this.currentConfig);
    });
    this.keyId = keyId;
    this.hostCache = hostCache;
    this.records = new RecordStore(
      this.backend,
      keys,
      () => this.flushWriter(),
      () => this.requireWritable(),
    );
    this.index = new IndexState(this.backend, keys, this.records);
    this.reader = new BlobReader(
      this.backend,
      keys,
      this.index,
      () => this.decoderPool(),
      () => this.reindex(),
      () => this.currentConfig.chunker.max,
    );
  }

  /** Whether a finished repository (one with a config object) is at this backend. */
  static async exists(backend: Backend): Promise<boolean> {
    if (!(await backend.exists())) return false;
    if ((await backend.stat(names.config)) !== undefined) return true;
    // No config: nothing here, or an init cut short (a key file only) — or a repository whose
    // config was lost. That is not "no repository": init must not start a new one over it.
    for (const prefix of ["snapshots/", "index/"])
      for await (const o of backend.list(prefix))
        throw new CorruptionError(
          "config",
          `is missing from ${backend.location}, which holds a repository (${o.name} and more)`,
          [],
          "restore the config object from a copy of this repository (a backup of the folder or bucket); nothing was changed",
        );
    return false;
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
    if (options.retention && !backend.capabilities.retention)
      throw cannotLock(backend.location, options.retention);
    await backend.create();
    const keys = KeyRing.generate();
    let features = options.features ?? NEW_REPOSITORY_FEATURES;
    if (options.retention) features = withFeature(features, "retention");
    const config: RepoConfig = {
      version: 1,
      id: randomBytes(32).toString("hex"),
      created: new Date().toISOString(),
      chunker: options.chunker ?? defaultChunkerParams(),
      packSize: options.packSize ?? DEFAULT_PACK_SIZE,
      ...(options.retention ? { retention: { ...options.retention } } : {}),
      ...(features.read.length + features.write.length > 0 ? { version: 2 as const, features } : {}),
    };
    const out = lockedBackend(backend, () => config.retention);
    const key = await keys.wrap(password);
    await out.put(names.key(key.id), key.bytes);
    // The config goes last: its presence is what marks a finished repository.
    await out.put(names.config, keys.seal(ObjectKind.config, Buffer.from(JSON.stringify(config))));
    return new Repository(backend, config, keys, key.id);
  }

  /** Opens an existing repository with one of its passwords and loads its index. */
  static async open(backend: Backend, password: string, options: OpenOptions = {}): Promise<Repository> {
    if (!(await Repository.exists(backend))) throw Repository.notFound(backend);
    const keyIds = await listStorageIds(backend, "keys/");
    if (keyIds.length === 0) {
      throw new CorruptionError(
        "keys/",
        "the repository has no key files",
        [],
        "restore the keys/ folder from a copy",
      );
    }
    // A damaged key file must not lock out the passwords of the others: it is skipped, and
    // named if no other key file opens.
    const damaged: CorruptionError[] = [];
    for (const id of keyIds) {
      let file: ReturnType<typeof parseKeyFile>;
      try {
        const bytes = await backend.get(names.key(id));
        checkStorageId(bytes, id, names.key(id));
        file = parseKeyFile(bytes, names.key(id));
      } catch (e) {
        if (!(e instanceof CorruptionError)) throw e;
        damaged.push(e);
        continue;
      }
      const keys = await KeyRing.unwrap(file, password);
      if (!keys) continue;
      if (keys.kind === "write-only") return Repository.openWriteOnly(backend, keys, id, options);
      const config = decodeConfig(keys.open(ObjectKind.config, await backend.get(names.config), "config"));
      const unknown = unknownFeatures(config.features);
      if (unknown.read.length > 0) throw newerFormat(backend.location, unknown.read, "read");
      const repo = new Repository(backend, config, keys, id);
      if (options.warmRestorer) repo.restorerPool();
      if (options.loadIndex ?? true) await repo.loadIndex();
      return repo;
    }
    if (damaged.length > 0)
      throw new CorruptionError(
        damaged.map((e) => e.object).join(", "),
        `damaged key file${damaged.length > 1 ? "s" : ""} (${damaged[0]!.message.slice(damaged[0]!.object.length + 2)}), and no other key file opens with this password`,
        [],
        "restore the keys/ folder from a copy of the repository (or use another password whose key file is intact)",
      );
    throw new LifeboatError(
      "WRONG_PASSWORD",
      `wrong password for the repository at ${backend.location} (tried ${keyIds.length} key${keyIds.length > 1 ? "s" : ""})`,
      "check --password-file, --password-command or LIFEBOAT_PASSWORD",
    );
  }

  /**
   * A write-only key reads the config from config.wo (sealed with the index key, signed by the
   * owner) and must be listed in it; its host cache replaces what it cannot read.
   */
  private static async openWriteOnly(
    backend: Backend,
    keys: KeyRing,
    keyId: string,
    options: OpenOptions,
  ): Promise<Repository> {
    const what = names.writeOnlyConfig;
    const stored = await backend.get(what).catch((e: unknown) => {
      if (e instanceof LifeboatError && e.code === "NOT_FOUND")
        throw new CorruptionError(
          what,
          "is missing: write-only keys read the config from it",
          [],
          "run `lifeboat key add --write-only` (or any config change) with a full key: it writes config.wo again",
        );
      throw e;
    });
    const config = decodeConfig(keys.open(ObjectKind.writeOnlyConfig, stored, what));
    const unknown = unknownFeatures(config.features);
    if (unknown.read.length > 0) throw newerFormat(backend.location, unknown.read, "read");
    const mine = config.writeOnly?.keys[keyId];
    if (!mine || mine.signer !== keys.signerId)
      throw new LifeboatError(
        "KEY_ERROR",
        `write-only key ${keyId.slice(0, 8)} is not listed in the repository's config, so nothing it wrote would be accepted`,
        "make a new one with `lifeboat key add --write-only` (with a full key)",
      );
    if (mine.removed)
      throw new LifeboatError(
        "KEY_ERROR",
        `write-only key ${keyId.slice(0, 8)} was removed from this repository on ${mine.removed}`,
        "ask the repository's owner for a new write-only key (`lifeboat key add --write-only`)",
      );
    const cache = await HostCache.open(options.cacheDir ?? defaultCacheDir(), config.id, keyId, (b) =>
      keys.blobId(b),
    );
    const repo = new Repository(backend, config, keys, keyId, cache);
    if (options.loadIndex ?? true) await repo.loadIndex();
    return repo;
  }

  /** "full", or "write-only": a key that adds blobs, index entries and snapshots and reads
   * nothing but the index and its own host cache (docs/format.md, "Write-only keys"). */
  get keyKind(): KeyKind {
    return this.keys.kind;
  }

  /** Throws NEEDS_FULL_KEY (exit 19) when this is a write-only key: for operations that read
   * data or delete, to fail before they start rather than item by item. */
  requireFullKey(what: string): void {
    if (this.keys.kind !== "full") throw needsFullKey(what);
  }

  /** The repository's settings (decrypted `config`). */
  get config(): RepoConfig {
    return this.currentConfig;
  }

  // --- format features -------------------------------------------------------------------------

  /** Throws when this version must not write here (the config lists a write feature it does not know). */
  requireWritable(): void {
    const unknown = unknownFeatures(this.currentConfig.features).write;
    if (unknown.length > 0) throw newerFormat(this.backend.location, unknown, "write");
    const r = this.currentConfig.retention;
    if (r && !this.backend.capabilities.retention) throw cannotLock(this.backend.location, r);
  }

  /** The Object Lock retention every writer applies (config.retention), if the repository has one. */
  get retention(): Retention | undefined {
    const r = this.currentConfig.retention;
    return r ? { ...r } : undefined;
  }

  /**
   * Records the retention every writer applies from now on (format feature `retention`, so a
   * lifeboat that does not know it refuses to write here). Objects already written keep the
   * dates they were locked with; storage refuses to shorten those anyway.
   */
  async setRetention(r: Retention): Promise<void> {
    this.requireFullKey("change the retention");
    if (!this.backend.capabilities.retention) throw cannotLock(this.backend.location, r);
    await this.updateConfig(
      (c) => ({ ...c, retention: { days: r.days, mode: r.mode } }),
      (c) => c.retention?.days === r.days && c.retention.mode === r.mode,
      "retention",
    );
  }

  hasFeature(name: FeatureName): boolean {
    return hasFeature(this.currentConfig.features, name);
  }

  /**
   * Records that the repository now uses a format feature, before anything that needs it is
   * written: the config (the one object ever replaced, and only to add features) is rewritten
   * with the feature and `version: 2`. Two writers adding different features at once both win:
   * the config is read back and written again until it holds everything this process added.
   */
  async enableFeature(name: FeatureName): Promise<void> {
    this.requireWritable();
    if (!this.hasFeature(name)) this.requireFullKey(`record format feature ${name} in the config`);
    if (this.hasFeature(name)) return;
    await this.updateConfig(
      (c) => c,
      () => true,
      name,
    );
  }

  /**
   * Rewrites the config with `change` applied and `feature` added (with every feature this
   * process knows of), reads it back, and writes again until `done` holds for what is stored.
   */
  private async updateConfig(
    change: (c: RepoConfig) => RepoConfig,
    done: (c: RepoConfig) => boolean,
    feature: FeatureName,
  ): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const stored = decodeConfig(
        this.keys.open(ObjectKind.config, await this.backend.get(names.config), "config"),
      );
      const next: RepoConfig = {
        ...change(stored),
        version: 2,
        features: withFeature(stored.features, feature),
      };
      for (const f of [
        ...(this.currentConfig.features?.read ?? []),
        ...(this.currentConfig.features?.write ?? []),
      ])
        if (f in FEATURES) next.features = withFeature(next.features, f as FeatureName);
      // The config is locked with the retention it holds once written (a new version on S3).
      const { retention: _old, ...rest } = this.currentConfig;
      this.currentConfig = next.retention ? { ...rest, retention: next.retention } : rest;
      const json = Buffer.from(JSON.stringify(next));
      // Write-only keys read their copy (config.wo): it goes first, so that a crash in between
      // never leaves them a retention or a feature older than the config's.
      if (hasFeature(next.features, "write-only"))
        await this.backend.put(names.writeOnlyConfig, this.keys.seal(ObjectKind.writeOnlyConfig, json), {
          overwrite: true,
        });
      await this.backend.put(names.config, this.keys.seal(ObjectKind.config, json), { overwrite: true });
      const back = decodeConfig(
        this.keys.open(ObjectKind.config, await this.backend.get(names.config), "config"),
      );
      this.currentConfig = back;
      this.keys.configure(back);
      if (hasFeature(back.features, feature) && done(back)) return;
    }
    throw new LifeboatError(
      "STORAGE_ERROR",
      `could not record format feature ${feature} in the repository config (another writer keeps replacing it)`,
      "run the command again",
    );
  }

  // --- the index --------------------------------------------------------------------------------

  /** Reads every index file in force into memory (see IndexState). */
  loadIndex(): Promise<void> {
    return this.index.load();
  }

  /** Forgets the loaded index and reads it again; `freshPlans` (prune) also forgets doomed packs. */
  async reloadIndex(freshPlans = false): Promise<void> {
    this.treeCache.clear();
    await this.index.reload(freshPlans);
  }

  /** Reads the index again after a pack was found gone (a prune moved its blobs); readers that
   * find that at once share one reload. */
  private reindex(): Promise<void> {
    this.reindexing ??= this.reloadIndex().finally(() => {
      this.reindexing = undefined;
    });
    return this.reindexing;
  }

  /** Reads new prune plans and index files since the index was loaded (see IndexState.catchUp). */
  async catchUpIndex(): Promise<void> {
    // Decoded trees stay cached: a tree is named by its keyed hash, so new index files (a backup
    // beside us, a prune's rewrite) never change what an id decodes to. The console beside a busy
    // fleet would otherwise decode a large folder again after every account's backup.
    await this.index.catchUp();
  }

  lookup(id: Buffer): IndexedBlob | undefined {
    return this.index.get(id);
  }

  /** Whether the index lists a blob at all (even in a pack a prune plans to delete). */
  isIndexed(id: Buffer): boolean {
    return this.index.has(id);
  }

  /** Whether a blob is stored in a pack that is not planned for deletion. */
  isStored(id: Buffer): boolean {
    return this.index.isStored(id);
  }

  /** Whether a blob is stored outside any plan, or queued by this process's writer. */
  hasBlob(id: Buffer): boolean {
    return this.writer ? this.writer.hasBlob(id) : this.index.isStored(id);
  }

  isDoomed(packId: string): boolean {
    return this.index.isDoomed(packId);
  }

  indexedPacks(): Iterable<string> {
    return this.index.packs();
  }

  indexEntries(): Iterable<IndexedBlob> {
    return this.index.entries();
  }

  get indexSize(): number {
    return this.index.size;
  }

  /** Index files left out because they are damaged (readers go on; prune refuses). */
  damagedIndexFiles(): { id: string; message: string }[] {
    return this.index.damagedFiles();
  }

  /** Throws unless every index file in force could be read: what deletes packs needs them all. */
  requireIntactIndex(): void {
    const d = this.index.damagedFiles();
    if (d.length === 0) return;
    throw new CorruptionError(
      d.map((f) => names.index(f.id)).join(", "),
      `${d.length === 1 ? "this index file is" : "these index files are"} damaged (${d[0]!.message}); the packs listed there would look unused`,
      [],
      "run `lifeboat repair index` first: it rebuilds the index from the packs themselves",
    );
  }

  /** The index files in force and those already superseded (prune and repair replace them), and
   * those a write-only key could not open (sealed for full keys only). */
  indexFiles(): { loaded: readonly string[]; superseded: readonly string[]; unreadable: readonly string[] } {
    return this.index.files();
  }

  /** Whether a pack was written by a write-only key (a claim: docs/format.md, "Write-only keys"). */
  isClaim(packId: string): boolean {
    return this.index.isClaim(packId);
  }

  readIndexFile(id: string): Promise<IndexFile> {
    return this.index.readFile(id);
  }

  /** Writes an index file that replaces the ones in `file.supersedes` (prune, repair index). */
  async writeIndexFile(file: IndexFile): Promise<string> {
    this.requireWritable();
    this.requireFullKey("replace index files");
    return this.index.writeFile(file);
  }

  /** Packs a prune plan (about to be) stored by this process dooms: never deduplicate against them. */
  doomPacks(packIds: Iterable<string>): void {
    this.index.doom(packIds);
  }

  /** Where a record says its blobs were written (WAL records): used when the index does not say. */
  useBlobLocations(packId: string, blobs: BlobLocation[]): void {
    this.index.addHints(packId, blobs);
  }

  // --- writing ----------------------------------------------------------------------------------

  /**
   * Runs `fn` with the blob writer and flushes when it ends (packs, then index files), so that
   * whatever `fn` stored is durable and indexed before anything may point at it. Scopes may
   * overlap; each end flushes everything written so far. When `fn` fails, what was stored is
   * still flushed where possible (a retry then reuses it), and `fn`'s error is thrown.
   */
  async withWriter<T>(fn: (w: BlobWriter) => Promise<T>): Promise<T> {
    this.requireWritable();
    this.writer ??= new PackWriter(this.backend, this.keys, this.config, this.index, () =>
      this.encoderPool(),
    );
    const w = this.writer;
    let result: T;
    try {
      result = await fn(this.hostCache ? cachingTrees(w, this.hostCache) : w);
    } catch (e) {
      await w.flush().catch(() => {});
      throw e;
    }
    await w.flush();
    return result;
  }

  /** What this process added: blobs, their plaintext bytes, and the bytes they take in packs. */
  get writeStats(): WriteStats {
    return { ...(this.writer?.stats ?? { blobsAdded: 0, bytesAdded: 0, bytesStored: 0 }) };
  }

  /** Flushes whatever this process's writer holds (packs, then index files). */
  private async flushWriter(): Promise<void> {
    await this.writer?.flush();
  }

  /**
   * Stores a snapshot document. Every blob this process has queued is flushed first (packs →
   * index files → snapshot), so a snapshot never points at data that is not durable.
   */
  async writeSnapshot(snapshot: Snapshot, beforeStore?: (id: string) => Promise<void>): Promise<string> {
    this.requireWritable();
    await this.flushWriter();
    const stored = this.keys.seal(ObjectKind.snapshot, Buffer.from(JSON.stringify(snapshot)));
    const id = storageId(stored);
    // What must exist before the snapshot does (a fleet account's catalogue entry, naming it).
    if (beforeStore) await beforeStore(id);
    await putWhole(this.backend, names.snapshot(id), stored);
    if (this.hostCache) {
      try {
        await this.hostCache.putSnapshot({ ...snapshot, id, writer: this.keyId });
      } catch (e) {
        throw new LifeboatError(
          "STORAGE_ERROR",
          `snapshot ${id.slice(0, 8)} is stored, but the host cache in ${this.hostCache.dir} could not record it (${(e as Error).message}): the next backup reads every file again`,
          "make room in (or fix the permissions of) the cache folder; LIFEBOAT_CACHE_DIR moves it",
        );
      }
    }
    return id;
  }

  // --- snapshots --------------------------------------------------------------------------------

  async loadSnapshot(id: string): Promise<SnapshotWithId> {
    if (this.hostCache) {
      const own = (await this.ownSnapshots()).find((s) => s.id === id);
      if (own) return own;
      throw needsFullKey(
        `read snapshot ${id.slice(0, 8)} (it reads only the last snapshots this host wrote, from its cache)`,
      );
    }
    const what = names.snapshot(id);
    const stored = await getVerified(this.backend, what, id);
    const opened = await this.keys.openLatest(ObjectKind.snapshot, stored, what);
    const snap = decodeSnapshot(opened.plain, what);
    return opened.writer === undefined ? { ...snap, id } : { ...snap, id, writer: opened.writer };
  }

  /**
   * A write-only key's own snapshots, from its host cache, still in the repository (a `stat`
   * each: one the owner forgot is forgotten here too, so no backup takes it as its parent).
   */
  private async ownSnapshots(): Promise<SnapshotWithId[]> {
    const out: SnapshotWithId[] = [];
    for (const s of await this.hostCache!.snapshots()) {
      if (await this.backend.stat(names.snapshot(s.id))) out.push(s);
      else await this.hostCache!.drop(s.id);
    }
    return out;
  }

  /** The ids of every snapshot (from one listing; nothing is read). A write-only key knows only
   * its own last ones (see `ownSnapshots`). */
  async snapshotIds(): Promise<string[]> {
    if (this.hostCache) return (await this.ownSnapshots()).map((s) => s.id);
    return listStorageIds(this.backend, "snapshots/");
  }

  /** Every snapshot, oldest first (for a write-only key: its own last ones). One deleted between
   * the listing and its read (a `forget` running meanwhile) is left out, as if listed a moment later. */
  async listSnapshots(): Promise<SnapshotWithId[]> {
    if (this.hostCache) return this.ownSnapshots();
    const ids = await listStorageIds(this.backend, "snapshots/");
    // A snapshot forgotten between the listing and the read (or a listing that lags) is gone.
    const read = await Promise.all(ids.map((id) => this.loadSnapshot(id).catch((e) => gone(e))));
    const out = read.filter((s): s is SnapshotWithId => s !== undefined);
    return out.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
  }

  async deleteSnapshot(id: string): Promise<void> {
    this.requireWritable();
    this.requireFullKey("delete snapshots");
    await this.backend.delete(names.snapshot(id));
  }

  // --- reading ----------------------------------------------------------------------------------

  /** Reads, decrypts and verifies one blob. */
  async loadBlob(id: Buffer): Promise<Buffer> {
    this.requireFullKey("read data (restore, check and drills need a full key)");
    return this.reader.load(id);
  }

  /**
   * A tree: decrypted and verified, or — for a write-only key — one this host wrote, from its cache.
   * `keep: false` leaves it out of the tree cache: a reader that visits each tree once (a backup
   * reading its parent) would otherwise hold up to TREES_CACHED of them, memory that grows with
   * the number of folders.
   */
  async loadTree(idHex: string, options: { keep?: boolean } = {}): Promise<Tree> {
    const cached = this.treeCache.get(idHex);
    if (cached) return cached;
    let plain: Buffer;
    if (this.hostCache) {
      const own = await this.hostCache.getTree(idHex);
      if (!own)
        throw needsFullKey(
          `read tree ${idHex.slice(0, 8)} (it reads only the trees this host wrote, from its cache)`,
        );
      plain = own;
    } else plain = await this.reader.load(Buffer.from(idHex, "hex"));
    const tree = decodeTree(plain, `tree ${idHex}`);
    if (options.keep === false) return tree;
    if (this.treeCache.size > TREES_CACHED) this.treeCache.clear();
    this.treeCache.set(idHex, tree);
    return tree;
  }

  /**
   * Restores files by pack (see FileRestorer): each pack range they need is read once, every
   * blob verified against its keyed id and written where it goes. Resolves when every file is
   * finished or failed (`options.onFile` says which); rejects only when stopped.
   */
  restoreFiles(files: readonly FileToRestore[], options: RestoreFilesOptions): Promise<void> {
    this.requireFullKey("read data (restore needs a full key)");
    return new FileRestorer(
      {
        backend: this.backend,
        lookup: (id) => this.index.get(id),
        maxChunk: this.currentConfig.chunker.max,
        reindex: () => this.reindex(),
        catchUp: () => this.reader.catchUp(),
        packKey: (packId, type, prefix) => this.reader.packKey(packId, type, prefix),
        pool: () => this.restorerPool(),
        idKey: this.keys.idKeyForWorkers(),
      },
      files,
      options,
    ).run();
  }

  /** See BlobReader.verifyPack (`check --read-data`). */
  async verifyPack(packId: string, size: number, expected: IndexedBlob[]) {
    this.requireFullKey("check data");
    return this.reader.verifyPack(packId, size, expected);
  }

  /** Decrypts and verifies a blob whose bytes the caller read itself. */
  async decodeLoaded(loc: IndexedBlob, sealed: Buffer): Promise<Buffer> {
    this.requireFullKey("read data");
    return this.reader.decodeLoaded(loc, sealed);
  }

  /**
   * The blob entries of a pack, from bytes holding its prefix, encrypted header and length
   * (`what` names the pack, `data/<xx>/<id>`). A pack a write-only key wrote (key mode 1) is
   * remembered as a claim, so that an index rebuilt from the packs keeps it one.
   */
  readPackHeader(bytes: Buffer, what: string): BlobLocation[] {
    const entries = this.keys.readPackHeader(bytes, what);
    const packId = what.split("/").at(-1)!;
    if (parsePrefix(bytes, what).keyMode === KEY_MODE_SEALED && isStorageId(packId))
      this.index.noteClaim(packId);
    return entries;
  }

  /**
   * The byte a data blob repeats throughout (a file overwritten with zeroes), or undefined. A
   * full key reads the blob; a write-only key cannot, and compares the blob's id with the ids of
   * runs of 0x00 and 0xff of its length — the one test it can make (docs/format.md).
   */
  async constantByte(id: Buffer): Promise<number | undefined> {
    if (this.keys.kind === "full") {
      const data = await this.loadBlob(id);
      const v = data[0];
      return v !== undefined && data.every((b) => b === v) ? v : undefined;
    }
    const loc = this.index.get(id);
    if (!loc || loc.type !== BlobType.data) return undefined;
    for (const v of [0x00, 0xff]) if (this.keys.blobId(Buffer.alloc(loc.rawLength, v)).equals(id)) return v;
    return undefined;
  }

  /** The keyed id of a plaintext (to check restored bytes against a snapshot). */
  blobId(plain: Uint8Array): Buffer {
    return this.keys.blobId(plain);
  }

  // --- keys -------------------------------------------------------------------------------------

  async listKeys(): Promise<KeyInfo[]> {
    const out: KeyInfo[] = [];
    for (const id of await listStorageIds(this.backend, "keys/")) {
      const f: KeyFile = parseKeyFile(await this.backend.get(names.key(id)), names.key(id));
      out.push({
        id,
        kind: keyFileKind(f) ?? "unknown",
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
    this.requireWritable();
    const key = await this.keys.wrap(password);
    await this.backend.put(names.key(key.id), key.bytes);
    return key.id;
  }

  /**
   * Makes a write-only key (docs/format.md, "Write-only keys") and lists it in the config
   * (enabling format feature `write-only`, which also writes config.wo). Its key file is not
   * stored yet: `addWriteOnlyKey` (write-only-keys.ts) first re-seals the index for it.
   */
  async registerWriteOnlyKey(password: string): Promise<{ id: string; bytes: Buffer }> {
    this.requireWritable();
    this.requireFullKey("make write-only keys");
    const made = await this.keys.makeWriteOnlyKey(password);
    let username = "unknown";
    try {
      username = os.userInfo().username;
    } catch {}
    const entry = {
      signer: made.signer,
      created: new Date().toISOString(),
      hostname: os.hostname(),
      username,
    };
    await this.updateConfig(
      (c) => ({ ...c, writeOnly: { keys: { ...(c.writeOnly?.keys ?? {}), [made.id]: entry } } }),
      (c) => c.writeOnly?.keys[made.id]?.signer === made.signer,
      "write-only",
    );
    return { id: made.id, bytes: made.bytes };
  }

  /** Stores a key file made by `registerWriteOnlyKey`. */
  async storeKeyFile(id: string, bytes: Buffer): Promise<void> {
    this.requireFullKey("add keys");
    if (storageId(bytes) !== id) throw new Error("internal error: key file id does not match its bytes");
    await this.backend.put(names.key(id), bytes);
  }

  async removeKey(id: string): Promise<void> {
    this.requireFullKey("remove keys");
    if (id === this.keyId) {
      throw new LifeboatError(
        "KEY_ERROR",
        "refusing to remove the key this command was opened with",
        "open the repository with another password to remove this one, or use `lifeboat key passwd`",
      );
    }
    const ids = await listStorageIds(this.backend, "keys/");
    if (!ids.includes(id))
      throw new LifeboatError("KEY_ERROR", `no key with id ${id}`, "see `lifeboat key list`");
    // A write-only key stays listed (what it wrote keeps saying who wrote it), marked removed:
    // a host still holding its password is refused from now on.
    const listed = this.currentConfig.writeOnly?.keys[id];
    if (listed && !listed.removed) {
      const removed = new Date().toISOString();
      await this.updateConfig(
        (c) => {
          const keys = { ...(c.writeOnly?.keys ?? {}) };
          if (keys[id]) keys[id] = { ...keys[id], removed };
          return { ...c, writeOnly: { keys } };
        },
        (c) => c.writeOnly?.keys[id]?.removed !== undefined,
        "write-only",
      );
    }
    await this.backend.delete(names.key(id));
  }

  // --- lifecycle --------------------------------------------------------------------------------

  private encoderPool(): BlobPool {
    // Lazy: a backup of small files keeps the main thread busy and one worker is enough (files
    // of 1 KiB: 10 % faster and 10 MiB smaller); large files start the others.
    this.encoder ??= new BlobPool(this.keys.idKeyForWorkers(), cores(), true);
    return this.encoder;
  }

  private decoderPool(): BlobPool {
    this.decoder ??= new BlobPool(this.keys.idKeyForWorkers(), cores());
    return this.decoder;
  }

  /** One worker: the restorer works on the main thread beside it (see FileRestorer), so two
   * cores are busy with one isolate fewer. */
  private restorerPool(): BlobPool {
    this.restorer ??= new BlobPool(this.keys.idKeyForWorkers(), 1);
    return this.restorer;
  }

  async close(): Promise<void> {
    await Promise.all([this.encoder?.close(), this.decoder?.close(), this.restorer?.close()]);
    this.encoder = undefined;
    this.decoder = undefined;
    this.restorer = undefined;
    await this.backend.close();
  }
}

/**
 * The blob writer of a write-only key: every tree it stores also goes into the host cache (the
 * next backup takes its parent's trees from there). Trees already stored are recorded too.
 */
function cachingTrees(w: PackWriter, cache: HostCache): BlobWriter {
  return {
    get chunkerMin() {
      return w.chunkerMin;
    },
    hasBlob: (id) => w.hasBlob(id),
    saveBlob: (type, plain, id) => w.saveBlob(type, plain, id),
    saveBlobDeferred: (type, plain) => w.saveBlobDeferred(type, plain),
    saveSmallFile: (path, size) => w.saveSmallFile(path, size),
    saveLargeFile: (path, onBytes) => w.saveLargeFile(path, onBytes),
    newChunker: () => w.newChunker(),
    async saveTree(tree) {
      const bytes = encodeTree(tree);
      const r = await w.saveBlob(BlobType.tree, bytes);
      const id = r.id.toString("hex");
      await cache.putTree(id, bytes);
      return { id, added: r.added };
    },
  };
}

/** Storage ids under a folder (`snapshots/`, `keys/`), ignoring stray names. */
export async function listStorageIds(backend: Backend, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of backend.list(prefix)) {
    const id = o.name.slice(prefix.length);
    if (isStorageId(id)) out.push(id);
  }
  return out;
}

export type { BlobWriter, FileToRestore, RestoreFilesOptions, WriteStats };

/** A NOT_FOUND read is an object deleted meanwhile (undefined); anything else is thrown. */
function gone(e: unknown): undefined {
  if (isLifeboatError(e) && e.code === "NOT_FOUND") return undefined;
  throw e;
}
