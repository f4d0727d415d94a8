import type { Backend } from "../backend/backend.js";
import { storageId } from "../core/crypto.js";
import { CorruptionError } from "../core/errors.js";
import { type FileMeta, writeOrHole } from "../fsio/file-write.js";
import { BlobType } from "./blob.js";
import type { BlobPool } from "./blob-pool.js";
import { names } from "./config.js";
import type { IndexState } from "./index-state.js";
import type { KeyRing } from "./key-ring.js";
import type { IndexedBlob } from "./master-index.js";
import { decodeBlob, PACK_PREFIX, parsePrefix } from "./pack.js";
import { PackReader } from "./pack-reader.js";

/** Blobs from this stored size up are decrypted, decompressed and verified on worker threads
 * when read; smaller ones (trees, mail-sized files) cost less than the hop. */
const DECODE_POOL_MIN = 16 * 1024;
/** Pack keys remembered (each is derived from the pack's salt, read with one ranged get). */
const PACK_KEYS_KEPT = 10_000;

/**
 * The read side of a repository: finds a blob through the index, reads it from its pack (with
 * read-ahead), decrypts, decompresses and checks it against its keyed id — on worker threads
 * when it is large. Every byte handed out has been verified.
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
  ) {}

  private async keyForPack(packId: string, type: number): Promise<Buffer> {
    let key = this.packKeys.get(packId);
    if (!key) {
      const what = names.pack(packId);
      const prefix = parsePrefix(await this.backend.get(what, { offset: 0, length: PACK_PREFIX }), what);
      if (prefix.type !== type) throw new CorruptionError(what, "pack type does not match the index");
      key = this.keys.packKey(prefix, what);
      if (this.packKeys.size > PACK_KEYS_KEPT) this.packKeys.clear();
      this.packKeys.set(packId, key);
    }
    return key;
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
    let sealed = await this.reader.read(loc.packId, loc.offset, loc.length);
    // A short answer is read once more before it counts as a truncated pack (storage may
    // answer short once without an error).
    if (sealed.length !== loc.length)
      sealed = await this.backend.get(what, { offset: loc.offset, length: loc.length });
    if (sealed.length !== loc.length)
      throw new CorruptionError(what, "pack is shorter than the index says", [id.toString("hex")]);
    return { loc, sealed, what };
  }

  /** Reads, decrypts and verifies one blob. */
  async load(id: Buffer): Promise<Buffer> {
    const { loc, sealed, what } = await this.readSealed(id);
    // Trees are decoded here: they are needed at once, and a backup that only reads its
    // parent's trees should not start worker threads for them.
    if (loc.length < DECODE_POOL_MIN || loc.type === BlobType.tree) return this.decodeLoaded(loc, sealed);
    const key = await this.keyForPack(loc.packId, loc.type);
    return this.decoder().decode(sealed, { ...loc, key, what });
  }

  /** Decrypts and verifies a blob whose bytes the caller read itself (e.g. a whole-pack read). */
  async decodeLoaded(loc: IndexedBlob, sealed: Buffer): Promise<Buffer> {
    const key = await this.keyForPack(loc.packId, loc.type);
    return decodeBlob(sealed, loc, key, this.keys.idKeyForWorkers(), names.pack(loc.packId));
  }

  /**
   * Reads one blob and writes its plaintext at `position` of the open file `fd` (decoded and
   * written on a worker thread when large). All-zero blobs are left as holes: the caller sets
   * the file size at the end. Returns the blob's length and whether it left a hole.
   */
  async writeTo(id: Buffer, fd: number, position: number): Promise<{ length: number; hole: boolean }> {
    const { loc, sealed, what } = await this.readSealed(id);
    if (loc.length < DECODE_POOL_MIN) {
      const plain = await this.decodeLoaded(loc, sealed);
      return { length: plain.length, hole: writeOrHole(fd, plain, position) };
    }
    const key = await this.keyForPack(loc.packId, loc.type);
    return {
      length: loc.rawLength,
      hole: await this.decoder().decodeTo(sealed, { ...loc, key, what }, fd, position),
    };
  }

  /**
   * Writes the blobs `ids`, in order, as the new file `dest` through a temporary file (see
   * `writeNewFile` in fsio/file-write.ts); decoding and all the file's system calls run on a
   * worker thread. Meant for small files (their blobs are held in memory together). Returns the
   * extended attributes that could not be set.
   */
  async writeSmallFile(
    ids: Buffer[],
    dest: string,
    size: number,
    meta: FileMeta,
    label: string,
  ): Promise<string[]> {
    const blobs = await Promise.all(
      ids.map(async (id) => {
        const { loc, sealed, what } = await this.readSealed(id);
        return { sealed, job: { ...loc, key: await this.keyForPack(loc.packId, loc.type), what } };
      }),
    );
    return this.decoder().writeFile(dest, blobs, size, meta, label);
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
    const r = await this.decoder().verifyPack(bytes, packId, key, what, expected);
    return { damaged: r.damaged.map((i) => expected[i]!), nameMatches: r.nameMatches };
  }
}
