import type { BigIntStats } from "node:fs";
import fsSync, { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { mapLimit, Semaphore } from "../../core/concurrency.js";
import { errnoCode, LifeboatError } from "../../core/errors.js";
import type { FileStat } from "../../fsio/file-read.js";
import { matchesFilter } from "../../repo/find-snapshot.js";
import type { Repository } from "../../repo/repository.js";
import type { Snapshot, SnapshotWithId } from "../../repo/snapshot.js";
import { sameNode, type Tree, type TreeNode } from "../../repo/tree.js";
import { type AnomalyThresholds, DEFAULT_THRESHOLDS, detectAnomalies } from "../../snapshot/anomaly.js";
import { Excludes } from "../../snapshot/excludes.js";
import { type BackupProgress, ProgressCounter } from "../../snapshot/progress.js";
import { withSession } from "../../snapshot/session.js";
import { storeFile, storeStream } from "../../snapshot/store-file.js";
import { scanTotals } from "../../sources/files/scan.js";
import { VERSION } from "../../version.js";

export interface BackupOptions {
  excludes?: string[];
  excludeFiles?: string[];
  oneFileSystem?: boolean;
  tags?: string[];
  host?: string;
  /** Parent snapshot id; default: the newest snapshot of the same host and paths. */
  parent?: string;
  /** Re-read every file even if the parent says it is unchanged. */
  force?: boolean;
  /** Snapshot time (default now). */
  time?: Date;
  onProgress?: (p: BackupProgress) => void;
  /** Warnings that do not make the snapshot incomplete (skipped sockets, devices). */
  onWarning?: (message: string) => void;
  /** Thresholds for flagging a snapshot that looks like a wipe (false: do not check). */
  anomaly?: AnomalyThresholds | false;
}

export interface BackupSummary {
  files: number;
  dirs: number;
  bytes: number;
  filesNew: number;
  filesChanged: number;
  filesUnchanged: number;
  blobsAdded: number;
  bytesAdded: number;
  bytesStored: number;
  durationMs: number;
}

export interface BackupResult {
  snapshotId: string;
  snapshot: Snapshot;
  summary: BackupSummary;
  /** Paths that could not be read (the snapshot is marked incomplete). */
  errors: string[];
  warnings: string[];
}

interface Ctx {
  repo: Repository;
  excludes: Excludes;
  oneFs: boolean;
  force: boolean;
  errors: string[];
  warnings: string[];
  changed: string[];
  summary: BackupSummary;
  progress: ProgressCounter;
  onWarning: (m: string) => void;
  /** Bounds files being read at once, across all folders. */
  files: Semaphore;
  /** Large files hold a chunker arena of 2 x the maximum chunk size each: only a few at once. */
  largeFiles: Semaphore;
}

const ENTRIES_IN_FLIGHT = 8;
const FILES_IN_FLIGHT = 16;
const LARGE_FILES_IN_FLIGHT = 2;

/** A virtual directory above the backed-up paths: `/home/ann/docs` puts home → ann → docs. */
interface VDir {
  children: Map<string, VDir | { target: string }>;
}

const ns = (st: FileStat, which: "mtimeNs" | "ctimeNs") => st[which].toString();

function nodeMeta(name: string, st: FileStat): Omit<TreeNode, "type"> {
  return {
    name,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: ns(st, "mtimeNs"),
    ctime: ns(st, "ctimeNs"),
    inode: st.ino.toString(),
    device: st.dev.toString(),
  };
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

/** Backs up files and folders into a new snapshot. */
export async function backup(
  repo: Repository,
  paths: string[],
  options: BackupOptions = {},
): Promise<BackupResult> {
  const started = Date.now();
  const statsBefore = { ...repo.writeStats };
  const abs = await checkSourcePaths(paths);
  return withSession(repo, () => backupInSession(repo, abs, options, started, statsBefore));
}

async function backupInSession(
  repo: Repository,
  abs: string[],
  options: BackupOptions,
  started: number,
  statsBefore: typeof repo.writeStats,
): Promise<BackupResult> {
  const excludes = Excludes.fromFiles(options.excludes ?? [], options.excludeFiles ?? []);
  const host = options.host ?? os.hostname();
  const parent = await findParent(repo, options.parent, host, abs);
  const ctx: Ctx = {
    repo,
    excludes,
    oneFs: options.oneFileSystem ?? false,
    force: options.force ?? false,
    errors: [],
    warnings: [],
    changed: [],
    summary: emptySummary(),
    progress: new ProgressCounter(options.onProgress),
    onWarning: options.onWarning ?? (() => {}),
    files: new Semaphore(FILES_IN_FLIGHT),
    largeFiles: new Semaphore(LARGE_FILES_IN_FLIGHT),
  };
  // Totals for the ETA: the parent's, when there is one (a second walk would double the metadata
  // work of an incremental backup); otherwise a scan that runs beside the backup.
  const scan =
    parent?.summary && options.onProgress
      ? Promise.resolve(ctx.progress.setTotals(parent.summary.files, parent.summary.bytes))
      : options.onProgress
        ? scanTotals(abs, excludes, ctx.oneFs).then((t) => ctx.progress.setTotals(t.files, t.bytes))
        : Promise.resolve();

  const root: VDir = { children: new Map() };
  for (const p of abs) {
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

  let treeId: string;
  const whole = root.children.get("");
  if (whole && "target" in whole) {
    treeId = await saveDir(
      ctx,
      "/",
      "/",
      parent ? parent.tree : undefined,
      await fs.lstat("/", { bigint: true }),
    );
  } else {
    treeId = await saveVDir(ctx, root, "/", parent?.tree);
  }
  await scan.catch(() => {});
  ctx.progress.finish();
  // Invariant: every blob the snapshot references is uploaded and indexed before it is written.
  await repo.flush();
  addWriteStats(ctx.summary, repo, statsBefore);
  ctx.summary.durationMs = Date.now() - started;
  // A changed exclude list removes files on purpose: that is not compared as a wipe.
  const sameExcludes = parent && JSON.stringify(parent.excludes) === JSON.stringify(excludes.patterns);
  const anomalies =
    parent && sameExcludes && options.anomaly !== false
      ? (await detectAnomalies(repo, parent, treeId, undefined, options.anomaly ?? DEFAULT_THRESHOLDS))
          .reasons
      : [];
  const userInfo = safeUser();
  const snapshot: Snapshot = {
    version: 1,
    time: (options.time ?? new Date()).toISOString(),
    tree: treeId,
    paths: abs,
    hostname: host,
    username: userInfo.username,
    uid: userInfo.uid,
    gid: userInfo.gid,
    tags: options.tags ?? [],
    ...(parent ? { parent: parent.id } : {}),
    incomplete: ctx.errors.length > 0,
    errors: ctx.errors,
    ...(anomalies.length > 0 ? { anomalies } : {}),
    changedWhileReading: ctx.changed,
    excludes: excludes.patterns,
    program: `lifeboat ${VERSION}`,
    summary: ctx.summary,
  };
  const snapshotId = await repo.saveSnapshot(snapshot);
  return { snapshotId, snapshot, summary: ctx.summary, errors: ctx.errors, warnings: ctx.warnings };
}

/** Backs up one stream (e.g. stdin) as a single file named `filename` in a new snapshot. */
export async function backupStream(
  repo: Repository,
  source: AsyncIterable<Buffer>,
  filename: string,
  options: Pick<BackupOptions, "tags" | "host" | "time" | "onProgress"> = {},
): Promise<BackupResult> {
  return withSession(repo, () => backupStreamInSession(repo, source, filename, options));
}

async function backupStreamInSession(
  repo: Repository,
  source: AsyncIterable<Buffer>,
  filename: string,
  options: Pick<BackupOptions, "tags" | "host" | "time" | "onProgress">,
): Promise<BackupResult> {
  const started = Date.now();
  const statsBefore = { ...repo.writeStats };
  if (!filename || filename.includes("/") || filename === "." || filename === "..") {
    throw new LifeboatError(
      "USAGE",
      `--stdin-filename ${JSON.stringify(filename)} must be a plain file name`,
      "give a name without slashes, such as db.sql",
    );
  }
  const progress = new ProgressCounter(options.onProgress);
  const r = await storeStream(repo, source, (n) => progress.addBytes(n));
  progress.addFile();
  progress.finish();
  const now = options.time ?? new Date();
  const node: TreeNode = {
    name: filename,
    type: "file",
    mode: 0o644,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    mtime: (BigInt(now.getTime()) * 1_000_000n).toString(),
    size: r.size,
    content: r.content,
  };
  const tree = await repo.saveTree({ nodes: [node] });
  await repo.flush();
  const summary: BackupSummary = { ...emptySummary(), files: 1, bytes: r.size, filesNew: 1 };
  addWriteStats(summary, repo, statsBefore);
  summary.durationMs = Date.now() - started;
  const u = safeUser();
  const snapshot: Snapshot = {
    version: 1,
    time: now.toISOString(),
    tree: tree.id,
    paths: [`/${filename}`],
    hostname: options.host ?? os.hostname(),
    username: u.username,
    uid: u.uid,
    gid: u.gid,
    tags: options.tags ?? [],
    incomplete: false,
    errors: [],
    changedWhileReading: [],
    excludes: [],
    program: `lifeboat ${VERSION}`,
    summary,
  };
  const snapshotId = await repo.saveSnapshot(snapshot);
  return { snapshotId, snapshot, summary, errors: [], warnings: [] };
}

async function findParent(
  repo: Repository,
  ref: string | undefined,
  host: string,
  paths: string[],
): Promise<SnapshotWithId | undefined> {
  if (ref) {
    const { findSnapshot } = await import("../../repo/find-snapshot.js");
    return findSnapshot(repo, ref);
  }
  const all = await repo.listSnapshots();
  return all.filter((s) => matchesFilter(s, { host, paths })).at(-1);
}

async function saveVDir(
  ctx: Ctx,
  vdir: VDir,
  dirPath: string,
  parentTree: string | undefined,
): Promise<string> {
  const parentNodes = await loadParentNodes(ctx, parentTree);
  const nodes: TreeNode[] = [];
  for (const [name, child] of [...vdir.children].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const p = path.join(dirPath, name);
    if ("target" in child) {
      const node = await saveEntry(ctx, p, name, p, parentNodes.get(name));
      if (node) nodes.push(node);
    } else {
      let st: BigIntStats;
      try {
        st = await fs.lstat(p, { bigint: true });
      } catch (e) {
        ctx.errors.push(`${p}: ${(e as Error).message}`);
        continue;
      }
      const prev = parentNodes.get(name);
      const subtree = await saveVDir(ctx, child, p, prev?.type === "dir" ? prev.subtree : undefined);
      nodes.push({ ...nodeMeta(name, st), type: "dir", subtree });
    }
  }
  return (await saveTreeCounted(ctx, { nodes })).id;
}

async function loadParentNodes(ctx: Ctx, treeId: string | undefined): Promise<Map<string, TreeNode>> {
  const m = new Map<string, TreeNode>();
  if (!treeId || ctx.force) return m;
  try {
    for (const n of (await ctx.repo.loadTree(treeId)).nodes) m.set(n.name, n);
  } catch {
    // A damaged parent only costs speed: everything below is read again.
  }
  return m;
}

async function saveTreeCounted(ctx: Ctx, tree: Tree): Promise<{ id: string }> {
  return ctx.repo.saveTree(tree);
}

/**
 * Backs up one directory entry. `rootRel` is the path of the backup argument the entry was
 * found under (excludes match relative to it); returns undefined for skipped entries.
 */
async function saveEntry(
  ctx: Ctx,
  p: string,
  name: string,
  rootArg: string,
  prev: TreeNode | undefined,
  rootDev?: bigint,
): Promise<TreeNode | undefined> {
  let st: BigIntStats;
  try {
    // Synchronous: measured faster than a trip through the thread pool, even with a cold cache
    // (10,000 files: 38-69 ms against 100-145 ms).
    st = fsSync.lstatSync(p, { bigint: true });
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return undefined; // vanished since readdir: not an error
    ctx.errors.push(`${p}: ${(e as Error).message}`);
    return undefined;
  }
  const rel = path.relative(rootArg, p).split(path.sep).join("/");
  if (ctx.excludes.excluded(rel, st.isDirectory())) return undefined;
  if (st.isDirectory()) {
    if (ctx.oneFs && rootDev !== undefined && st.dev !== rootDev) {
      // Keep the mount point itself (empty), as restic does, so the tree shape stays familiar.
      ctx.summary.dirs++;
      const empty = await saveTreeCounted(ctx, { nodes: [] });
      return { ...nodeMeta(name, st), type: "dir", subtree: empty.id };
    }
    const subtree = await saveDir(
      ctx,
      p,
      rootArg,
      prev?.type === "dir" ? prev.subtree : undefined,
      st,
      rootDev ?? st.dev,
    );
    return { ...nodeMeta(name, st), type: "dir", subtree };
  }
  if (st.isSymbolicLink()) {
    let target: string;
    try {
      target = await fs.readlink(p);
    } catch (e) {
      ctx.errors.push(`${p}: ${(e as Error).message}`);
      return undefined;
    }
    return { ...nodeMeta(name, st), type: "symlink", target };
  }
  if (st.isFile()) return saveFile(ctx, p, name, st, prev);
  const kind = st.isSocket()
    ? "socket"
    : st.isFIFO()
      ? "FIFO"
      : st.isCharacterDevice() || st.isBlockDevice()
        ? "device"
        : "special file";
  const msg = `skipped ${kind} ${p}`;
  ctx.warnings.push(msg);
  ctx.onWarning(msg);
  return undefined;
}

async function saveDir(
  ctx: Ctx,
  p: string,
  rootArg: string,
  parentTree: string | undefined,
  st: BigIntStats,
  rootDev?: bigint,
): Promise<string> {
  ctx.summary.dirs++;
  let names: string[];
  try {
    names = await fs.readdir(p);
  } catch (e) {
    ctx.errors.push(`${p}: ${(e as Error).message}`);
    names = [];
  }
  names.sort();
  const parentNodes = await loadParentNodes(ctx, parentTree);
  // Entries of a folder are saved concurrently (bounded): with one file at a time the process
  // mostly waits for lstat/open/read round trips; ctx.files bounds open files across folders.
  const saved = await mapLimit(names, ENTRIES_IN_FLIGHT, (name) =>
    saveEntry(ctx, path.join(p, name), name, rootArg, parentNodes.get(name), rootDev ?? st.dev),
  );
  const nodes = saved.filter((n): n is TreeNode => n !== undefined);
  // An unchanged folder is its parent's tree: no encoding, hashing or lookup. (A parent tree
  // that failed to load gives no nodes, so it is never reused by mistake.)
  if (
    parentTree &&
    parentNodes.size > 0 &&
    nodes.length === parentNodes.size &&
    nodes.every((n) => {
      const prev = parentNodes.get(n.name);
      return prev !== undefined && sameNode(n, prev);
    }) &&
    ctx.repo.hasBlob(Buffer.from(parentTree, "hex"))
  ) {
    return parentTree;
  }
  return (await saveTreeCounted(ctx, { nodes })).id;
}

function unchanged(prev: TreeNode | undefined, st: FileStat): prev is TreeNode & { content: string[] } {
  return (
    prev !== undefined &&
    prev.type === "file" &&
    prev.content !== undefined &&
    prev.size === Number(st.size) &&
    prev.mtime === ns(st, "mtimeNs") &&
    prev.ctime === ns(st, "ctimeNs") &&
    prev.inode === st.ino.toString()
  );
}

function sameStat(a: FileStat, b: FileStat): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino;
}

async function saveFile(
  ctx: Ctx,
  p: string,
  name: string,
  st: FileStat,
  prev: TreeNode | undefined,
): Promise<TreeNode | undefined> {
  ctx.summary.files++;
  ctx.summary.bytes += Number(st.size);
  const links = st.nlink > 1n ? { links: Number(st.nlink) } : {};
  if (
    !ctx.force &&
    unchanged(prev, st) &&
    prev.content.every((id) => ctx.repo.hasBlob(Buffer.from(id, "hex")))
  ) {
    ctx.summary.filesUnchanged++;
    ctx.progress.addFile(Number(st.size));
    return { ...nodeMeta(name, st), type: "file", ...links, size: prev.size, content: prev.content };
  }
  let stat = st;
  // A file that changes while it is read is read again once; if it changes again, what was read
  // is kept and the path is listed in the snapshot's changedWhileReading.
  for (let attempt = 0; attempt < 2; attempt++) {
    let r: Awaited<ReturnType<typeof storeFile>>;
    try {
      const size = Number(stat.size);
      const gate = size >= ctx.repo.config.chunker.min ? ctx.largeFiles : ctx.files;
      r = await gate.run(() => storeFile(ctx.repo, p, size, (n) => ctx.progress.addBytes(n)));
    } catch (e) {
      ctx.summary.files--;
      ctx.summary.bytes -= Number(st.size);
      if (errnoCode(e) === "ENOENT") return undefined;
      ctx.errors.push(`${p}: ${(e as Error).message}`);
      return undefined;
    }
    const stable = sameStat(stat, r.after) && BigInt(r.size) === r.after.size;
    if (stable || attempt === 1) {
      if (!stable) ctx.changed.push(p);
      if (prev?.type === "file") ctx.summary.filesChanged++;
      else ctx.summary.filesNew++;
      ctx.progress.addFile();
      ctx.summary.bytes += r.size - Number(st.size);
      return { ...nodeMeta(name, r.after), type: "file", ...links, size: r.size, content: r.content };
    }
    stat = r.after;
  }
  return undefined;
}

/** Copies what the repository added since `before` into the summary. */
export function addWriteStats(
  summary: BackupSummary,
  repo: Repository,
  before: Repository["writeStats"],
): void {
  summary.blobsAdded = repo.writeStats.blobsAdded - before.blobsAdded;
  summary.bytesAdded = repo.writeStats.bytesAdded - before.bytesAdded;
  summary.bytesStored = repo.writeStats.bytesStored - before.bytesStored;
}

export function emptySummary(): BackupSummary {
  return {
    files: 0,
    dirs: 0,
    bytes: 0,
    filesNew: 0,
    filesChanged: 0,
    filesUnchanged: 0,
    blobsAdded: 0,
    bytesAdded: 0,
    bytesStored: 0,
    durationMs: 0,
  };
}

function safeUser(): { username: string; uid: number; gid: number } {
  let username = "unknown";
  try {
    username = os.userInfo().username;
  } catch {}
  return { username, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}
