import { isRetained, LifeboatError } from "../../core/errors.js";
import type { BlobTypeValue } from "../../repo/blob.js";
import { names } from "../../repo/config.js";
import {
  deletePlan,
  endSession,
  listPlans,
  liveSessions,
  type Plan,
  replacePlan,
  type Session,
  type SessionHandle,
  startSession,
  writePlan,
} from "../../repo/gc-plan.js";
import type { Repository } from "../../repo/repository.js";
import { type PackMap, readPackMap } from "./pack-map.js";
import { smallPacks } from "./small-packs.js";
import { usedBlobs } from "./used.js";

export interface PruneOptions {
  /** Repack partly used packs until unused space is at most this share of the repository (0..100). */
  maxUnusedPercent?: number;
  /** Only sweep plans at least this old (ms). Sessions already protect running backups; a grace
   *  adds a margin for storage whose listings lag behind writes. Default 0. */
  graceMs?: number;
  /** Compute and print the plan, change nothing. */
  dryRun?: boolean;
  onStep?: (message: string) => void;
  /** Stops the prune between its steps; every step leaves a consistent repository (docs/gc.md). */
  signal?: AbortSignal;
}

export interface MarkResult {
  snapshots: number;
  packs: number;
  /** Packs with no used blob. */
  unusedPacks: string[];
  /** Partly used packs whose used blobs are copied into new packs. */
  repackPacks: string[];
  /** Small packs merged into full-size ones (their used blobs copied, like a repack). */
  smallPacks: string[];
  /** Packs in storage that no index lists (from interrupted backups). */
  unindexedPacks: string[];
  bytesTotal: number;
  bytesUnused: number;
  /** Bytes the plan frees once swept (whole packs deleted, minus what repacking rewrites). */
  bytesToFree: number;
  bytesRepacked: number;
  plan: string | undefined;
}

export interface SweepResult {
  plan: string;
  deletedPacks: number;
  bytesFreed: number;
  /** Packs kept because a snapshot written meanwhile needs them. */
  keptPacks: number;
  /** Objects whose deletion storage refused because they are under retention (kept). */
  retained: number;
  /** Those objects (packs stay in the plan; index files are superseded), with until when. */
  retainedObjects: RetainedObject[];
  /** The plan that now holds the packs under retention (replacing `plan`), if any. */
  replacedBy?: string;
}

export interface RetainedObject {
  object: string;
  /** ISO time the retention ends (absent when storage did not say: a legal hold). */
  until?: string;
  mode?: string;
  bytes: number;
}

export interface PruneResult {
  mark: MarkResult;
  swept: SweepResult[];
  /** Plans not swept yet, with why. */
  waiting: { plan: string; reason: string }[];
  /** Temporary files of interrupted writes removed (storage that has them: local folders). */
  temporaries: { files: number; bytes: number };
}

/** Temporary objects (a killed backup's half-written packs) go once this old: a writer still at
 * work writes to its own at least every pack piece, and finishes a pack long before. */
const TEMPORARY_AGE_MS = 24 * 3600_000;

const DEFAULT_MAX_UNUSED = 5;

/**
 * Removes data no snapshot needs, safely while other hosts back up (see docs/gc.md):
 * 1. sweep: every earlier plan whose waited-for backups have ended is carried out — packs a
 *    snapshot written meanwhile needs are kept, the index is rewritten without the rest, then
 *    they are deleted;
 * 2. mark: packs nothing needs, and partly used packs (after copying their used blobs into new
 *    packs), go into a new plan that waits for the backups running now.
 * With no backup running, the new plan is swept at once, so a single run frees the space.
 */
export async function prune(repo: Repository, options: PruneOptions = {}): Promise<PruneResult> {
  const step = (m: string) => {
    options.signal?.throwIfAborted();
    options.onStep?.(m);
  };
  const session = options.dryRun ? undefined : await exclusivePruneSession(repo);
  try {
    const swept: SweepResult[] = [];
    const waiting: { plan: string; reason: string }[] = [];
    if (!options.dryRun) await sweepReady(repo, options, swept, waiting, step);
    const mark = await markAndPlan(repo, options, step);
    if (!options.dryRun && mark.plan) {
      const w: typeof waiting = [];
      await sweepReady(repo, options, swept, w, step);
      waiting.push(...w.filter((x) => !waiting.some((y) => y.plan === x.plan)));
    }
    let temporaries = { files: 0, bytes: 0 };
    if (!options.dryRun && repo.backend.removeTemporaries) {
      step("removing temporary files of interrupted writes");
      temporaries = await repo.backend.removeTemporaries(Date.now() - TEMPORARY_AGE_MS);
    }
    return {
      mark,
      swept,
      waiting: waiting.filter((w) => !swept.some((s) => s.plan === w.plan)),
      temporaries,
    };
  } finally {
    if (session) await endSession(repo, session).catch(() => {});
  }
}

