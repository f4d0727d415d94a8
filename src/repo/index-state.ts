import type { Backend } from "../backend/backend.js";
import { storageId } from "../core/crypto.js";
import { CorruptionError, isLifeboatError, LifeboatError } from "../core/errors.js";
import type { BlobLocation } from "./blob.js";
import { isStorageId, names } from "./config.js";
import {
  decodedPack,
  decodeIndexRaw,
  encodeIndex,
  type IndexFile,
  type IndexPack,
  type RawIndexFile,
} from "./index-file.js";
import type { KeyRing } from "./key-ring.js";
import { type IndexedBlob, MasterIndex } from "./master-index.js";
import type { RecordStore } from "./record-store.js";
import { planKind } from "./records-gc.js";
import { ObjectKind } from "./sealed-object.js";
import { getVerified } from "./verified-get.js";
import { putWhole } from "./whole-put.js";

/**
 * The in-memory index (which pack holds each blob) and what the repository knows about its
 * index files and prune's plans. Only the repository's own parts change it; everyone else asks.
 *
 * Packs a prune has planned to delete ("doomed") are indexed last, so a blob that also lives in
 * another pack resolves there, and `isStored` treats blobs found only in them as absent: a backup
 * never deduplicates against data that may be deleted under it. Index files named in another's
 * `supersedes` are left out (they exist only briefly, between a prune writing the new index and
 * deleting the old ones).
 *
 * Packs written by write-only keys are *claims* (docs/format.md, "Write-only keys"): anyone
 * holding a write-only key could have written them, so a full key reads from them (every blob is
 * verified against its id) but never deduplicates against them, and a location a full key wrote
 * wins over a claim. Index files written by a write-only key never supersede anything. A
 * write-only key skips index files it cannot open (sealed with the metadata key by a full key
 * that did not know about write-only keys yet): it then only stores some blobs again.
 */
export class IndexState {
  private index = new MasterIndex();
  private doomed = new Set<string>();
  /** Index files in force when the index was loaded (prune supersedes exactly these). */
  private loaded: string[] = [];
  /** Index files still in storage but replaced by another's `supersedes` (left by a prune that
   * was interrupted or not allowed to delete them); the next index rewrite supersedes them too. */
  private superseded: string[] = [];
  /** Index files written by this process since the index was loaded (so a catch-up after a
   * flush does not read them again); they are in force too. */
  private written: string[] = [];
  /** Packs written by write-only keys (claims). */
  private claims = new Set<string>();
  /** Index files this key cannot open (a write-only key and a file sealed for full keys). */
  private unreadable = new Set<string>();
  /**
   * Index files that could not be read (damaged, or another object's bytes under their name),
   * with why. They are left out, so their blobs look absent: readers go on (a restore fails
   * only on the files that need those blobs, check names them), but prune must not run, since
   * the packs they list would look unindexed (docs/repair.md: `repair index`).
   */
  private damaged = new Map<string, string>();

  constructor(
    private readonly backend: Backend,
    private readonly keys: KeyRing,
    private readonly records: RecordStore,
  ) {}

  /** Whether blobs of this pack may be deduplicated against: not doomed, and not a claim unless
   * this is a write-only key (which shares what write-only keys wrote, as they all do). */
  private dedupable(packId: string): boolean {
    return !this.doomed.has(packId) && (this.keys.kind === "write-only" || !this.claims.has(packId));
  }

