import fsSync from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { errnoCode, LifeboatError } from "../../core/errors.js";
import { displayName, fsPath } from "../../core/names.js";
import type { Excludes } from "../../snapshot/excludes.js";
import {
  checkBtrfsTools,
  checkOnBtrfs,
  childSubvolumes,
  deleteSubvolumes,
  deleteSubvolumesSync,
  isSubvolumeRoot,
  snapshotReadOnly,
  subvolumeRootOf,
} from "./btrfs.js";
import { runCleanup, runCleanupSync, runCreate } from "./hook.js";
import { isBelow, mountsBelow, syncFileSystems } from "./mounts.js";
import { keptName, newFreezeName, ownerAlive, ownerOfName, thisOwner } from "./owner.js";
import { type FreezeRecord, removeRecord, writeRecord } from "./registry.js";

/** How to freeze the paths before reading them. */
export type FsSnapshotSpec =
  | { kind: "btrfs" }
  /** The user's commands (hook.ts): LVM, ZFS, a storage array... */
  | { kind: "command"; create: string; cleanup: string };

/** The folder at the root of a subvolume that holds lifeboat's btrfs snapshots of it. */
export const SNAPSHOT_DIR = ".lifeboat-snapshots";

export interface FreezeOptions {
  /** Where the records of snapshots are kept (registry.ts). */
  stateDir: string;
  /** --one-file-system: nested subvolumes and mounts are left empty, so they are not frozen. */
  oneFileSystem?: boolean;
  /** The backup's exclude rules: a nested subvolume they exclude is not snapshotted. */
  excludes?: Excludes;
  /** lifeboat's own files (its repository, its state): left out when below a backed-up path. */
  ownPaths?: { path: string; what: string }[];
}

export interface FrozenSnapshot {
  /** What was frozen: a subvolume (btrfs) or a backed-up path (command). */
  of: string;
  /** The snapshot (btrfs) or the path the command printed. */
  path: string;
  /** How long making it took. */
  ms: number;
}

/** The same shape as the files source's `ReadFrom` (sources/files/files-source.ts). */
export interface FrozenView {
  paths: Map<string, string>;
  devices: Map<bigint, bigint>;
  skip: Set<string>;
}

export interface Frozen {
  kind: FsSnapshotSpec["kind"];
  /** The freeze's name (owner.ts); each snapshot's name starts with it. */
  name: string;
  /** From the start of the first snapshot to the end of the last. */
  freezeMs: number;
  snapshots: FrozenSnapshot[];
  /** Where to read each backed-up path, and what to record instead. */
  view: FrozenView;
  /** Nested subvolumes frozen with their own snapshots (each a moment after the one above it). */
  nested: string[];
  /** Mount points below the paths: other file systems, read live (or left empty by -x). */
  mounts: string[];
  warnings: string[];
  /** Removes the snapshots (once; later calls do nothing). */
  release(): Promise<void>;
  /**
   * Keeps the snapshots for a guard's rollback until one of `snapshotIds` is acknowledged
   * (`releaseKept`); btrfs snapshots are renamed `lifeboat-guard-<before>-...` so that no sweep
   * takes them. Returns where each recorded path can now be read.
   */
  keep(snapshotIds: string[], sources: string[]): Promise<Map<string, string>>;
}

const rel = (from: string, to: string) => path.relative(from, to).split(path.sep).join("/");

/** Whether the backup's rules exclude `p` (below backed-up path `root`) or a folder above it. */
function excludedBelow(excludes: Excludes | undefined, root: string, p: string): boolean {
  if (!excludes) return false;
  const parts = rel(root, p).split("/");
  for (let i = 1; i <= parts.length; i++)
    if (excludes.excluded(parts.slice(0, i).join("/"), true)) return true;
  return false;
}

/** Keeps a set of snapshots removed when the process exits (SIGINT and SIGTERM exit too). */
class ExitGuard {
  private readonly fn = () => this.onExit();
  private armed = false;
  constructor(private readonly onExit: () => void) {}
  arm() {
    if (!this.armed) process.on("exit", this.fn);
    this.armed = true;
  }
  disarm() {
    if (this.armed) process.off("exit", this.fn);
    this.armed = false;
  }
}

