import type { BigIntStats } from "node:fs";
import fsSync, { promises as fs } from "node:fs";
import path from "node:path";
import { errnoCode, itemError, LifeboatError } from "../../core/errors.js";
import { displayName, fsPath, joinName, nameFromBytes, relativeBelow } from "../../core/names.js";
import { listNames } from "../../fsio/list-names.js";
import { nativeUnavailable, readXattrs } from "../../fsio/native.js";
import { Excludes } from "../../snapshot/excludes.js";
import type { SourceDir, SourceEntry, TreeSource, XattrReader } from "../../snapshot/source.js";
import { statMeta } from "../../snapshot/tree-builder.js";
import { scanTotals } from "./scan.js";

export interface FilesOptions {
  /** gitignore-style patterns, relative to each backed-up path. */
  excludes?: string[];
  /** Files of such patterns. */
  excludeFiles?: string[];
  /** Do not descend into other file systems (mount points are kept, empty). */
  oneFileSystem?: boolean;
  /** Keep extended attributes (POSIX ACLs, SELinux labels, capabilities...); default true. */
  xattrs?: boolean;
  /** Read from another place than the recorded paths (a file-system snapshot of them). */
  readFrom?: ReadFrom;
}

/**
 * Where to read what is recorded under other paths: a file-system snapshot holds the same
 * files at another path, on another device. Paths, names and device numbers are recorded as
 * the originals', so the next backup (with or without a snapshot) finds its parent and
 * recognises unchanged files and folders.
 */
export interface ReadFrom {
  /** Recorded path → the path to read it from: a backed-up path, or any folder below one (a
   * nested subvolume's own snapshot, a mount point read live). */
  paths: ReadonlyMap<string, string>;
  /** Device number where it is read → the original's, recorded instead. */
  devices?: ReadonlyMap<bigint, bigint>;
  /** Recorded paths left out (lifeboat's own snapshots, repository and state). */
  skip?: ReadonlySet<string>;
}

/**
 * Resolves the paths to back up and checks each exists, before anything is written: a typo in
 * a path never leaves a repository (or a default one) behind. Returns sorted absolute paths.
 */
export async function checkSourcePaths(paths: string[]): Promise<string[]> {
  if (paths.length === 0)
    throw new LifeboatError("USAGE", "no paths to back up", "give one or more files or folders (or --stdin)");
  const abs = [...new Set(paths.map((p) => path.resolve(p)))].sort();
  for (const p of abs) {
    try {
      await fs.lstat(fsPath(p));
    } catch (e) {
      throw new LifeboatError(
        errnoCode(e) === "ENOENT" ? "USAGE" : "SOURCE_UNREADABLE",
        `cannot back up ${p}: ${errnoCode(e) === "ENOENT" ? "it does not exist" : (e as Error).message}`,
        "check the path (nothing was written to the repository)",
      );
    }
  }
  return abs;
}

interface Walk {
  excludes: Excludes;
  oneFs: boolean;
  xattrs: boolean;
  readFrom: ReadonlyMap<string, string>;
  devices: ReadonlyMap<bigint, bigint>;
  skip: ReadonlySet<string>;
}

/** Where a recorded path is read: its own entry in `readFrom`, else `inRead` (its path under
 * its folder's read path). */
const readPath = (walk: Walk, rec: string, inRead: string) => walk.readFrom.get(rec) ?? inRead;

/** The device number recorded for what is read on `dev`. */
const deviceOf = (walk: Walk, dev: bigint) => walk.devices.get(dev) ?? dev;

function metaOf(walk: Walk, st: BigIntStats) {
  const meta = statMeta(st);
  const dev = walk.devices.get(st.dev);
  if (dev !== undefined) meta.device = dev.toString();
  return meta;
}

/** A virtual folder above the backed-up paths: `/home/ann/docs` puts home → ann → docs. */
interface VDir {
  children: Map<string, VDir | { target: string }>;
}