/**
 * Announces this prune; refuses when another prune (on any host) is already running. Any other
 * live prune session refuses, not only an older one: a prune that listed the sessions before
 * ours was stored saw only its own and is running, whatever its clock says about when it
 * started. Two prunes that store their sessions at the same moment may then both refuse; two
 * can never both run.
 */
async function exclusivePruneSession(repo: Repository): Promise<SessionHandle> {
  const session = await startSession(repo, "prune");
  let first: Awaited<ReturnType<typeof liveSessions>>[number] | undefined;
  try {
    first = (await liveSessions(repo)).find((s) => s.kind === "prune" && s.id !== session.id);
  } catch (e) {
    // Not left behind to block the next prune of this process (a daemon) for a day.
    await endSession(repo, session).catch(() => {});
    throw e;
  }
  if (first) {
    await endSession(repo, session).catch(() => {});
    throw new LifeboatError(
      "REPO_BUSY",
      `another prune is running on this repository (host ${first.host}, pid ${first.pid}, since ${first.started})`,
      "wait for it to finish; if that process is gone, its claim expires after a day (or remove sessions/" +
        `${first.id} by hand)`,
    );
  }
  return session;
}

async function markAndPlan(
  repo: Repository,
  options: PruneOptions,
  step: (m: string) => void,
): Promise<MarkResult> {
  step("loading index and snapshots");
  await repo.reloadIndex(true);
  repo.requireIntactIndex(); // packs a damaged index file lists would look unused
  const { used, snapshots } = await usedBlobs(repo);
  const map = await readPackMap(repo);
  const unusedPacks: string[] = [];
  const partly: { id: string; unused: number; used: number }[] = [];
  let bytesTotal = 0;
  let bytesUnused = 0;
  const usedIn = new Map<string, number>();
  for (const p of map.packs.values()) {
    if (repo.isDoomed(p.id) || p.size === undefined) continue; // already planned, or missing
    bytesTotal += p.size;
    let usedBytes = 0;
    let unusedBytes = 0;
    for (const b of p.blobs) {
      // A blob stored twice counts as used only where the index resolves it.
      const hex = b.id.toString("hex");
      if (used.has(hex) && repo.lookup(b.id)?.packId === p.id) usedBytes += b.length;
      else unusedBytes += b.length;
    }
    usedIn.set(p.id, usedBytes);
    if (usedBytes === 0) {
      unusedPacks.push(p.id);
      bytesUnused += p.size;
    } else if (unusedBytes > 0) {
      // Pack framing (prefix, header) is not counted as waste: every pack has it.
      partly.push({ id: p.id, unused: unusedBytes, used: usedBytes });
      bytesUnused += unusedBytes;
    }
  }
  const unindexedPacks = [...map.unindexed.keys()].filter((id) => !repo.isDoomed(id));
  const unindexedBytes = unindexedPacks.reduce((n, id) => n + (map.unindexed.get(id) ?? 0), 0);

  // Repack the most wasteful partly used packs until the rest is within the allowed share.
  const maxUnused = ((options.maxUnusedPercent ?? DEFAULT_MAX_UNUSED) / 100) * bytesTotal;
  let remaining = partly.reduce((n, p) => n + p.unused, 0);
  const repack: typeof partly = [];
  for (const p of partly.sort((a, b) => b.unused - a.unused)) {
    if (remaining <= maxUnused) break;
    repack.push(p);
    remaining -= p.unused;
  }
  // Small packs are merged into full-size ones (see small-packs.ts).
  const planned = new Set([...unusedPacks, ...repack.map((p) => p.id)]);
  const small = smallPacks(
    map,
    repo.config.packSize,
    (id) => planned.has(id) || repo.isDoomed(id),
    (id) => usedIn.get(id) ?? 0,
  );
  const bytesRepacked = [...repack, ...small].reduce((n, p) => n + p.used, 0);
  const result: MarkResult = {
    snapshots,
    packs: map.packs.size,
    unusedPacks,
    repackPacks: repack.map((p) => p.id),
    smallPacks: small.map((p) => p.id),
    unindexedPacks,
    bytesTotal,
    bytesUnused: bytesUnused + unindexedBytes,
    bytesToFree:
      unusedPacks.reduce((n, id) => n + (map.packs.get(id)?.size ?? 0), 0) +
      [...repack, ...small].reduce((n, p) => n + p.unused, 0) +
      unindexedBytes,
    bytesRepacked,
    plan: undefined,
  };
  const doomed = [...unusedPacks, ...result.repackPacks, ...result.smallPacks, ...unindexedPacks];
  if (options.dryRun || doomed.length === 0) return result;

  if (repack.length + small.length > 0) {
    step(`repacking ${repack.length} partly used and ${small.length} small pack(s)`);
    await repackUsed(repo, map, new Set([...result.repackPacks, ...result.smallPacks]), used);
  }
  result.plan = (await writePlan(repo, doomed)).id;
  step(`planned ${doomed.length} pack(s) for deletion`);
  return result;
}

