import { isRetained, LifeboatError } from "../../core/errors.js";
import { BlobType, type BlobTypeValue } from "../../repo/blob.js";
import { names } from "../../repo/config.js";
import { segmentKind } from "../../repo/records-segment.js";
import { walKind } from "../../repo/records-wal.js";
import type { BlobWriter, Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { encodeTree, type TreeNode } from "../../repo/tree.js";
import { withSession } from "../../snapshot/session.js";
import { resolveSubpath } from "../../snapshot/subpath.js";
import { walkTree } from "../../snapshot/walker.js";
import { check } from "../check/check.js";
import { copiedFrom } from "../copy/copy.js";
import { readPackMap } from "../prune/pack-map.js";

export interface HealOptions {
  /** Find and report what could be healed; store nothing, change nothing. */
  dryRun?: boolean;
  onStep?: (message: string) => void;
  signal?: AbortSignal;
}

export interface BadPack {
  pack: string;
  why: "missing" | "damaged";
  /** Blobs the index files list in it, and how many of them fail verification. */
  blobs: number;
  damagedBlobs: number;
}

/** A blob this repository lost and no copy could give back, with where it is needed. */
export interface Unhealed {
  blob: string;
  type: "data" | "tree";
  /** Snapshots and paths (or records) that need it (at most 20). */
  neededBy: { snapshot?: string; record?: string; path: string }[];
}

export interface HealResult {
  badPacks: BadPack[];
  /** Blobs with no good copy left in this repository (before healing). */
  lost: number;
  /** Lost blobs rebuilt from the copy (in a dry run: that would be). */
  healed: number;
  healedBlobs: { data: number; tree: number };
  /** Good blobs of damaged packs copied into new packs before those packs are dropped. */
  salvaged: number;
  /** Lost blobs no snapshot or record needs: dropped with their packs. */
  unneeded: number;
  unhealed: Unhealed[];
  /** Files (and records) read from the copy. */
  filesRead: number;
  bytesRead: number;
  /** Packs taken out of the index (and deleted, when still stored). */
  droppedPacks: string[];
  newIndex?: string;
}

/** Where a lost blob is needed, found by walking this repository's snapshots. */
interface Place {
  snapshot: SnapshotWithId;
  path: string;
}

const MAX_PLACES = 20;

/**
 * Heals a damaged repository from a second one (a `copy` target) by content. The two have
 * different keys and chunk boundaries, so no blob can be taken over as it is: for every blob
 * this repository lost (in a missing or damaged pack, with no good copy in another pack), a
 * file that contains it is found by walking this repository's snapshots, the same file is read
 * from the copy (the copy of that snapshot, `meta.copiedFrom`, else any snapshot with the same
 * path and size), chunked with this repository's secret chunker and keyed ids, and the chunks
 * whose ids are lost are stored again. A lost tree is rebuilt from the copy's folder at its
 * path (every file below re-chunked) and stored if its id matches; blobs of archived WAL and
 * replication segments come back from the copied records.
 *
 * Then, as `repair index` and prune do it: good blobs of damaged packs are copied into new
 * packs, one index file replaces every index file without the bad packs, the old index files
 * and the damaged packs are deleted. Lost blobs that no copy holds are listed with what needs
 * them (`repair snapshots` then rewrites those snapshots around them). Run it while no backup
 * writes into this repository.
 */
export async function healFromCopy(
  repo: Repository,
  copy: Repository,
  options: HealOptions = {},
): Promise<HealResult> {
  const step = (m: string) => {
    options.signal?.throwIfAborted();
    options.onStep?.(m);
  };
  // A damaged index file: its packs would look unindexed and be dropped (`repair index` first).
  repo.requireIntactIndex();
  step("reading every pack to find damage");
  const report = await check(repo, { readData: true, ...(options.signal ? { signal: options.signal } : {}) });
  const map = await readPackMap(repo);
  const bad = new Map<string, BadPack>();
  const damagedBlobs = new Set<string>();
  const lost = new Set<string>();
  for (const p of report.problems) {
    const packId = p.object.startsWith("data/") ? p.object.split("/").at(-1)! : undefined;
    if (p.kind === "missing-pack" && packId) {
      // A read that failed for another reason than absence is no reason to drop a pack.
      if (await repo.backend.stat(p.object))
        throw new LifeboatError(
          "STORAGE_ERROR",
          `${p.object} could not be read (${p.message}) but is there`,
          "run the command again once the storage answers; nothing was changed",
        );
      bad.set(packId, {
        pack: packId,
        why: "missing",
        blobs: map.packs.get(packId)?.blobs.length ?? 0,
        damagedBlobs: 0,
      });
      for (const b of map.packs.get(packId)?.blobs ?? []) lost.add(b.id.toString("hex"));
    } else if ((p.kind === "damaged-blob" || p.kind === "damaged-pack") && packId) {
      bad.set(packId, {
        pack: packId,
        why: "damaged",
        blobs: map.packs.get(packId)?.blobs.length ?? 0,
        damagedBlobs: p.blobs.length,
      });
      for (const b of p.blobs) {
        damagedBlobs.add(b);
        lost.add(b);
      }
    } else if (p.kind === "missing-blob") for (const b of p.blobs) lost.add(b);
  }
  // A blob with a good copy in a pack that is not bad is not lost.
  for (const pack of map.packs.values()) {
    if (bad.has(pack.id)) continue;
    for (const b of pack.blobs) lost.delete(b.id.toString("hex"));
  }
  const result: HealResult = {
    badPacks: [...bad.values()],
    lost: lost.size,
    healed: 0,
    healedBlobs: { data: 0, tree: 0 },
    salvaged: 0,
    unneeded: 0,
    unhealed: [],
    filesRead: 0,
    bytesRead: 0,
    droppedPacks: [],
  };
  if (bad.size === 0 && lost.size === 0) return result;

  const run = async () => {
    // Nothing is ever deduplicated against a bad pack: what is saved again lands in new packs.
    repo.doomPacks(bad.keys());
    await repo.withWriter(async (w) => {
      const healer = new Healer(repo, copy, lost, w, options.dryRun !== true, result);
      await healer.run(step);
      if (!options.dryRun) result.salvaged = await salvage(repo, w, map, bad, damagedBlobs, step);
    });
    if (options.dryRun) return;
    step("writing an index without the bad packs");
    await repo.reloadIndex(true);
    const after = await readPackMap(repo);
    const keep = [...after.packs.values()].filter((p) => !bad.has(p.id));
    const oldFiles = [...after.indexFiles, ...after.supersededFiles];
    result.newIndex = await repo.writeIndexFile({
      supersedes: oldFiles,
      packs: keep.map((p) => ({ id: p.id, blobs: p.blobs })),
    });
    // Under Object Lock retention a delete is refused: the file stays superseded, the pack
    // unindexed, until a prune after the retention removes them.
    const remove = (name: string) =>
      repo.backend.delete(name).catch((e: unknown) => {
        if (!isRetained(e)) throw e;
      });
    for (const f of oldFiles) if (f !== result.newIndex) await remove(names.index(f));
    for (const b of bad.values()) {
      if (b.why === "damaged") await remove(names.pack(b.pack));
      result.droppedPacks.push(b.pack);
    }
    await repo.reloadIndex(true);
  };
  if (options.dryRun) await run();
  else await withSession(repo, run);
  return result;
}

/** Good blobs of damaged packs with no copy elsewhere, read (verified) and stored in new packs. */
async function salvage(
  repo: Repository,
  w: BlobWriter,
  map: Awaited<ReturnType<typeof readPackMap>>,
  bad: Map<string, BadPack>,
  damaged: Set<string>,
  step: (m: string) => void,
): Promise<number> {
  let n = 0;
  const damagedPacks = [...bad.values()].filter((b) => b.why === "damaged");
  if (damagedPacks.length > 0) step(`keeping the good blobs of ${damagedPacks.length} damaged pack(s)`);
  for (const b of damagedPacks) {
    for (const blob of map.packs.get(b.pack)?.blobs ?? []) {
      const hex = blob.id.toString("hex");
      if (damaged.has(hex) || w.hasBlob(blob.id)) continue;
      const loc = repo.lookup(blob.id);
      // Resolved to another pack that is not bad: that copy stays (dropping this one is enough).
      if (loc && loc.packId !== b.pack && !bad.has(loc.packId)) continue;
      let plain: Buffer;
      try {
        plain = await repo.loadBlob(blob.id);
      } catch {
        continue; // resolved to a pack that is gone: lost, and healed (or listed) as such
      }
      await w.saveBlob(blob.type as BlobTypeValue, plain, blob.id);
      n++;
    }
  }
  return n;
}

/** Finds where lost blobs are needed and rebuilds them from the copy. */
class Healer {
  private readonly healed = new Set<string>();
  /** Copy content (its ids joined) → this repository's ids for the same bytes. */
  private readonly contents = new Map<string, string[]>();
  /** Copy tree id → this repository's tree id for the same folder. */
  private readonly trees = new Map<string, string>();
  private copySnapshots: SnapshotWithId[] | undefined;

  constructor(
    private readonly repo: Repository,
    private readonly copy: Repository,
    private readonly lost: Set<string>,
    private readonly w: BlobWriter,
    /** False in a dry run: ids are computed, nothing is stored. */
    private readonly save: boolean,
    private readonly result: HealResult,
  ) {}

  private isLost(id: string): boolean {
    return this.lost.has(id) && !this.healed.has(id);
  }

  private async store(type: BlobTypeValue, plain: Buffer, id: Buffer): Promise<void> {
    const hex = id.toString("hex");
    if (!this.isLost(hex)) return;
    if (this.save) await this.w.saveBlob(type, plain, id);
    this.healed.add(hex);
    this.result.healed++;
    if (type === BlobType.tree) this.result.healedBlobs.tree++;
    else this.result.healedBlobs.data++;
  }

  async run(step: (m: string) => void): Promise<void> {
    step("finding the files that hold lost blobs");
    const files = new Map<string, { node: TreeNode; places: Place[] }>();
    const treesLost = new Map<string, Place[]>();
    const need = new Map<string, Unhealed["neededBy"]>();
    const note = (id: string, where: Unhealed["neededBy"][number]) => {
      const l = need.get(id) ?? [];
      if (l.length < MAX_PLACES) l.push(where);
      need.set(id, l);
    };
    for (const s of await this.repo.listSnapshots()) {
      await walkTree(this.repo, s.tree, {
        node: (n, path) => {
          const hit = (n.content ?? []).filter((c) => this.lost.has(c));
          if (n.type !== "file" || hit.length === 0) return undefined;
          for (const c of hit) note(c, { snapshot: s.id, path });
          const key = (n.content ?? []).join(",");
          const f = files.get(key) ?? { node: n, places: [] };
          if (f.places.length < MAX_PLACES) f.places.push({ snapshot: s, path });
          files.set(key, f);
          return undefined;
        },
        unreadable: (t, path) => {
          if (!this.lost.has(t)) return;
          note(t, { snapshot: s.id, path: path || "/" });
          const l = treesLost.get(t) ?? [];
          if (l.length < MAX_PLACES) l.push({ snapshot: s, path });
          treesLost.set(t, l);
        },
      });
    }
    step(`rebuilding from the copy: ${files.size} file(s), ${treesLost.size} folder(s)`);
    for (const { node, places } of files.values()) await this.healFile(node, places);
    for (const [t, places] of treesLost) await this.healTree(t, places);
    await this.healRecords(note);
    const types = new Map<string, "data" | "tree">([...treesLost.keys()].map((t) => [t, "tree"]));
    for (const id of this.lost) {
      if (this.healed.has(id)) continue;
      const neededBy = need.get(id);
      if (!neededBy) {
        this.result.unneeded++;
        continue;
      }
      this.result.unhealed.push({ blob: id, type: types.get(id) ?? "data", neededBy });
    }
  }

  /** The copy's snapshot of `s` first, then every other, newest first. */
  private async candidates(s: SnapshotWithId): Promise<SnapshotWithId[]> {
    this.copySnapshots ??= (await this.copy.listSnapshots()).reverse();
    const mark = copiedFrom(this.repo, s.id);
    const own = this.copySnapshots.filter((c) => c.meta?.copiedFrom === mark);
    return [...own, ...this.copySnapshots.filter((c) => c.meta?.copiedFrom !== mark)];
  }

  private async healFile(node: TreeNode, places: Place[]): Promise<void> {
    const wanted = () => (node.content ?? []).filter((c) => this.isLost(c));
    for (const place of places) {
      for (const c of await this.candidates(place.snapshot)) {
        if (wanted().length === 0) return;
        const found = await resolveSubpath(this.copy, c, place.path).catch(() => undefined);
        if (found?.kind !== "node" || found.node.type !== "file" || found.node.size !== node.size) continue;
        await this.contentOf(found.node.content ?? []).catch(() => undefined);
      }
    }
  }

  /**
   * This repository's ids for the bytes of a copy's file, chunked with this repository's
   * chunker; lost chunks are stored on the way. Each copy content is read once.
   */
  private async contentOf(copyContent: string[]): Promise<string[]> {
    const key = copyContent.join(",");
    const done = this.contents.get(key);
    if (done) return done;
    const chunker = this.w.newChunker();
    const ids: string[] = [];
    const take = async (chunks: Buffer[]) => {
      for (const chunk of chunks) {
        const id = this.repo.blobId(chunk);
        ids.push(id.toString("hex"));
        await this.store(BlobType.data, chunk, id);
      }
    };
    for (const c of copyContent) {
      const b = await this.copy.loadBlob(Buffer.from(c, "hex"));
      this.result.bytesRead += b.length;
      await take(chunker.push(b));
    }
    await take(chunker.finish());
    this.result.filesRead++;
    this.contents.set(key, ids);
    return ids;
  }

  private async healTree(t: string, places: Place[]): Promise<void> {
    for (const place of places) {
      for (const c of await this.candidates(place.snapshot)) {
        if (!this.isLost(t)) return;
        const found = await resolveSubpath(this.copy, c, place.path).catch(() => undefined);
        if (found?.kind !== "dir") continue;
        await this.rebuild(found.tree).catch(() => undefined);
      }
    }
  }

  /** This repository's tree for a copy's folder: every file below re-chunked, every id recomputed. */
  private async rebuild(copyTree: string): Promise<string> {
    const done = this.trees.get(copyTree);
    if (done) return done;
    const nodes: TreeNode[] = [];
    for (const n of (await this.copy.loadTree(copyTree)).nodes) {
      if (n.type === "dir" && n.subtree) nodes.push({ ...n, subtree: await this.rebuild(n.subtree) });
      else if (n.type === "file" && n.content) nodes.push({ ...n, content: await this.contentOf(n.content) });
      else nodes.push(n);
    }
    const plain = encodeTree({ nodes });
    const id = this.repo.blobId(plain);
    await this.store(BlobType.tree, plain, id);
    this.trees.set(copyTree, id.toString("hex"));
    return id.toString("hex");
  }

  /** Blobs of archived WAL and replication segments, from the copied records. */
  private async healRecords(note: (id: string, where: Unhealed["neededBy"][number]) => void): Promise<void> {
    const origin = (id: string) => copiedFrom(this.repo, id);
    const wal = await this.repo.records.list(walKind);
    const walHit = wal.filter((r) => r.record.content.some((c) => this.lost.has(c)));
    if (walHit.length > 0) {
      const theirs = await this.copy.records.list(walKind);
      for (const r of walHit) {
        for (const c of r.record.content)
          if (this.lost.has(c))
            note(c, { record: r.object, path: `WAL ${r.record.cluster}/${r.record.name}` });
        const same = theirs.filter(
          (x) =>
            x.record.copiedFrom === origin(r.id) ||
            (x.record.cluster === r.record.cluster &&
              x.record.name === r.record.name &&
              x.record.sha256 === r.record.sha256),
        );
        for (const x of same) await this.contentOf(x.record.content).catch(() => undefined);
      }
    }
    const segs = await this.repo.records.list(segmentKind);
    const segHit = segs.filter((r) => r.record.content.some((c) => this.lost.has(c)));
    if (segHit.length > 0) {
      const theirs = await this.copy.records.list(segmentKind);
      for (const r of segHit) {
        const d = r.record;
        for (const c of d.content)
          if (this.lost.has(c))
            note(c, { record: r.object, path: `segment ${d.index} of ${d.source} ${d.generation}` });
        const same = theirs.filter(
          (x) =>
            x.record.copiedFrom === origin(r.id) ||
            (x.record.source === d.source &&
              x.record.generation === d.generation &&
              x.record.index === d.index),
        );
        for (const x of same) await this.contentOf(x.record.content).catch(() => undefined);
      }
    }
  }
}
