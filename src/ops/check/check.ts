import { mapLimit } from "../../core/concurrency.js";
import { isLifeboatError, LifeboatError } from "../../core/errors.js";
import { IdSet } from "../../core/id-set.js";
import { BlobType } from "../../repo/blob.js";
import { isStorageId, names } from "../../repo/config.js";
import { listPlans, liveSessions } from "../../repo/gc-plan.js";
import { listStorageIds, type Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import type { BackupProgress } from "../../snapshot/progress.js";
import { ProgressCounter } from "../../snapshot/progress.js";
import { walkTree } from "../../snapshot/walker.js";
import { checkKeys, checkRecords, damagedIndexFiles, type ObjectProblem, readSnapshots } from "./objects.js";
import { PackBlobs } from "./pack-blobs.js";

export type Subset = { kind: "part"; n: number; of: number } | { kind: "percent"; percent: number };

export interface CheckOptions {
  /** Download every selected pack and verify every blob in it. */
  readData?: boolean;
  /** Read only a part of the packs (`--read-data-subset 2/5` or `10%`). */
  subset?: Subset;
  onProgress?: (p: BackupProgress) => void;
  /** Stops the check between packs (and trees); nothing is written either way. */
  signal?: AbortSignal;
}

export interface Affected {
  snapshot: string;
  time: string;
  paths: string[];
}

export interface CheckProblem {
  /** What kind of damage: a missing pack, a damaged pack, a blob not in the index, a damaged
   * key file, index file, snapshot or record (objects.ts), ... */
  kind:
    | "missing-pack"
    | "damaged-pack"
    | "damaged-blob"
    | "missing-blob"
    | "damaged-tree"
    | "index-mismatch"
    | ObjectProblem["kind"];
  object: string;
  message: string;
  blobs: string[];
  /** Snapshots and file paths that need the damaged data. */
  affected: Affected[];
  /** Other things that need it or are lost with it: archived WAL files and replication
   * segments whose blobs are gone, what a damaged record or key file means. */
  neededBy: string[];
}

/** A prune plan not carried out yet (information, not damage: see docs/gc.md). */
export interface PendingPlan {
  plan: string;
  created: string;
  /** Packs it dooms, and how many of them are already gone (an interrupted sweep). */
  packs: number;
  packsGone: number;
  /** Backups it waits for that may still be running. */
  waitingFor: number;
  /** Packs it keeps because storage refused to delete them (Object Lock retention). */
  retained: number;
}

export interface CheckReport {
  snapshots: number;
  trees: number;
  dataBlobs: number;
  packs: number;
  packsRead: number;
  bytesRead: number;
  /** Packs in storage that no index lists (left by an interrupted backup; prune removes them). */
  unindexedPacks: string[];
  /** Prune plans not carried out yet; their packs are still indexed and still verified. */
  pendingPlans: PendingPlan[];
  /**
   * Extra copies of blobs stored in more than one pack: a backup stores a blob again when the
   * only pack holding it is doomed by a plan (and two backups may store one blob at once).
   * Harmless; they cost space until prune removes the pack or repacks it.
   */
  duplicateBlobs: number;
  problems: CheckProblem[];
}

/** Packs read at once; each holds at most two windows of 2 MiB (see BlobReader.verifyPack),
 * so a check holds at most 8 MiB of pack data whatever the pack size. Two keep both worker
 * threads busy: four took the same time, warm or cold, for 12-25 MiB more. */
const PACKS_IN_FLIGHT = 2;

/**
 * Verifies a repository without changing it: every snapshot's trees and file blobs are indexed,
 * every indexed pack exists, and (with readData) every selected pack is downloaded, its storage
 * id recomputed, its header compared with the index, and every blob decrypted and re-hashed.
 * Damage is attributed to the snapshots and file paths that need it.
 */
export async function check(repo: Repository, options: CheckOptions = {}): Promise<CheckReport> {
  for (let attempt = 1; ; attempt++) {
    const before = [...repo.indexFiles().loaded];
    let report: CheckReport;
    try {
      report = await checkOnce(repo, options);
    } catch (e) {
      // An index file in force deleted while it was read again: a prune replaced the index.
      if (!isLifeboatError(e) || e.code !== "NOT_FOUND" || attempt >= CHECK_ATTEMPTS) throw e;
      options.signal?.throwIfAborted();
      await repo.reloadIndex();
      continue;
    }
    if (report.problems.length === 0 || attempt >= CHECK_ATTEMPTS) return report;
    // A prune that swept meanwhile (it replaces the index files before it deletes packs) makes
    // moved data look missing: check again against the index it left.
    const listed = new Set(await listStorageIds(repo.backend, "index/"));
    if (before.every((id) => listed.has(id))) return report;
    options.signal?.throwIfAborted();
    await repo.reloadIndex();
  }
}

/** Checks after a concurrent prune's sweep: at most this many times in all. */
const CHECK_ATTEMPTS = 3;

async function checkOnce(repo: Repository, options: CheckOptions): Promise<CheckReport> {
  const problems: CheckProblem[] = [];
  const objectProblem = (p: ObjectProblem) => problems.push({ ...p, blobs: [], affected: [] });
  (await checkKeys(repo)).forEach(objectProblem);
  // (Snapshots are read first: a generation in levels that has one must have its catalog.)
  const read = await readSnapshots(repo);
  // A backup stores its index files before its snapshot: those of snapshots stored since the
  // index was loaded are read now, or their blobs would look missing (the soak at 100 rounds).
  await repo.catchUpIndex();
  damagedIndexFiles(repo).forEach(objectProblem);
  const records = await checkRecords(repo, levelsGenerations(read.snapshots));
  records.problems.forEach(objectProblem);
  const stored = new Map<string, number>();
  for await (const o of repo.backend.list("data/")) {
    const id = o.name.split("/").at(-1)!;
    if (isStorageId(id)) stored.set(id, o.size);
  }
  // What each index file in force says each pack holds. A blob stored in two packs resolves to
  // one of them in the loaded index; the other pack still holds it and is checked in full.
  const byPack = new PackBlobs();
  for (const f of repo.indexFiles().loaded)
    for (const p of (await repo.readIndexFile(f)).packs) if (!byPack.has(p.id)) byPack.set(p.id, p.blobs);
  // Counted here, one index lookup per blob listed (the index resolves each blob to one pack).
  let duplicateBlobs = 0;
  let dataBlobs = 0;
  for (const packId of byPack.keys())
    for (const b of byPack.ids(packId)) {
      if (repo.lookup(b.id)?.packId !== packId) duplicateBlobs++;
      else if (b.type === BlobType.data) dataBlobs++;
    }
  const indexedPacks = new Set(byPack.keys());
  for (const p of indexedPacks) {
    if (!stored.has(p)) {
      problems.push({
        kind: "missing-pack",
        object: names.pack(p),
        message: "is in the index but missing from storage",
        blobs: [],
        affected: [],
        neededBy: [],
      });
    }
  }
  const unindexedPacks = [...stored.keys()].filter((p) => !indexedPacks.has(p));

  // The packs are read (on the workers) while this thread walks the trees: neither waits for
  // the other. Their problems are listed after the structure's, as when one came after the other.
  const dataProblems: CheckProblem[] = [];
  const stop = new AbortController();
  // (By hand, not AbortSignal.any: Node 20 before 20.3 lacks it.)
  const outer = options.signal;
  const forward = () => stop.abort(outer?.reason);
  if (outer?.aborted) forward();
  else outer?.addEventListener("abort", forward, { once: true });
  const signal = stop.signal;
  // Once the reading is over, a signal the caller keeps (the console's) loses its listener.
  const reading = (
    options.readData
      ? readData(repo, options, byPack, stored, dataProblems, signal)
      : Promise.resolve({ packsRead: 0, bytesRead: 0 })
  ).finally(() => outer?.removeEventListener("abort", forward));
  reading.catch(() => {}); // awaited below, or stopped if the walk fails
  // Structure: walk every snapshot once, visiting each tree once.
  read.problems.forEach(objectProblem);
  const snapshots = read.snapshots;
  const seenTrees = new Set<string>();
  try {
    const missing = new Set<string>();
    // Every data blob seen, as 32-byte ids (a million as hex strings took ~100 MiB).
    const seenData = new IdSet();
    /** Marks a content id seen; a new one that the index lacks (or that is no id) is missing. */
    const see = (hex: string) => {
      const id = Buffer.from(hex, "hex");
      if (id.length !== 32) missing.add(hex);
      else if (seenData.add(id) && !repo.isIndexed(id)) missing.add(hex);
    };
    for (const s of snapshots) {
      await walkTree(
        repo,
        s.tree,
        {
          enterTree(t) {
            if (seenTrees.has(t)) return false;
            seenTrees.add(t);
            return true;
          },
          node(n) {
            for (const c of n.content ?? []) see(c);
            return undefined;
          },
          unreadable(t, _path, e) {
            problems.push({
              kind: repo.isIndexed(Buffer.from(t, "hex")) ? "damaged-tree" : "missing-blob",
              object: `tree ${t}`,
              message: (e as Error).message,
              blobs: [t],
              affected: [],
              neededBy: [],
            });
          },
        },
        { keepTrees: false, ...(options.signal ? { signal: options.signal } : {}) },
      );
    }
    // Blobs that archived WAL and replication segments need are checked like a snapshot's.
    for (const id of records.pins.keys()) see(id);
    if (missing.size > 0) {
      problems.push({
        kind: "missing-blob",
        object: "data blobs",
        message: `${missing.size} data blob(s) are referenced but not in the index`,
        blobs: [...missing],
        affected: [],
        neededBy: [],
      });
    }
    for (const p of problems) {
      if (p.kind === "missing-pack") p.blobs = ids(byPack.get(p.object.split("/").at(-1)!));
    }
  } catch (e) {
    stop.abort();
    await reading.catch(() => {});
    throw e;
  }
  const { packsRead, bytesRead } = await reading;
  problems.push(...dataProblems);

  const pendingPlans = await pending(repo, stored);
  await attribute(repo, snapshots, problems);
  for (const p of problems) {
    const need = new Set(p.neededBy);
    for (const b of p.blobs) for (const n of records.pins.get(b) ?? []) need.add(n);
    p.neededBy = [...need];
  }
  return {
    snapshots: snapshots.length,
    trees: seenTrees.size,
    dataBlobs,
    packs: stored.size,
    packsRead,
    bytesRead,
    unindexedPacks,
    pendingPlans,
    duplicateBlobs,
    problems,
  };
}

/** Generations of `replicate sqlite:` in levels that have a snapshot (`meta.replication`). */
function levelsGenerations(snapshots: SnapshotWithId[]): Set<string> {
  const out = new Set<string>();
  for (const s of snapshots) {
    const r = (s.meta as { replication?: { generation?: unknown; layout?: unknown } } | undefined)
      ?.replication;
    if (r?.layout === "levels" && typeof r.generation === "string") out.add(r.generation);
  }
  return out;
}

/** The prune plans not carried out yet, and why (information: docs/gc.md). */
async function pending(repo: Repository, stored: Map<string, number>): Promise<PendingPlan[]> {
  const plans = await listPlans(repo);
  if (plans.length === 0) return [];
  const live = new Set((await liveSessions(repo)).map((s) => s.id));
  return plans.map((p) => ({
    plan: p.id,
    created: p.created,
    packs: p.packs.length,
    packsGone: p.packs.filter((id) => !stored.has(id)).length,
    waitingFor: p.waitFor.filter((id) => live.has(id)).length,
    retained: Object.keys(p.retained ?? {}).length,
  }));
}

const ids = (l: { id: Buffer }[]) => l.map((b) => b.id.toString("hex"));

/** `part` n/m takes every m-th pack starting at n-1 (of the sorted ids); `percent` a random sample. */
export function selectPacks(packs: string[], subset: Subset | undefined): string[] {
  if (!subset) return packs;
  if (subset.kind === "part") return packs.filter((_, i) => i % subset.of === subset.n - 1);
  const want = Math.ceil((packs.length * subset.percent) / 100);
  const shuffled = [...packs];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
  }
  return shuffled.slice(0, want).sort();
}