/** Copies the used blobs of the given packs into new packs (and a new index file). */
async function repackUsed(
  repo: Repository,
  map: PackMap,
  packs: Set<string>,
  used: Set<string>,
): Promise<void> {
  // Marking them doomed first makes saveBlob store a fresh copy instead of deduplicating.
  repo.doomPacks(packs);
  await repo.withWriter(async (w) => {
    for (const id of packs) {
      for (const b of map.packs.get(id)?.blobs ?? []) {
        const hex = b.id.toString("hex");
        if (!used.has(hex) || w.hasBlob(b.id)) continue;
        await w.saveBlob(b.type as BlobTypeValue, await repo.loadBlob(b.id), b.id);
      }
    }
  });
}

type Lock = { until?: string; mode?: string };

/** Compliance retention cannot be lifted: nothing is tried before its date. */
const lockedFor = (lock: Lock | undefined, now: number) =>
  lock?.mode === "compliance" && lock.until !== undefined && Date.parse(lock.until) > now;

/** Carries out every plan that is old enough and whose waited-for backups have all ended. */
async function sweepReady(
  repo: Repository,
  options: PruneOptions,
  swept: SweepResult[],
  waiting: { plan: string; reason: string }[],
  step: (m: string) => void,
): Promise<void> {
  const plans = await listPlans(repo);
  if (plans.length === 0) return;
  const live = new Map((await liveSessions(repo)).map((s) => [s.id, s]));
  const now = Date.now();
  const ready: Plan[] = [];
  for (const plan of plans) {
    const reason = notReady(plan, live, options.graceMs ?? 0, now);
    if (reason) waiting.push({ plan: plan.id, reason });
    else ready.push(plan);
  }
  if (ready.length === 0) return;
  step(`sweeping ${ready.length} plan(s)`);
  // A fresh view: snapshots and index files written by the sessions we waited for count now.
  await repo.reloadIndex(true);
  repo.requireIntactIndex(); // packs a damaged index file lists would look unused
  const { used } = await usedBlobs(repo);
  const map = await readPackMap(repo);
  const planned = new Set(ready.flatMap((p) => p.packs));
  const keep = new Set<string>();
  for (const id of planned) {
    const pack = map.packs.get(id);
    if (!pack) continue; // unindexed (or already gone): nothing can need it
    const stillNeeded = pack.blobs.some((b) => {
      if (!used.has(b.id.toString("hex"))) return false;
      return !elsewhere(repo, b.id, planned);
    });
    if (stillNeeded) keep.add(id);
  }
  // What earlier sweeps learnt about packs storage refused to delete.
  const known = new Map<string, Lock>();
  for (const plan of ready) for (const [id, lock] of Object.entries(plan.retained ?? {})) known.set(id, lock);
  const del = new Set(
    [...planned].filter((id) => !keep.has(id) && (map.packs.has(id) || map.unindexed.has(id))),
  );
  const size = (id: string) => map.packs.get(id)?.size ?? map.unindexed.get(id) ?? 0;
  const retained: RetainedObject[] = [];
  const remove = async (name: string, bytes: number): Promise<Lock | undefined> => {
    try {
      await repo.backend.delete(name);
      return undefined;
    } catch (e) {
      if ((e as { code?: string }).code === "NOT_FOUND") return undefined;
      // Objects under Object Lock retention refuse deletion: they stay until it ends.
      if (!isRetained(e)) throw e;
      const lock: Lock = {
        ...(e.retainUntil ? { until: e.retainUntil.toISOString() } : {}),
        ...(e.mode ? { mode: e.mode } : {}),
      };
      retained.push({ object: name, ...lock, bytes });
      return lock;
    }
  };
  // 1. an index without the planned packs, replacing the files it was built from (only when a
  // planned pack is still indexed: packs a locked plan keeps are out of the index already, and
  // every index file written under retention stays as long as the retention);
  // 2. the old index files (a crash before this leaves them superseded, which loadIndex skips;
  // superseded files under retention stay superseded until their retention ends);
  if ([...del].some((id) => map.packs.has(id))) {
    const packs = [...map.packs.values()].filter((p) => !del.has(p.id));
    const newIndex = await repo.writeIndexFile({
      supersedes: [...map.indexFiles, ...map.supersededFiles],
      packs: packs.map((p) => ({ id: p.id, blobs: p.blobs })),
    });
    for (const f of [...map.indexFiles, ...map.supersededFiles])
      if (f !== newIndex) await remove(names.index(f), 0);
  } else for (const f of map.supersededFiles) await remove(names.index(f), 0);
  // 3. the packs; 4. the plans. A crash in between leaves plans naming deleted packs: harmless.
  const stillLocked = new Map<string, Lock>();
  for (const id of [...del]) {
    const lock = known.get(id);
    if (lockedFor(lock, now)) {
      retained.push({ object: names.pack(id), ...lock, bytes: size(id) });
      stillLocked.set(id, lock!);
      del.delete(id);
      continue;
    }
    const refused = await remove(names.pack(id), size(id));
    if (!refused) continue;
    stillLocked.set(id, refused);
    del.delete(id);
  }
  const freed = [...del].reduce((n, id) => n + size(id), 0);
  if (retained.length > 0) {
    const last = retained
      .map((r) => r.until ?? "")
      .sort()
      .at(-1);
    step(
      `${retained.length} object(s) are under retention${last ? ` (until ${last} at the latest)` : ""} and were kept; a prune after that deletes them`,
    );
  }
  const results: SweepResult[] = [];
  for (const plan of ready) {
    const mine = plan.packs.filter((p) => del.has(p));
    const kept = new Map(plan.packs.filter((p) => stillLocked.has(p)).map((p) => [p, stillLocked.get(p)!]));
    for (const p of kept.keys()) stillLocked.delete(p); // a pack in two plans stays in one
    const result: SweepResult = {
      plan: plan.id,
      deletedPacks: mine.length,
      bytesFreed: mine.reduce((n, id) => n + size(id), 0),
      keptPacks: plan.packs.filter((p) => keep.has(p)).length,
      retained: 0,
      retainedObjects: retained.filter((r) => kept.has(r.object.split("/").at(-1)!)),
    };
    // The plan stays for the packs storage refused to delete, with their dates.
    if (kept.size > 0) result.replacedBy = (await replacePlan(repo, plan, kept)).id;
    else await deletePlan(repo, plan);
    results.push(result);
  }
  // Index files belong to no plan: they are counted with the first plan swept.
  results[0]!.retainedObjects.push(...retained.filter((r) => r.object.startsWith("index/")));
  for (const r of results) r.retained = r.retainedObjects.length;
  swept.push(...results);
  step(`deleted ${del.size} pack(s), ${freed} bytes`);
  await repo.reloadIndex(true);
}

