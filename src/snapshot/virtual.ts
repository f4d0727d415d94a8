import os from "node:os";
import { LifeboatError } from "../core/errors.js";
import { addWriteStats, type BackupResult, type BackupSummary, emptySummary } from "../ops/backup/backup.js";
import { matchesFilter } from "../repo/find-snapshot.js";
import type { Repository } from "../repo/repository.js";
import type { Snapshot, SnapshotWithId } from "../repo/snapshot.js";
import { isSafeName, type TreeNode } from "../repo/tree.js";
import { VERSION } from "../version.js";
import { type AnomalyThresholds, DEFAULT_THRESHOLDS, detectAnomalies } from "./anomaly.js";
import { type BackupProgress, ProgressCounter } from "./progress.js";
import { withSession } from "./session.js";
import { storeStream } from "./store-file.js";

/**
 * Sources that are not a folder on disk — a database dump, a mailbox, an address book — hand
 * the backup a stream of entries with relative POSIX paths. They become an ordinary snapshot
 * tree, so restore, ls, diff, check and dedup work on them like on files.
 */
export interface VirtualFile {
  kind: "file";
  /** Relative path inside the snapshot, e.g. `INBOX/1234.eml`. */
  path: string;
  mode?: number;
  mtime?: Date;
  /** The bytes. Omit when `reuse` is given. */
  read?: () => AsyncIterable<Buffer>;
  /** A node of the parent snapshot whose content is known to be unchanged (not read again). */
  reuse?: TreeNode;
}

export interface VirtualDir {
  kind: "dir";
  path: string;
  mode?: number;
  mtime?: Date;
}

export type VirtualEntry = VirtualFile | VirtualDir;

/** Looks up a node of the parent snapshot by relative path (for incremental sources). */
export type ParentLookup = (path: string) => Promise<TreeNode | undefined>;

export interface VirtualSource {
  /** What the snapshot is "of", e.g. `sqlite:/var/lib/app.db`; recorded as its path. */
  name: string;
  /** Source type, e.g. `sqlite`, `postgres`, `imap`; recorded in the snapshot. */
  type: string;
  entries(parent: ParentLookup, parentSnapshot: SnapshotWithId | undefined): AsyncIterable<VirtualEntry>;
  /** Source-specific facts to keep with the snapshot (e.g. a WAL position, IMAP UIDVALIDITY). */
  meta?(): Record<string, unknown> | Promise<Record<string, unknown>>;
}

export interface VirtualBackupOptions {
  tags?: string[];
  host?: string;
  time?: Date;
  onProgress?: (p: BackupProgress) => void;
  /** Thresholds for flagging a snapshot that looks like a wipe (false: do not check). */
  anomaly?: AnomalyThresholds | false;
}

interface DirBuild {
  node: Omit<TreeNode, "subtree"> | undefined;
  children: Map<string, DirBuild | TreeNode>;
}

const now = () => new Date();
const nsOf = (d: Date) => (BigInt(d.getTime()) * 1_000_000n).toString();

/** Backs up a virtual source into a new snapshot (parent: newest of the same host and name). */
export async function backupVirtual(
  repo: Repository,
  source: VirtualSource,
  options: VirtualBackupOptions = {},
): Promise<BackupResult & { snapshot: Snapshot }> {
  return withSession(repo, () => backupVirtualInSession(repo, source, options));
}