/** Checks, before anything is opened or made, that `paths` (absolute) can be frozen so. */
export async function checkFreeze(paths: string[], spec: FsSnapshotSpec): Promise<void> {
  if (spec.kind !== "btrfs") return;
  for (const p of paths) checkOnBtrfs(p);
  await checkBtrfsTools();
}

/**
 * Freezes `paths` (absolute, checked) before they are read: one read-only snapshot per btrfs
 * subvolume involved, or one run of the user's command per path. The caller reads through
 * `view` and calls `release()` whatever happens; a crash is covered by the record (sweep.ts).
 */
export async function freeze(paths: string[], spec: FsSnapshotSpec, opts: FreezeOptions): Promise<Frozen> {
  const own = (opts.ownPaths ?? []).map((o) => ({ ...o, path: path.resolve(o.path) }));
  const skipOwn = new Set<string>();
  const warnings: string[] = [];
  for (const o of own)
    for (const p of paths)
      if (isBelow(o.path, p)) {
        skipOwn.add(o.path);
        warnings.push(`left out ${displayName(o.path)}: it holds lifeboat's ${o.what}`);
      }
  const mounts = paths.flatMap((p) =>
    mountsBelow(p).filter((m) => ![...skipOwn].some((s) => m === s || isBelow(m, s))),
  );
  return spec.kind === "btrfs"
    ? freezeBtrfs(paths, opts, skipOwn, mounts, warnings)
    : freezeCommand(paths, spec, opts, skipOwn, mounts, warnings);
}

function mountWarnings(paths: string[], mounts: string[], oneFs: boolean, warnings: string[]): void {
  if (oneFs || mounts.length === 0) return;
  for (const p of paths) {
    const below = mounts.filter((m) => isBelow(m, p));
    if (below.length === 0) continue;
    const shown = below.slice(0, 5).map(displayName).join(", ");
    warnings.push(
      `${below.length} other file system(s) mounted below ${displayName(p)} are read live, not from the snapshot: ${shown}${below.length > 5 ? ", ..." : ""} (--one-file-system leaves them out)`,
    );
  }
}