export function parseSubset(s: string): Subset {
  const part = /^(\d+)\/(\d+)$/.exec(s);
  if (part) {
    const n = Number(part[1]);
    const of = Number(part[2]);
    if (n >= 1 && n <= of) return { kind: "part", n, of };
  }
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(s);
  if (pct && Number(pct[1]) > 0 && Number(pct[1]) <= 100) return { kind: "percent", percent: Number(pct[1]) };
  throw new LifeboatError(
    "USAGE",
    `--read-data-subset ${JSON.stringify(s)} is not N/M (1 <= N <= M) or X% (0 < X <= 100)`,
  );
}

/** Fills `affected` of each problem: which snapshots and which file paths use the blobs. */
async function attribute(
  repo: Repository,
  snapshots: SnapshotWithId[],
  problems: CheckProblem[],
): Promise<void> {
  const wanted = new Map<string, CheckProblem[]>();
  for (const p of problems) for (const b of p.blobs) wanted.set(b, [...(wanted.get(b) ?? []), p]);
  if (wanted.size === 0) return;
  for (const s of snapshots) {
    const hits = new Map<CheckProblem, Set<string>>();
    const note = (p: CheckProblem, path: string) => {
      const set = hits.get(p);
      if (set) set.add(path);
      else hits.set(p, new Set([path]));
    };
    await walkTree(repo, s.tree, {
      enterTree(tree, prefix) {
        for (const p of wanted.get(tree) ?? []) note(p, prefix || "/");
        return true;
      },
      node(n, path) {
        for (const c of n.content ?? []) for (const p of wanted.get(c) ?? []) note(p, path);
        return undefined;
      },
      unreadable() {},
    });
    for (const [p, paths] of hits)
      p.affected.push({ snapshot: s.id, time: s.time, paths: [...paths].sort() });
  }
}