async function backupVirtualInSession(
  repo: Repository,
  source: VirtualSource,
  options: VirtualBackupOptions,
): Promise<BackupResult & { snapshot: Snapshot }> {
  const started = Date.now();
  const statsBefore = { ...repo.writeStats };
  const host = options.host ?? os.hostname();
  const parent = (await repo.listSnapshots())
    .filter((s) => matchesFilter(s, { host, paths: [source.name] }))
    .at(-1);
  const lookup = parentLookup(repo, parent);
  const progress = new ProgressCounter(options.onProgress);
  const summary: BackupSummary = emptySummary();
  const root: DirBuild = { node: undefined, children: new Map() };
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;

  const dirFor = (parts: string[]): DirBuild => {
    let d = root;
    for (const name of parts) {
      let next = d.children.get(name);
      if (!next || !("children" in next)) {
        next = {
          node: { name, type: "dir", mode: 0o755, uid, gid, mtime: nsOf(now()) },
          children: new Map(),
        };
        d.children.set(name, next);
      }
      d = next;
    }
    return d;
  };

  for await (const e of source.entries(lookup, parent)) {
    const parts = e.path.split("/").filter((p) => p !== "");
    if (parts.length === 0 || !parts.every(isSafeName)) {
      throw new LifeboatError(
        "SOURCE_UNREADABLE",
        `source ${source.name} produced an unsafe path ${JSON.stringify(e.path)}`,
      );
    }
    const name = parts.at(-1)!;
    if (e.kind === "dir") {
      const d = dirFor(parts);
      d.node = { name, type: "dir", mode: e.mode ?? 0o755, uid, gid, mtime: nsOf(e.mtime ?? now()) };
      continue;
    }
    const dir = dirFor(parts.slice(0, -1));
    const base = {
      name,
      type: "file" as const,
      mode: e.mode ?? 0o644,
      uid,
      gid,
      mtime: nsOf(e.mtime ?? now()),
    };
    if (
      e.reuse?.type === "file" &&
      e.reuse.content &&
      e.reuse.content.every((id) => repo.hasBlob(Buffer.from(id, "hex")))
    ) {
      dir.children.set(name, { ...base, size: e.reuse.size ?? 0, content: e.reuse.content });
      summary.files++;
      summary.filesUnchanged++;
      summary.bytes += e.reuse.size ?? 0;
      progress.addFile(e.reuse.size ?? 0);
      continue;
    }
    if (!e.read)
      throw new LifeboatError("SOURCE_UNREADABLE", `source ${source.name}: ${e.path} has no content to read`);
    const r = await storeStream(repo, e.read(), (n) => progress.addBytes(n));
    dir.children.set(name, { ...base, size: r.size, content: r.content });
    summary.files++;
    summary.filesNew++;
    summary.bytes += r.size;
    progress.addFile();
  }

  const save = async (d: DirBuild): Promise<string> => {
    const nodes: TreeNode[] = [];
    for (const child of d.children.values()) {
      if ("children" in child) nodes.push({ ...child.node!, subtree: await save(child) });
      else nodes.push(child);
    }
    summary.dirs++;
    return (await repo.saveTree({ nodes })).id;
  };
  const tree = await save(root);
  progress.finish();
  // Invariant: every blob the snapshot references is uploaded and indexed before it is written.
  await repo.flush();
  addWriteStats(summary, repo, statsBefore);
  summary.durationMs = Date.now() - started;
  const meta = source.meta ? await source.meta() : undefined;
  const anomalies =
    parent && options.anomaly !== false
      ? (await detectAnomalies(repo, parent, tree, meta, options.anomaly ?? DEFAULT_THRESHOLDS)).reasons
      : [];
  let username = "unknown";
  try {
    username = os.userInfo().username;
  } catch {}
  const snapshot: Snapshot = {
    version: 1,
    time: (options.time ?? now()).toISOString(),
    tree,
    paths: [source.name],
    hostname: host,
    username,
    uid,
    gid,
    tags: options.tags ?? [],
    ...(parent ? { parent: parent.id } : {}),
    incomplete: false,
    errors: [],
    changedWhileReading: [],
    excludes: [],
    program: `lifeboat ${VERSION}`,
    source: source.type,
    ...(meta ? { meta } : {}),
    ...(anomalies.length > 0 ? { anomalies } : {}),
    summary,
  };
  const snapshotId = await repo.saveSnapshot(snapshot);
  return { snapshotId, snapshot, summary, errors: [], warnings: [] };
}

/** Resolves relative paths in the parent snapshot, caching trees along the way. */
export function parentLookup(repo: Repository, parent: SnapshotWithId | undefined): ParentLookup {
  const byName = new Map<string, Map<string, TreeNode>>();
  const children = async (tree: string) => {
    let m = byName.get(tree);
    if (!m) {
      m = new Map((await repo.loadTree(tree)).nodes.map((n) => [n.name, n]));
      byName.set(tree, m);
    }
    return m;
  };
  return async (p: string) => {
    if (!parent) return undefined;
    const parts = p.split("/").filter(Boolean);
    let tree = parent.tree;
    for (let i = 0; i < parts.length; i++) {
      const node = (await children(tree)).get(parts[i]!);
      if (!node) return undefined;
      if (i === parts.length - 1) return node;
      if (node.type !== "dir" || !node.subtree) return undefined;
      tree = node.subtree;
    }
    return undefined;
  };
}