  /**
   * Reads every index file in force, and the packs prune's plans doom. The new index replaces
   * the old one only once complete: lookups made meanwhile (a restore that found a blob moved
   * reloads while other reads go on) see the old one, never a partial one.
   */
  async load(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      let ix = new MasterIndex();
      this.claims = new Set();
      this.damaged = new Map();
      try {
        await this.readPlans();
        const ids = await this.listIndexFiles();
        const superseded = await this.addFiles(ids, ix);
        let live = ids;
        if (ids.some((id) => superseded.has(id))) {
          // Rare (after an interrupted prune): start over without the superseded files.
          live = ids.filter((id) => !superseded.has(id));
          ix = new MasterIndex();
          this.claims = new Set();
          this.damaged = new Map();
          await this.addFiles(live, ix);
        }
        this.index = ix;
        this.loaded = live.filter((id) => !this.damaged.has(id));
        this.superseded = ids.filter((id) => superseded.has(id));
        this.written = []; // the listing holds them (or a prune has replaced them)
        return;
      } catch (e) {
        // A prune replaced the index files while we read them: read the new ones.
        if (!isLifeboatError(e) || e.code !== "NOT_FOUND" || attempt >= 5) throw e;
      }
    }
  }

  /** Reads the index again; `freshPlans` (prune) also forgets which packs were doomed. */
  async reload(freshPlans = false): Promise<void> {
    this.unreadable = new Set();
    if (freshPlans) this.doomed = new Set();
    await this.load();
  }

  /**
   * Reads prune plans again and the index files written since the index was loaded (a backup,
   * right after announcing its session). If a prune replaced index files meanwhile (so packs may
   * have been deleted), or a new plan dooms packs (blobs that also live elsewhere must now
   * resolve there), the whole index is read again. Doomed packs stay doomed even when their
   * plan is gone: it was carried out (the pack is deleted) or kept (a copy more costs only
   * space). Returns true when the whole index was read again.
   */
  async catchUp(): Promise<boolean> {
    const doomedBefore = this.doomed.size;
    await this.readPlans();
    // Superseded files are still listed until a prune deletes them: never read them back in.
    const known = new Set([
      ...this.loaded,
      ...this.written,
      ...this.unreadable,
      ...this.superseded,
      ...this.damaged.keys(),
    ]);
    const listed = await this.listIndexFiles();
    const listedSet = new Set(listed);
    const fresh = listed.filter((id) => !known.has(id));
    let replaced = this.doomed.size > doomedBefore || this.loaded.some((id) => !listedSet.has(id));
    const files: IndexFile[] = [];
    for (const id of fresh) {
      if (replaced) break;
      const file = await this.readFile(id).catch((e: unknown) => {
        if (isLifeboatError(e) && e.code === "NOT_FOUND") return undefined;
        if (this.cannotOpen(e)) return null;
        if (e instanceof CorruptionError) {
          this.damaged.set(id, detail(e));
          return null;
        }
        throw e;
      });
      if (file === null) {
        if (!this.damaged.has(id)) this.unreadable.add(id);
        continue;
      }
      if (!file || file.supersedes.length > 0) replaced = true;
      else files.push(file);
    }
    if (replaced) {
      await this.reload();
      return true;
    }
    this.addPacks(
      files.flatMap((f) => f.packs),
      this.index,
    );
    this.loaded = [
      ...this.loaded,
      ...fresh.filter((id) => !this.unreadable.has(id) && !this.damaged.has(id)),
    ];
    return false;
  }

  /** A write-only key meeting an index file sealed for full keys only: skipped, not fatal. */
  private cannotOpen(e: unknown): boolean {
    return this.keys.kind === "write-only" && isLifeboatError(e) && e.code === "NEEDS_FULL_KEY";
  }

  private async readPlans(): Promise<void> {
    let plans: Awaited<ReturnType<RecordStore["list"]>>;
    try {
      plans = await this.records.list(planKind);
    } catch (e) {
      // A write-only key must see every plan (RecordStore never skips what it cannot open).
      if (!this.cannotOpen(e)) throw e;
      throw new LifeboatError(
        "NEEDS_FULL_KEY",
        `a prune plan in gc/ is sealed for full keys only, and this write-only key must see every plan before it deduplicates (${(e as Error).message})`,
        "run `lifeboat prune` (or `lifeboat key add --write-only` again) with a full key: it seals plans with the index key",
      );
    }
    for (const p of plans as { record: { packs: string[] } }[])
      for (const id of p.record.packs) this.doomed.add(id);
  }

  private async listIndexFiles(): Promise<string[]> {
    const out: string[] = [];
    for await (const o of this.backend.list("index/")) {
      const id = o.name.slice("index/".length);
      if (isStorageId(id)) out.push(id);
    }
    return out;
  }

  /** Adds packs to the index `ix`, those outside any plan first (see the class comment). */
  private addPacks(packs: IndexPack[], ix: MasterIndex): void {
    ix.reserve(packs.reduce((n, p) => n + p.blobs.length, 0));
    for (const p of packs) if (p.claim) this.claims.add(p.id);
    for (const p of packs) if (!this.doomed.has(p.id)) for (const b of p.blobs) this.place(b, p.id, ix);
    for (const p of packs) if (this.doomed.has(p.id)) for (const b of p.blobs) ix.add(b, p.id);
  }

  /**
   * Indexes a blob of a pack outside every plan. A blob the index already places in a pack it
   * may not deduplicate against (doomed, or a claim for a full key) moves here when this pack
   * is one it may: doomed packs were doomed after that blob was indexed (a plan read at a
   * catch-up, or written by this process), and a copy outside them must win, or this process
   * would store the blob again and again and read it from a pack that a sweep deletes; and a
   * copy a full key wrote is the one to read.
   */
  private place(b: BlobLocation, packId: string, ix: MasterIndex): void {
    const at = this.doomed.size + this.claims.size > 0 ? ix.get(b.id) : undefined;
    if (at && !this.dedupable(at.packId) && this.dedupable(packId)) ix.relocate(b, packId);
    else if (at && this.claims.has(at.packId) && !this.claims.has(packId)) ix.relocate(b, packId);
    else ix.add(b, packId);
  }

  private async addFiles(ids: string[], ix: MasterIndex): Promise<Set<string>> {
    const superseded = new Set<string>();
    const doomedPacks: IndexPack[] = [];
    for (const id of ids) {
      let file: RawIndexFile;
      try {
        file = await this.readRawFile(id);
      } catch (e) {
        if (e instanceof CorruptionError) {
          this.damaged.set(id, detail(e));
          continue;
        }
        if (!this.cannotOpen(e)) throw e;
        this.unreadable.add(id);
        continue;
      }
      for (const s of file.supersedes) superseded.add(s);
      const live = file.packs.filter((p) => !this.doomed.has(p.id));
      ix.reserve(live.reduce((n, p) => n + p.count, 0));
      for (const p of live) if (p.claim) this.claims.add(p.id);
      for (const p of live) {
        if (this.claims.size === 0 && this.doomed.size === 0) ix.addEntries(p.entries, p.count, p.id);
        else for (const b of decodedPack(p).blobs) this.place(b, p.id, ix);
      }
      for (const p of file.packs) if (this.doomed.has(p.id)) doomedPacks.push(decodedPack(p));
    }
    this.addPacks(doomedPacks, ix);
    return superseded;
  }

  /**
   * Reads one index file. A file written by a write-only key is a claim: each of its packs is
   * marked so, and it supersedes nothing (only a full key may replace index files).
   */
  async readFile(id: string): Promise<IndexFile> {
    const raw = await this.readRawFile(id);
    return { supersedes: raw.supersedes, packs: raw.packs.map(decodedPack) };
  }

  /** readFile with each pack's entries left as bytes (see RawIndexPack). */
  private async readRawFile(id: string): Promise<RawIndexFile> {
    const what = names.index(id);
    const stored = await getVerified(this.backend, what, id);
    const opened = await this.keys.openLatest(ObjectKind.index, stored, what);
    const file = decodeIndexRaw(opened.plain, what);
    if (opened.writer === undefined) return file;
    return { supersedes: [], packs: file.packs.map((p) => ({ ...p, claim: true })) };
  }

  /** Stores an index file; returns its id. Packs known to be claims stay marked as claims (a
   * prune or repair rewriting the index must not turn them into packs a full key vouches for). */
  async writeFile(file: IndexFile): Promise<string> {
    const claim = (p: IndexPack) =>
      this.keys.kind === "write-only" || p.claim === true || this.claims.has(p.id);
    const packs = file.packs.map((p) => (claim(p) ? { ...p, claim: true } : p));
    const stored = this.keys.seal(ObjectKind.index, encodeIndex({ ...file, packs }), false);
    const id = storageId(stored);
    await putWhole(this.backend, names.index(id), stored);
    if (file.supersedes.length === 0) this.written.push(id);
    return id;
  }

  // --- questions -----------------------------------------------------------------------------

  /** Index files left out because they could not be read, with why (see `damaged`). */
  damagedFiles(): { id: string; message: string }[] {
    return [...this.damaged].map(([id, message]) => ({ id, message }));
  }

  get(id: Buffer): IndexedBlob | undefined {
    return this.index.get(id);
  }

  /** Whether the index lists the blob at all (even in a doomed pack). */
  has(id: Buffer): boolean {
    return this.index.has(id);
  }

  /** Whether a blob is stored in a pack this key may deduplicate against (not planned for
   * deletion; for a full key, not a claim). */
  isStored(id: Buffer): boolean {
    const loc = this.index.get(id);
    return loc !== undefined && this.dedupable(loc.packId);
  }

  isDoomed(packId: string): boolean {
    return this.doomed.has(packId);
  }

  get size(): number {
    return this.index.size;
  }

  packs(): Iterable<string> {
    return this.index.packs();
  }

  entries(): Iterable<IndexedBlob> {
    return this.index.entries();
  }

  /** The index files in force (with those this process wrote since loading) and those already
   * superseded (what a rewrite must supersede). */
  files(): { loaded: readonly string[]; superseded: readonly string[]; unreadable: readonly string[] } {
    const loaded = new Set(this.loaded);
    return {
      loaded: [...this.loaded, ...this.written.filter((id) => !loaded.has(id))],
      superseded: [...this.superseded],
      unreadable: [...this.unreadable],
    };
  }

  /** Whether a pack was written by a write-only key (see the class comment). */
  isClaim(packId: string): boolean {
    return this.claims.has(packId);
  }

  /** A pack whose header says a write-only key wrote it (key mode 1), read by `repair index`. */
  noteClaim(packId: string): void {
    this.claims.add(packId);
  }

  // --- changes made by the repository's own parts ----------------------------------------------

  /** Blobs of a pack this process just uploaded (never a doomed one: see `place`). */
  addUploaded(packId: string, blobs: BlobLocation[]): void {
    if (this.keys.kind === "write-only") this.claims.add(packId);
    for (const b of blobs) this.place(b, packId, this.index);
  }

  /** Packs a plan (about to be) stored by this process dooms: never deduplicate against them. */
  doom(packIds: Iterable<string>): void {
    for (const id of packIds) this.doomed.add(id);
  }

  /** Locations a record remembered for its blobs (verified when read, like every blob). */
  addHints(packId: string, blobs: BlobLocation[]): void {
    for (const b of blobs) this.index.add(b, packId);
  }
}

/** A CorruptionError's message without the object name it starts with. */
function detail(e: CorruptionError): string {
  return e.message.startsWith(`${e.object}: `) ? e.message.slice(e.object.length + 2) : e.message;
}