/**
 * `check --read-data`'s reading of packs: every pack the index lists and storage holds (or the
 * `subset`), each read once more before a fault is called damage. Problems go to `problems`.
 */
async function readData(
  repo: Repository,
  options: CheckOptions,
  byPack: PackBlobs,
  stored: Map<string, number>,
  problems: CheckProblem[],
  signal: AbortSignal,
): Promise<{ packsRead: number; bytesRead: number }> {
  let packsRead = 0;
  let bytesRead = 0;
  const selected = selectPacks([...byPack.keys()].filter((p) => stored.has(p)).sort(), options.subset);
  const progress = new ProgressCounter(options.onProgress);
  progress.setTotals(
    selected.length,
    selected.reduce((n, p) => n + (stored.get(p) ?? 0), 0),
  );
  await mapLimit(selected, PACKS_IN_FLIGHT, async (packId) => {
    signal.throwIfAborted();
    const what = names.pack(packId);
    const expected = byPack.get(packId);
    const size = stored.get(packId)!;
    let verdict: Awaited<ReturnType<Repository["verifyPack"]>>;
    try {
      verdict = await repo.verifyPack(packId, size, expected);
      // Read once more before calling it damage: storage may answer short or garbled once.
      if (verdict.damaged.length > 0 || !verdict.nameMatches)
        verdict = await repo.verifyPack(packId, size, expected);
    } catch (e) {
      // Storage that cannot be reached is not a damaged repository: that fails the check.
      if (!(e instanceof LifeboatError) || e.code !== "NOT_FOUND") throw e;
      problems.push({
        kind: "missing-pack",
        object: what,
        message: (e as Error).message,
        blobs: ids(expected),
        affected: [],
        neededBy: [],
      });
      return;
    }
    packsRead++;
    bytesRead += verdict.bytesRead;
    progress.addBytes(verdict.bytesRead);
    let header: ReturnType<Repository["readPackHeader"]> | Error;
    try {
      header = repo.readPackHeader(verdict.header, what);
    } catch (e) {
      header = e as Error;
    }
    const damaged = ids(verdict.damaged);
    if (damaged.length > 0) {
      problems.push({
        kind: "damaged-blob",
        object: what,
        message: `${damaged.length} of ${expected.length} blob(s) fail verification (data was modified or damaged)`,
        blobs: damaged,
        affected: [],
        neededBy: [],
      });
    } else if (!verdict.nameMatches) {
      problems.push({
        kind: "damaged-pack",
        object: what,
        message: "content does not match its name (SHA-256), outside the blobs the index uses",
        blobs: [],
        affected: [],
        neededBy: [],
      });
    } else {
      try {
        if (header instanceof Error) throw header;
        const inIndex = new Set(ids(expected));
        const notIndexed = header.filter((h) => !inIndex.has(h.id.toString("hex")));
        if (header.length !== expected.length || notIndexed.length > 0) {
          problems.push({
            kind: "index-mismatch",
            object: what,
            message: `pack header lists ${header.length} blob(s), the index ${expected.length}`,
            blobs: ids(notIndexed),
            affected: [],
            neededBy: [],
          });
        }
      } catch (e) {
        problems.push({
          kind: "damaged-pack",
          object: what,
          message: (e as Error).message,
          blobs: [],
          affected: [],
          neededBy: [],
        });
      }
    }
    progress.addFile();
  });
  progress.finish();
  return { packsRead, bytesRead };
}