async function freezeBtrfs(
  paths: string[],
  opts: FreezeOptions,
  skipOwn: Set<string>,
  mounts: string[],
  warnings: string[],
): Promise<Frozen> {
  for (const p of paths) checkOnBtrfs(p);
  await checkBtrfsTools();
  // The subvolumes to snapshot: each one holding a backed-up path, then every subvolume nested
  // below a backed-up path (unless excluded or --one-file-system), each snapshot kept in the
  // snapshot folder of the holding subvolume it was found under.
  const holding = new Map<string, string>(); // backed-up path → its subvolume's root
  const home = new Map<string, string>(); // subvolume root → where its snapshot goes
  for (const p of paths) {
    const root = subvolumeRootOf(p);
    holding.set(p, root);
    if (!home.has(root)) home.set(root, root);
  }
  const liveNested: string[] = [];
  const nested: string[] = [];
  const queue = [...home.keys()];
  for (let i = 0; i < queue.length; i++) {
    const x = queue[i]!;
    for (const c of await childSubvolumes(x)) {
      const under = paths.find((p) => isBelow(c, p));
      if (!under || home.has(c)) continue;
      if (rel(under, c).split("/").includes(SNAPSHOT_DIR)) continue; // lifeboat's own snapshots
      if ([...skipOwn].some((s) => c === s || isBelow(c, s))) continue;
      if (excludedBelow(opts.excludes, under, c)) continue;
      if (opts.oneFileSystem) {
        liveNested.push(c);
        continue;
      }
      home.set(c, home.get(x)!);
      nested.push(c);
      queue.push(c);
    }
  }
  mountWarnings(paths, mounts, opts.oneFileSystem ?? false, warnings);

  for (const h of new Set(home.values())) {
    const dir = path.join(h, SNAPSHOT_DIR);
    try {
      fsSync.mkdirSync(fsPath(dir), { mode: 0o700 });
    } catch (e) {
      if (errnoCode(e) !== "EEXIST")
        throw new LifeboatError(
          "FS_SNAPSHOT",
          `cannot make ${displayName(dir)} for the btrfs snapshot: ${(e as Error).message}`,
          errnoCode(e) === "EROFS"
            ? "the subvolume is read-only and cannot change: back up without --fs-snapshot"
            : "check that folder",
        );
    }
    warnings.push(...(await sweepSnapshotDir(dir)));
  }

  const name = newFreezeName();
  const roots = [...home.keys()];
  const dest = new Map(roots.map((r, i) => [r, path.join(home.get(r)!, SNAPSHOT_DIR, `${name}-${i}`)]));
  const record: FreezeRecord = {
    version: 1,
    name,
    kind: "btrfs",
    owner: thisOwner(),
    created: new Date().toISOString(),
    snapshots: roots.map((r) => ({ of: r, name: path.basename(dest.get(r)!), path: dest.get(r)! })),
  };
  writeRecord(opts.stateDir, record);
  let made: string[] = [];
  let inFlight = false;
  const exit = new ExitGuard(() => {
    try {
      deleteSubvolumesSync(made.filter(isSubvolumeRoot));
      if (!inFlight) removeRecord(opts.stateDir, name);
    } catch {
      // the record stays: the next start removes what is left
    }
  });
  exit.arm();
  const snapshots: FrozenSnapshot[] = [];
  // Dirty data is written out first: the snapshot then commits little more than metadata, and
  // the freeze is short even while applications write (docs/benchmarks.md).
  await syncFileSystems([...new Set(home.values())]);
  const t0 = performance.now();
  try {
    for (const r of roots) {
      const t = performance.now();
      inFlight = true;
      await snapshotReadOnly(r, dest.get(r)!);
      made.push(dest.get(r)!);
      inFlight = false;
      snapshots.push({ of: r, path: dest.get(r)!, ms: performance.now() - t });
    }
  } catch (e) {
    exit.disarm();
    await deleteSubvolumes(made.filter(isSubvolumeRoot)).catch(() => {});
    if (!inFlight) removeRecord(opts.stateDir, name);
    throw e;
  }
  const freezeMs = performance.now() - t0;

  const view: FrozenView = { paths: new Map(), devices: new Map(), skip: new Set(skipOwn) };
  const fill = () => {
    view.paths.clear();
    for (const [p, root] of holding) {
      const r = rel(root, p);
      view.paths.set(p, r === "" ? dest.get(root)! : path.join(dest.get(root)!, r));
    }
    for (const c of nested) view.paths.set(c, dest.get(c)!);
  };
  fill();
  for (const c of liveNested) view.paths.set(c, c);
  for (const m of mounts) view.paths.set(m, m);
  for (const r of roots) {
    view.devices.set(
      fsSync.lstatSync(fsPath(dest.get(r)!), { bigint: true }).dev,
      fsSync.lstatSync(fsPath(r), { bigint: true }).dev,
    );
    view.skip.add(path.join(r, SNAPSHOT_DIR));
  }

  let done = false;
  return {
    kind: "btrfs",
    name,
    freezeMs,
    snapshots,
    view,
    nested,
    mounts,
    warnings,
    async release() {
      if (done) return;
      done = true;
      exit.disarm();
      try {
        await deleteSubvolumes(made.filter(isSubvolumeRoot));
      } catch (e) {
        throw new LifeboatError(
          "FS_SNAPSHOT_CLEANUP",
          `could not remove the btrfs snapshot(s) ${made.join(", ")}: ${(e as Error).message}`,
          `remove them with \`btrfs subvolume delete\`, or let the next lifeboat backup with --fs-snapshot remove them (recorded in ${opts.stateDir})`,
        );
      }
      removeRecord(opts.stateDir, name);
    },
    async keep(snapshotIds, sources) {
      if (done) throw new Error("these snapshots are already released");
      done = true;
      exit.disarm();
      const renamed: string[] = [];
      for (const r of roots) {
        const from = dest.get(r)!;
        const to = path.join(path.dirname(from), keptName(path.basename(from), snapshotIds[0]!));
        fsSync.renameSync(fsPath(from), fsPath(to));
        dest.set(r, to);
        renamed.push(to);
      }
      made = renamed;
      fill();
      writeRecord(opts.stateDir, {
        ...record,
        snapshots: roots.map((r) => ({ of: r, name: path.basename(dest.get(r)!), path: dest.get(r)! })),
        kept: { snapshotIds, since: new Date().toISOString(), sources },
      });
      return new Map(view.paths);
    },
  };
}