/**
 * Files and folders on this machine as a tree source. The snapshot's root tree mirrors the
 * absolute paths (backing up `/home/ann/docs` gives `home` → `ann` → `docs`); `paths` must
 * have been checked by `checkSourcePaths`.
 */
export function filesSource(paths: string[], options: FilesOptions = {}): TreeSource {
  const excludes = Excludes.fromFiles(options.excludes ?? [], options.excludeFiles ?? []);
  const unavailable = options.xattrs === false ? undefined : nativeUnavailable();
  const walk: Walk = {
    excludes,
    oneFs: options.oneFileSystem ?? false,
    xattrs: options.xattrs !== false && unavailable === undefined,
    readFrom: options.readFrom?.paths ?? new Map(),
    devices: options.readFrom?.devices ?? new Map(),
    skip: options.readFrom?.skip ?? new Set(),
  };
  const root: VDir = { children: new Map() };
  for (const p of paths) {
    const parts = p.split(path.sep).filter(Boolean);
    let dir = root;
    for (let i = 0; i < parts.length - 1; i++) {
      let next = dir.children.get(parts[i]!);
      if (!next || "target" in next) {
        next = { children: new Map() };
        dir.children.set(parts[i]!, next);
      }
      dir = next;
    }
    // "/" itself as a path: back up the whole filesystem under the root tree.
    if (parts.length === 0) root.children.set("", { target: "/" });
    else dir.children.set(parts.at(-1)!, { target: p });
  }
  const whole = root.children.has("");
  return {
    paths,
    excludes: excludes.patterns,
    xattrs: walk.xattrs,
    ...(unavailable ? { warnings: [`extended attributes are not backed up: ${unavailable}`] } : {}),
    root: whole
      ? diskDir(walk, "/", readPath(walk, "/", "/"), "/", rootDevice(walk, "/"))
      : virtualDir(walk, root, "/"),
    scanTotals: () =>
      scanTotals(
        paths.map((p) => readPath(walk, p, p)),
        excludes,
        walk.oneFs,
      ),
  };
}

function rootDevice(walk: Walk, rec: string): bigint {
  return deviceOf(walk, fsSync.lstatSync(fsPath(readPath(walk, rec, rec)), { bigint: true }).dev);
}

function virtualDir(walk: Walk, vdir: VDir, dirPath: string): SourceDir {
  return {
    path: dirPath,
    synthetic: true,
    async entries() {
      const out: SourceEntry[] = [];
      for (const [name, child] of vdir.children) {
        const p = path.join(dirPath, name);
        if ("target" in child) {
          const e = diskEntry(walk, p, readPath(walk, p, p), name, p, undefined);
          if (e === "vanished")
            out.push({
              kind: "failed",
              name,
              error: { path: p, code: "UNREADABLE", message: "it no longer exists" },
            });
          else if (e) out.push(e);
          continue;
        }
        let st: BigIntStats;
        try {
          st = await fs.lstat(fsPath(p), { bigint: true });
        } catch (e) {
          out.push({ kind: "failed", name, error: itemError(p, e, "UNREADABLE") });
          continue;
        }
        out.push({ kind: "dir", name, meta: metaOf(walk, st), dir: virtualDir(walk, child, p) });
      }
      return out;
    },
  };
}

/**
 * A folder on disk, recorded as `p` and read at `read` (the same path unless it is read from a
 * file-system snapshot); `rootArg` is the backup argument it was found under (excludes match
 * relative to it), `rootDev` that argument's device as recorded (for --one-file-system).
 *
 * Every name the listing returns ends up as an entry, a failed entry (the snapshot's errors) or
 * excluded by the user's rules. The one silent case is a name that vanished between the listing
 * and its lstat, and only once a second listing confirms it is gone.
 */
