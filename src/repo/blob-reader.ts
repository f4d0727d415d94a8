import type { Backend } from "../backend/backend.js";
import { CorruptionError, isLifeboatError } from "../core/errors.js";
import { BlobType } from "./blob.js";
import type { BlobPool } from "./blob-pool.js";
import { names } from "./config.js";
import type { IndexState } from "./index-state.js";
import type { KeyRing } from "./key-ring.js";
import type { IndexedBlob } from "./master-index.js";
import { decodeBlob, oversizedData, PACK_PREFIX, parsePrefix } from "./pack.js";
import { PackReader } from "./pack-reader.js";
import { planWindows } from "./pack-windows.js";

/** Blobs from this stored size up are decrypted, decompressed and verified on worker threads
 * when read; smaller ones (trees, mail-sized files) cost less than the hop. */
const DECODE_POOL_MIN = 16 * 1024;
/** Pack keys remembered (each is derived from the pack's salt, read with one ranged get). */
const PACK_KEYS_KEPT = 10_000;
/** How many times a read follows a blob a prune moved (each time after reading the index again). */
const MOVED_RETRIES = 2;
/** Blobs missing from the index read the index files written since at most this often. */
const CATCH_UP_EVERY_MS = 2000;

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
  /** A catch-up of the index under way (see catchUp); concurrent misses share it. */
  private catchingUp: Promise<unknown> | undefined;
  private caughtUpAt = 0;

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

  /**
   * Reads the index files written since the index was loaded; concurrent callers share one
   * read, and one that comes within CATCH_UP_EVERY_MS of the last reads nothing (a damaged
   * repository missing thousands of blobs costs one listing, not one per blob).
   */
  async catchUp(): Promise<void> {
    if (!this.catchingUp && Date.now() - this.caughtUpAt < CATCH_UP_EVERY_MS) return;
    this.catchingUp ??= this.index.catchUp().finally(() => {
      this.catchingUp = undefined;
      this.caughtUpAt = Date.now();
    });
    await this.catchingUp;
  }

  /** A blob's sealed bytes and its pack's key, following the blob if a prune moved it. */
  private async readSealed(
    id: Buffer,
  ): Promise<{ loc: IndexedBlob; sealed: Buffer; key: Buffer; what: string }> {
    let caughtUp = false;
    for (let attempt = 0; ; ) {
      const loc = this.index.get(id);
      if (!loc && !caughtUp) {
        // A snapshot stored after this process read the index (`restore latest` right after a
        // backup finished; the soak saw it on S3, where the index takes longer to read) has
        // its blobs in index files read since: read those, then look again.
        caughtUp = true;
        await this.catchUp();
        continue;
      }
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
      let key: Buffer;
      try {
        sealed = await this.reader.read(loc.packId, loc.offset, loc.length, loc.type === BlobType.tree);
        // A short answer is read once more before it counts as a truncated pack (storage may
        // answer short once without an error).
        if (sealed.length !== loc.length)
          sealed = await this.backend.get(what, { offset: loc.offset, length: loc.length });
        // The key's read of the pack's prefix may come after a prune deleted it, too (the soak
        // saw a copy fail so: the blob read from a cached window, the pack gone by its prefix).
        key = await this.packKey(loc.packId, loc.type);
      } catch (e) {
        // A prune may have moved the blob (repacked) and deleted its pack since the index was
        // read: read the index again and follow the blob, once or twice.
        if (attempt++ < MOVED_RETRIES && isNotFound(e) && (await this.moved(id, loc))) continue;
        throw e;
      }
      if (sealed.length !== loc.length)
        throw new CorruptionError(what, "pack is shorter than the index says", [id.toString("hex")]);
      return { loc, sealed, key, what };
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
    const { loc, sealed, key, what } = await this.readSealed(id);
    // Trees are decoded here: they are needed at once, and a backup that only reads its
    // parent's trees should not start worker threads for them.
    if (loc.length < DECODE_POOL_MIN || loc.type === BlobType.tree)
      return decodeBlob(sealed, loc, key, this.keys.idKeyForWorkers(), what);
    return this.decoder().decode(sealed, { ...loc, key, what });
  }

  /** Decrypts and verifies a blob whose bytes the caller read itself (e.g. a whole-pack read). */
  async decodeLoaded(loc: IndexedBlob, sealed: Buffer): Promise<Buffer> {
    const key = await this.packKey(loc.packId, loc.type);
    return decodeBlob(sealed, loc, key, this.keys.idKeyForWorkers(), names.pack(loc.packId));
  }

  /**
   * Verifies a stored pack of `size` bytes (`check --read-data`): reads it in windows of about
   * CHECK_WINDOW bytes (at most two of them in memory at a time), which a worker hashes in order
   * and whose blobs it decrypts, decompresses and matches with their ids. Returns the blobs of
   * `expected` that fail, whether the pack's SHA-256 matches its name, the bytes read, and the
   * pack's prefix and header as one small buffer (`header`, for readPackHeader). The pack key
   * comes from the bytes themselves; a pack whose type differs from the index's fails every
   * blob. A pack that is gone fails with NOT_FOUND.
   */
  async verifyPack(
    packId: string,
    size: number,
    expected: IndexedBlob[],
  ): Promise<{ damaged: IndexedBlob[]; nameMatches: boolean; bytesRead: number; header: Buffer }> {
    const what = names.pack(packId);
    // A data blob longer than any lifeboat writes is damage without decoding it (a worker would
    // size a scratch buffer by its claim: up to 4 GiB for a crafted zstd bomb).
    const damaged = new Set<IndexedBlob>();
    const rest: IndexedBlob[] = [];
    const max = this.maxChunk();
    for (const b of expected) {
      if (oversizedData(b, max)) damaged.add(b);
      else rest.push(b);
    }
    const plan = planWindows(rest, size, CHECK_WINDOW);
    const pool = this.decoder();
    const check = pool.packCheck();
    let key: Buffer | undefined;
    let prefix: Buffer = Buffer.alloc(0);
    let header: Buffer = Buffer.alloc(0);
    let bytesRead = 0;
    let nameMatches = false;
    const verifying: Promise<void>[] = [];
    try {
      for (const [n, w] of plan.windows.entries()) {
        const last = n === plan.windows.length - 1;
        // The last window is read to the end, whatever the listing said: all of it is hashed.
        const bytes = await this.backend.get(
          what,
          last ? { offset: w.start } : { offset: w.start, length: w.end - w.start },
        );
        bytesRead += bytes.length;
        if (n === 0) {
          prefix = Buffer.from(bytes.subarray(0, PACK_PREFIX));
          try {
            const parsed = parsePrefix(prefix, what);
            if (expected.some((b) => b.type !== parsed.type))
              throw new Error("pack type does not match the index");
            key = this.keys.packKey(parsed, what);
          } catch {
            key = undefined;
          }
        }
        if (last) header = await this.headerOf(what, prefix, bytes, w.start);
        const blobs = key ? w.blobs.map((i) => ({ ...rest[i]!, offset: rest[i]!.offset - w.start })) : [];
        const done = pool
          .verifyWindow(check, { bytes, last, packId, key: key ?? ZERO_KEY, what, blobs })
          .then((r) => {
            for (const i of r.damaged) damaged.add(rest[w.blobs[i]!]!);
            if (last) nameMatches = r.nameMatches;
          });
        verifying.push(done);
        // Two windows in flight: one being checked, one waiting or being read.
        if (verifying.length >= 2) await verifying.shift();
      }
      await Promise.all(verifying);
    } catch (e) {
      // Let the worker drop the pack's running hash (a failed read or check stops here).
      if (check.sent > 0 && !nameMatches)
        pool
          .verifyWindow(check, { bytes: Buffer.alloc(0), last: true, packId, key: ZERO_KEY, what, blobs: [] })
          .catch(() => undefined);
      await Promise.allSettled(verifying);
      throw e;
    } finally {
      pool.endPackCheck(check);
    }
    for (const i of plan.stray)
      if (!key || !(await this.strayBlobIsSound(rest[i]!, key, what))) damaged.add(rest[i]!);
    if (!key) for (const b of rest) damaged.add(b);
    return { damaged: expected.filter((b) => damaged.has(b)), nameMatches, bytesRead, header };
  }

  /** The pack's prefix and its encrypted header with its length, as readPackHeader reads them
   * (`last`: the last window, read from `lastStart`): from the last window when it holds them,
   * else read on their own. A length field that cannot be right is left for readPackHeader to
   * refuse. */
  private async headerOf(what: string, prefix: Buffer, last: Buffer, lastStart: number): Promise<Buffer> {
    const size = lastStart + last.length;
    if (size < PACK_PREFIX + 4) return prefix;
    const from = async (offset: number) =>
      offset >= lastStart
        ? last.subarray(offset - lastStart)
        : await this.backend.get(what, { offset, length: size - offset });
    const hlen = (await from(size - 4)).readUInt32LE(0);
    if (hlen > size - PACK_PREFIX - 4) return Buffer.concat([prefix, await from(size - 4)]);
    return Buffer.concat([prefix, await from(size - 4 - hlen)]);
  }

  /** A blob that lies outside the windows of its pack (an index that disagrees with it), read
   * and checked on its own. */
  private async strayBlobIsSound(b: IndexedBlob, key: Buffer, what: string): Promise<boolean> {
    try {
      const sealed = await this.backend.get(what, { offset: b.offset, length: b.length });
      if (sealed.length !== b.length) return false;
      decodeBlob(sealed, b, key, this.keys.idKeyForWorkers(), what);
      return true;
    } catch (e) {
      if (e instanceof CorruptionError) return false;
      throw e;
    }
  }
}

/** Windows of a pack that `check --read-data` reads at a time (see verifyPack). */
const CHECK_WINDOW = 2 * 1024 * 1024;
/** Sent with windows that have no blobs to check (a pack whose key cannot be found). */
const ZERO_KEY = Buffer.alloc(32);
