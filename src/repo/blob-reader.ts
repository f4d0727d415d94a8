import type { Backend } from "../backend/backend.js";
import { storageId } from "../core/crypto.js";
import { CorruptionError, isLifeboatError } from "../core/errors.js";
import { BlobType } from "./blob.js";
import type { BlobPool } from "./blob-pool.js";
import { names } from "./config.js";
import type { IndexState } from "./index-state.js";
import type { KeyRing } from "./key-ring.js";
import type { IndexedBlob } from "./master-index.js";
import { decodeBlob, oversizedData, PACK_PREFIX, parsePrefix } from "./pack.js";
import { PackReader } from "./pack-reader.js";

/** Blobs from this stored size up are decrypted, decompressed and verified on worker threads
 * when read; smaller ones (trees, mail-sized files) cost less than the hop. */
const DECODE_POOL_MIN = 16 * 1024;
/** Pack keys remembered (each is derived from the pack's salt, read with one ranged get). */
const PACK_KEYS_KEPT = 10_000;
/** How many times a read follows a blob a prune moved (each time after reading the index again). */
const MOVED_RETRIES = 2;

const isNotFound = (e: unknown) => isLifeboatError(e) && e.code === "NOT_FOUND";

/**
 * The read side of a repository: finds a blob through the index, reads it from its pack (with
 * read-ahead), decrypts, decompresses and checks it against its keyed id — on worker threads
 * when it is large. Every byte handed out has been verified. A blob whose pack is gone is
 * looked up again in a freshly read index (a concurrent prune may have moved it). Restores of
 * files read whole pack ranges instead (file-restorer.ts).
 */
export class BlobReader {
  private reader: PackReader | undefined;
  private readonly packKeys = new Map<string, Buffer>();

  constructor(
    private readonly backend: Backend,
    private readonly keys: KeyRing,
    private readonly index: IndexState,
    /** Worker threads that decode and write (created on first use). */
    private readonly decoder: () => BlobPool,
    /** Reads the index again (see `moved`); concurrent callers share one reload. */
    private readonly reindex: () => Promise<void>,
    /** The chunker's maximum: no data blob of this repository is larger (see oversizedData). */
    private readonly maxChunk: () => number,
  ) {}

  /**
   * The key of a pack: derived from its prefix (read with one ranged get unless the caller
   * already read it: `prefix`, the pack's first PACK_PREFIX bytes). The one place that turns
   * a pack into its key.
   */
  async packKey(packId: string, type: number, prefix?: Buffer): Promise<Buffer> {
    let key = this.packKeys.get(packId);
    if (!key) {
      const what = names.pack(packId);
      const bytes = prefix ?? (await this.backend.get(what, { offset: 0, length: PACK_PREFIX }));
      const parsed = parsePrefix(bytes, what);
      if (parsed.type !== type) throw new CorruptionError(what, "pack type does not match the index");
      key = this.keys.packKey(parsed, what);
      if (this.packKeys.size > PACK_KEYS_KEPT) this.packKeys.clear();
      this.packKeys.set(packId, key);
    }
    return key;
  }

  private async readSealed(id: Buffer): Promise<{ loc: IndexedBlob; sealed: Buffer; what: string }> {
    for (let attempt = 0; ; attempt++) {
      const loc = this.index.get(id);
      if (!loc) {
        throw new CorruptionError(
          `blob ${id.toString("hex")}`,
          "is referenced but not in the index",
          [id.toString("hex")],
          "run `lifeboat repair index`; if the pack is gone, `lifeboat repair snapshots`",
        );
      }
      const oversized = oversizedData(loc, this.maxChunk());
      if (oversized) throw new CorruptionError(`blob ${id.toString("hex")}`, oversized, [id.toString("hex")]);
      const what = names.pack(loc.packId);
      this.reader ??= new PackReader(this.backend);
      let sealed: Buffer;
      try {
        sealed = await this.reader.read(loc.packId, loc.offset, loc.length, loc.type === BlobType.tree);
        // A short answer is read once more before it counts as a truncated pack (storage may
        // answer short once without an error).
        if (sealed.length !== loc.length)
          sealed = await this.backend.get(what, { offset: loc.offset, length: loc.length });
      } catch (e) {
        // A prune may have moved the blob (repacked) and deleted its pack since the index was
        // read: read the index again and follow the blob, once or twice.
        if (attempt < MOVED_RETRIES && isNotFound(e) && (await this.moved(id, loc))) continue;
        throw e;
      }
      if (sealed.length !== loc.length)
        throw new CorruptionError(what, "pack is shorter than the index says", [id.toString("hex")]);
      return { loc, sealed, what };
    }
  }

  /** Reads the index again after `loc` was found gone; whether the blob is elsewhere now. */
  private async moved(id: Buffer, loc: IndexedBlob): Promise<boolean> {
    await this.reindex();
    const now = this.index.get(id);
    return now !== undefined && (now.packId !== loc.packId || now.offset !== loc.offset);
  }

  /** Reads, decrypts and verifies one blob. */
  async load(id: Buffer): Promise<Buffer> {
    const { loc, sealed, what } = await this.readSealed(id);
    // Trees are decoded here: they are needed at once, and a backup that only reads its
    // parent's trees should not start worker threads for them.
    if (loc.length < DECODE_POOL_MIN || loc.type === BlobType.tree) return this.decodeLoaded(loc, sealed);
    const key = await this.packKey(loc.packId, loc.type);
    return this.decoder().decode(sealed, { ...loc, key, what });
  }

  /** Decrypts and verifies a blob whose bytes the caller read itself (e.g. a whole-pack read). */
  async decodeLoaded(loc: IndexedBlob, sealed: Buffer): Promise<Buffer> {
    const key = await this.packKey(loc.packId, loc.type);
    return decodeBlob(sealed, loc, key, this.keys.idKeyForWorkers(), names.pack(loc.packId));
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
      key = this.keys.packKey(prefix, what);
    } catch {
      return { damaged: expected, nameMatches: storageId(bytes) === packId };
    }
    // A data blob longer than any lifeboat writes is damage without decoding it (the worker
    // would size a scratch buffer by its claim: up to 4 GiB for a crafted zstd bomb).
    const oversized: typeof expected = [];
    const rest: typeof expected = [];
    const max = this.maxChunk();
    for (const b of expected) (oversizedData(b, max) ? oversized : rest).push(b);
    const r = await this.decoder().verifyPack(bytes, packId, key, what, rest);
    return { damaged: [...oversized, ...r.damaged.map((i) => rest[i]!)], nameMatches: r.nameMatches };
  }
}