function diskDir(
  walk: Walk,
  p: string,
  read: string,
  rootArg: string,
  rootDev: bigint | undefined,
): SourceDir {
  return {
    path: p,
    async entries() {
      const names = await listNames(read);
      const out: SourceEntry[] = [];
      let again: Set<string> | undefined;
      for (const name of names) {
        const child = joinName(p, name);
        if (walk.skip.has(child)) continue;
        const e = diskEntry(
          walk,
          child,
          readPath(walk, child, read === p ? child : joinName(read, name)),
          name,
          rootArg,
          rootDev,
        );
        if (e !== "vanished") {
          if (e) out.push(e);
          continue;
        }
        if (!again) {
          try {
            again = new Set(await listNames(read));
          } catch (err) {
            if (errnoCode(err) !== "ENOENT") throw err;
            again = new Set(); // the folder itself is gone, and everything in it
          }
        }
        if (again.has(name)) {
          out.push({
            kind: "failed",
            name,
            error: {
              path: child,
              code: "UNREADABLE",
              message: "its folder lists it, but lstat says it does not exist",
            },
          });
        }
      }
      return out;
    },
  };
}

/** Extended attributes of `p` itself, values in base64 (the tree's form). */
const xattrReader =
  (p: string): XattrReader =>
  () =>
    readXattrs(p).map((x) => ({ name: x.name, value: x.value.toString("base64") }));

/**
 * One directory entry, recorded as `p` and read at `read`; undefined when the user's rules
 * exclude it, "vanished" when lstat says it does not exist (the caller lists the folder again to
 * tell a vanished file from a failure).
 */
function diskEntry(
  walk: Walk,
  p: string,
  read: string,
  name: string,
  rootArg: string,
  rootDev: bigint | undefined,
): SourceEntry | "vanished" | undefined {
  let st: BigIntStats;
  try {
    // Synchronous: measured faster than a trip through the thread pool, even with a cold cache
    // (10,000 files: 38-69 ms against 100-145 ms).
    st = fsSync.lstatSync(fsPath(read), { bigint: true });
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return "vanished";
    return { kind: "failed", name, error: itemError(p, e, "UNREADABLE") };
  }
  const rel = relativeBelow(rootArg, p) ?? path.relative(rootArg, p).split(path.sep).join("/");
  if (walk.excludes.excluded(rel, st.isDirectory())) return undefined;
  const meta = metaOf(walk, st);
  const xattrs = walk.xattrs ? { xattrs: xattrReader(read) } : {};
  if (st.isDirectory()) {
    const dev = rootDev ?? deviceOf(walk, st.dev);
    if (walk.oneFs && rootDev !== undefined && deviceOf(walk, st.dev) !== rootDev) {
      // Keep the mount point itself (empty), as restic does, so the tree shape stays familiar.
      return { kind: "dir", name, meta, ...xattrs, dir: { path: p, entries: async () => [] } };
    }
    return { kind: "dir", name, meta, ...xattrs, dir: diskDir(walk, p, read, rootArg, dev) };
  }
  if (st.isSymbolicLink()) {
    try {
      const target = nameFromBytes(fsSync.readlinkSync(fsPath(read), { encoding: "buffer" }));
      return { kind: "symlink", name, meta, ...xattrs, target };
    } catch (e) {
      return { kind: "failed", name, error: itemError(p, e, "UNREADABLE") };
    }
  }
  if (st.isFile()) {
    return {
      kind: "file",
      name,
      meta,
      size: Number(st.size),
      ...(st.nlink > 1n ? { links: Number(st.nlink) } : {}),
      content: { kind: "path", path: read },
      ...xattrs,
    };
  }
  if (st.isFIFO()) return { kind: "special", name, type: "fifo", meta, ...xattrs };
  if (st.isCharacterDevice() || st.isBlockDevice()) {
    const type = st.isCharacterDevice() ? "chardev" : "blockdev";
    return { kind: "special", name, type, meta, rdev: st.rdev.toString(), ...xattrs };
  }
  // Sockets are made by the program that listens on them: nothing to restore (as restic).
  const kind = st.isSocket() ? "socket" : "special file";
  return { kind: "skipped", name, warning: `skipped ${kind} ${displayName(p)}` };
}