/** Removes snapshots in a snapshot folder whose owner is gone; what it did, as warnings. */
async function sweepSnapshotDir(dir: string): Promise<string[]> {
  const gone: string[] = [];
  for (const n of fsSync.readdirSync(fsPath(dir))) {
    const owner = ownerOfName(n);
    const p = path.join(dir, n);
    if (owner && !ownerAlive(owner) && isSubvolumeRoot(p)) gone.push(p);
  }
  if (gone.length === 0) return [];
  await deleteSubvolumes(gone);
  return gone.map((p) => `removed ${p}, a snapshot left behind by a lifeboat that stopped`);
}

async function freezeCommand(
  paths: string[],
  spec: { create: string; cleanup: string },
  opts: FreezeOptions,
  skipOwn: Set<string>,
  mounts: string[],
  warnings: string[],
): Promise<Frozen> {
  mountWarnings(paths, mounts, opts.oneFileSystem ?? false, warnings);
  const name = newFreezeName();
  const record: FreezeRecord = {
    version: 1,
    name,
    kind: "command",
    owner: thisOwner(),
    created: new Date().toISOString(),
    snapshots: paths.map((p, i) => ({ of: p, name: `${name}-${i}` })),
    cleanup: spec.cleanup,
  };
  writeRecord(opts.stateDir, record);
  // Cleanup runs for every snapshot create was started for (a failed create may have left
  // something): the command must accept a snapshot that is not there.
  let started = 0;
  const exit = new ExitGuard(() => {
    let ok = true;
    for (const s of record.snapshots.slice(0, started))
      ok =
        runCleanupSync(spec.cleanup, { source: s.of, name: s.name, ...(s.path ? { path: s.path } : {}) }) &&
        ok;
    if (ok) removeRecord(opts.stateDir, name);
  });
  exit.arm();
  const cleanupAll = async () => {
    let first: unknown;
    const left: typeof record.snapshots = [];
    for (const s of record.snapshots.slice(0, started)) {
      try {
        await runCleanup(spec.cleanup, { source: s.of, name: s.name, ...(s.path ? { path: s.path } : {}) });
      } catch (e) {
        first ??= e;
        left.push(s);
      }
    }
    if (left.length === 0) removeRecord(opts.stateDir, name);
    else writeRecord(opts.stateDir, { ...record, snapshots: left });
    if (first) throw first;
  };
  const snapshots: FrozenSnapshot[] = [];
  const t0 = performance.now();
  try {
    for (const s of record.snapshots) {
      const t = performance.now();
      started++;
      s.path = await runCreate(spec.create, { source: s.of, name: s.name });
      writeRecord(opts.stateDir, record);
      snapshots.push({ of: s.of, path: s.path, ms: performance.now() - t });
    }
  } catch (e) {
    exit.disarm();
    await cleanupAll().catch(() => {});
    throw e;
  }
  const freezeMs = performance.now() - t0;
  const view: FrozenView = { paths: new Map(), devices: new Map(), skip: new Set(skipOwn) };
  for (const s of record.snapshots) {
    view.paths.set(s.of, s.path!);
    const from = fsSync.lstatSync(fsPath(s.path!), { bigint: true }).dev;
    const to = fsSync.lstatSync(fsPath(s.of), { bigint: true }).dev;
    if (from !== to) view.devices.set(from, to);
  }
  for (const m of mounts) view.paths.set(m, m);
  let done = false;
  return {
    kind: "command",
    name,
    freezeMs,
    snapshots,
    view,
    nested: [],
    mounts,
    warnings,
    async release() {
      if (done) return;
      done = true;
      exit.disarm();
      await cleanupAll();
    },
    async keep(snapshotIds, sources) {
      if (done) throw new Error("these snapshots are already released");
      done = true;
      exit.disarm();
      writeRecord(opts.stateDir, {
        ...record,
        kept: { snapshotIds, since: new Date().toISOString(), sources },
      });
      return new Map(view.paths);
    },
  };
}