/**
 * Whether a blob has a copy in a pack that is not about to be deleted. The index resolves a blob
 * to a pack outside every plan whenever one exists (planned packs are indexed last); if it does
 * not, the pack is kept, which is always safe.
 */
function elsewhere(repo: Repository, id: Buffer, planned: Set<string>): boolean {
  const loc = repo.lookup(id);
  return loc !== undefined && !planned.has(loc.packId);
}

function notReady(plan: Plan, live: Map<string, Session>, graceMs: number, now: number): string | undefined {
  const retained = plan.retained ?? {};
  if (plan.packs.length > 0 && plan.packs.every((p) => lockedFor(retained[p], now))) {
    const first = plan.packs.map((p) => retained[p]!.until!).sort()[0]!;
    return `its ${plan.packs.length} pack(s) are under compliance retention, the first until ${first}`;
  }
  const age = now - Date.parse(plan.created);
  if (age < graceMs)
    return `grace period: ready ${new Date(Date.parse(plan.created) + graceMs).toISOString()}`;
  const running = plan.waitFor.map((id) => live.get(id)).filter((s): s is Session => s !== undefined);
  if (running.length > 0) {
    const s = running[0]!;
    return `waiting for ${running.length} backup(s) that started before it (e.g. host ${s.host}, pid ${s.pid}, since ${s.started})`;
  }
  return undefined;
}
