import type { BigIntStats } from "node:fs";
import fsSync, { promises as fs } from "node:fs";
import path from "node:path";
import { errnoCode, itemError, LifeboatError } from "../../core/errors.js";
import { Excludes } from "../../snapshot/excludes.js";
import type { SourceDir, SourceEntry, TreeSource } from "../../snapshot/source.js";
import { statMeta } from "../../snapshot/tree-builder.js";
import { scanTotals } from "./scan.js";

export interface FilesOptions {
  /** gitignore-style patterns, relative to each backed-up path. */
  excludes?: string[];
  /** Files of such patterns. */
  excludeFiles?: string[];
  /** Do not descend into other file systems (mount points are kept, empty). */
  oneFileSystem?: boolean;
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
      await fs.lstat(p);
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
  const walk: Walk = { excludes, oneFs: options.oneFileSystem ?? false };
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
    root: whole
      ? diskDir(walk, "/", "/", fsSync.lstatSync("/", { bigint: true }).dev)
      : virtualDir(walk, root, "/"),
    scanTotals: () => scanTotals(paths, excludes, walk.oneFs),
  };
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
          const e = diskEntry(walk, p, name, p, undefined);
          if (e) out.push(e);
          continue;
        }
        let st: BigIntStats;
        try {
          st = await fs.lstat(p, { bigint: true });
        } catch (e) {
          out.push({ kind: "failed", name, error: itemError(p, e, "UNREADABLE") });
          continue;
        }
        out.push({ kind: "dir", name, meta: statMeta(st), dir: virtualDir(walk, child, p) });
      }
      return out;
    },
  };
}

/** A folder on disk; `rootArg` is the backup argument it was found under (excludes match
 * relative to it), `rootDev` that argument's device (for --one-file-system). */
function diskDir(walk: Walk, p: string, rootArg: string, rootDev: bigint | undefined): SourceDir {
  return {
    path: p,
    async entries() {
      const names = await fs.readdir(p);
      const out: SourceEntry[] = [];
      for (const name of names) {
        const e = diskEntry(walk, path.join(p, name), name, rootArg, rootDev);
        if (e) out.push(e);
      }
      return out;
    },
  };
}

/** One directory entry, or undefined when it is excluded or vanished since it was listed. */
function diskEntry(
  walk: Walk,
  p: string,
  name: string,
  rootArg: string,
  rootDev: bigint | undefined,
): SourceEntry | undefined {
  let st: BigIntStats;
  try {
    // Synchronous: measured faster than a trip through the thread pool, even with a cold cache
    // (10,000 files: 38-69 ms against 100-145 ms).
    st = fsSync.lstatSync(p, { bigint: true });
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return undefined; // vanished since readdir: not an error
    return { kind: "failed", name, error: itemError(p, e, "UNREADABLE") };
  }
  const rel = path.relative(rootArg, p).split(path.sep).join("/");
  if (walk.excludes.excluded(rel, st.isDirectory())) return undefined;
  const meta = statMeta(st);
  if (st.isDirectory()) {
    const dev = rootDev ?? st.dev;
    if (walk.oneFs && rootDev !== undefined && st.dev !== rootDev) {
      // Keep the mount point itself (empty), as restic does, so the tree shape stays familiar.
      return { kind: "dir", name, meta, dir: { path: p, entries: async () => [] } };
    }
    return { kind: "dir", name, meta, dir: diskDir(walk, p, rootArg, dev) };
  }
  if (st.isSymbolicLink()) {
    try {
      return { kind: "symlink", name, meta, target: fsSync.readlinkSync(p) };
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
      content: { kind: "path", path: p },
    };
  }
  const kind = st.isSocket()
    ? "socket"
    : st.isFIFO()
      ? "FIFO"
      : st.isCharacterDevice() || st.isBlockDevice()
        ? "device"
        : "special file";
  return { kind: "skipped", name, warning: `skipped ${kind} ${p}` };
}
