import type { Repository } from "../repo/repository.js";
import type { Snapshot } from "../repo/snapshot.js";
import type { TreeNode } from "../repo/tree.js";
import type { TreeCount } from "./tree-builder.js";

/**
 * Thresholds (shares, 0..1) above which a new snapshot is flagged as looking like a wipe, a
 * mass overwrite or ransomware, compared with its parent. Each applies only when the parent is
 * big enough for a share to mean something (`minFiles`).
 */
export interface AnomalyThresholds {
  /** Files of the parent that are gone. */
  deleted: number;
  /** Bytes lost: (parent bytes - new bytes) / parent bytes. */
  shrunk: number;
  /** Files of the parent whose content became zeroes or one repeated byte. */
  zeroed: number;
  /** Files that compressed well before and now look random (encrypted-looking). */
  entropy: number;
  /** A database's total row count falling by this share (sources that record row counts). */
  rows: number;
  /** The parent needs at least this many files for the file-based checks. */
  minFiles: number;
}

export const DEFAULT_THRESHOLDS: AnomalyThresholds = {
  deleted: 0.3,
  shrunk: 0.5,
  zeroed: 0.1,
  entropy: 0.2,
  rows: 0.5,
  minFiles: 10,
};

export interface AnomalyMetrics {
  parentFiles: number;
  parentBytes: number;
  files: number;
  bytes: number;
  deletedFiles: number;
  changedFiles: number;
  zeroedFiles: number;
  /** Files present in both whose old content compressed to under 80%. */
  compressibleBefore: number;
  /** ... of which the new content does not compress any more. */
  nowRandom: number;
  parentRows?: number;
  rows?: number;
}

export interface AnomalyReport {
  metrics: AnomalyMetrics;
  /** Why the snapshot is flagged; empty when it is not. */
  reasons: string[];
}

/** Content below this size says too little about compressibility to count. */
const MIN_SIZE = 4096;

/** At most this many suspect files are confirmed by reading data (the rest are not counted). */
const MAX_CANDIDATES = 500;

const pct = (x: number) => `${(x * 100).toFixed(0)}%`;

/**
 * Compares a new snapshot's tree with its parent's. Unchanged subtrees (same tree id) are
 * skipped when `newCount` gives the new tree's files and bytes (the backup that built it counted
 * them), so an ordinary incremental backup costs a few tree reads; without it they are read to
 * be counted. Compressibility comes from the index (stored vs raw length of each blob): nothing
 * is read from the packs.
 */
export async function detectAnomalies(
  repo: Repository,
  parent: Pick<Snapshot, "tree" | "meta">,
  tree: string,
  meta: Snapshot["meta"] | undefined,
  thresholds: AnomalyThresholds = DEFAULT_THRESHOLDS,
  newCount?: TreeCount,
): Promise<AnomalyReport> {
  const m: AnomalyMetrics = {
    parentFiles: 0,
    parentBytes: 0,
    files: 0,
    bytes: 0,
    deletedFiles: 0,
    changedFiles: 0,
    zeroedFiles: 0,
    compressibleBefore: 0,
    nowRandom: 0,
  };
  const ratio = (content: string[] | undefined): number | undefined => {
    let raw = 0;
    let stored = 0;
    for (const id of content ?? []) {
      const loc = repo.lookup(Buffer.from(id, "hex"));
      if (!loc) return undefined;
      raw += loc.rawLength;
      stored += loc.length;
    }
    return raw >= MIN_SIZE ? stored / raw : undefined;
  };
  const count = async (id: string, side: "old" | "new"): Promise<void> => {
    for (const n of (await repo.loadTree(id, { keep: false })).nodes) {
      if (n.type === "dir" && n.subtree) await count(n.subtree, side);
      else if (n.type === "file") {
        if (side === "old") {
          m.parentFiles++;
          m.parentBytes += n.size ?? 0;
          m.deletedFiles++;
        } else {
          m.files++;
          m.bytes += n.size ?? 0;
        }
      }
    }
  };
  const candidates: string[][] = [];
  const compareFiles = (a: TreeNode, b: TreeNode) => {
    m.parentFiles++;
    m.parentBytes += a.size ?? 0;
    m.files++;
    m.bytes += b.size ?? 0;
    if ((a.content ?? []).join() === (b.content ?? []).join()) return;
    m.changedFiles++;
    const before = ratio(a.content);
    const after = ratio(b.content);
    if (before === undefined || after === undefined) return;
    // zstd turns a run of one byte into almost nothing: such files are candidates, confirmed
    // below by reading their first and last blob (the only data this check ever reads).
    if (after < 0.02 && after < before / 2) candidates.push(b.content ?? []);
    if (before < 0.8) {
      m.compressibleBefore++;
      if (after > 0.95) m.nowRandom++;
    }
  };
  const walk = async (oldId: string | undefined, newId: string | undefined): Promise<void> => {
    if (oldId === newId && oldId !== undefined) {
      // Identical subtree: counted on both sides at the end, from newCount.
      if (newCount) return;
      // Without newCount it is read and counted on both sides, not compared.
      const before = { ...m };
      await count(oldId, "new");
      const files = m.files - before.files;
      const bytes = m.bytes - before.bytes;
      m.parentFiles += files;
      m.parentBytes += bytes;
      return;
    }
    const olds = oldId ? (await repo.loadTree(oldId, { keep: false })).nodes : [];
    const news = newId ? (await repo.loadTree(newId, { keep: false })).nodes : [];
    const byName = new Map(news.map((n) => [n.name, n]));
    for (const a of olds) {
      const b = byName.get(a.name);
      byName.delete(a.name);
      if (a.type === "dir" && a.subtree) {
        if (b?.type === "dir" && b.subtree) await walk(a.subtree, b.subtree);
        else {
          await count(a.subtree, "old");
          if (b) await countNode(b);
        }
      } else if (a.type === "file") {
        if (b?.type === "file") compareFiles(a, b);
        else {
          m.parentFiles++;
          m.parentBytes += a.size ?? 0;
          m.deletedFiles++;
          if (b) await countNode(b);
        }
      } else if (b) await countNode(b);
    }
    for (const b of byName.values()) await countNode(b);
  };
  const countNode = async (n: TreeNode) => {
    if (n.type === "dir" && n.subtree) await count(n.subtree, "new");
    else if (n.type === "file") {
      m.files++;
      m.bytes += n.size ?? 0;
    }
  };
  await walk(parent.tree, tree);
  if (newCount) {
    // What the walk did not count on the new side is in identical subtrees: as much again on
    // the old side. (A count that does not add up — never expected — falls back to reading.)
    const files = newCount.files - m.files;
    const bytes = newCount.bytes - m.bytes;
    if (files < 0 || bytes < 0) return detectAnomalies(repo, parent, tree, meta, thresholds);
    m.files += files;
    m.parentFiles += files;
    m.bytes += bytes;
    m.parentBytes += bytes;
  }
  for (const content of candidates.slice(0, MAX_CANDIDATES)) {
    const ends = [...new Set([content[0]!, content.at(-1)!])];
    let constant = true;
    let value: number | undefined;
    for (const id of ends) {
      // (A write-only key cannot read the blob: it tests for runs of 0x00 and 0xff by their ids.)
      const byte = await repo.constantByte(Buffer.from(id, "hex"));
      value ??= byte;
      if (byte === undefined || byte !== value) constant = false;
    }
    if (constant) m.zeroedFiles++;
  }

  const reasons: string[] = [];
  const t = thresholds;
  if (m.parentFiles >= t.minFiles) {
    const deleted = m.deletedFiles / m.parentFiles;
    if (deleted > t.deleted)
      reasons.push(`${pct(deleted)} of the files are gone (${m.deletedFiles} of ${m.parentFiles})`);
    const zeroed = m.zeroedFiles / m.parentFiles;
    if (zeroed > t.zeroed)
      reasons.push(
        `${pct(zeroed)} of the files now hold only zeroes or one repeated byte (${m.zeroedFiles})`,
      );
    if (m.compressibleBefore >= Math.min(t.minFiles, 5)) {
      const random = m.nowRandom / m.compressibleBefore;
      if (random > t.entropy)
        reasons.push(
          `${pct(random)} of the files that compressed well now look random, as encrypted data does (${m.nowRandom} of ${m.compressibleBefore})`,
        );
    }
  }
  if (m.parentBytes > 0) {
    const shrunk = (m.parentBytes - m.bytes) / m.parentBytes;
    if (shrunk > t.shrunk && m.parentBytes >= 1024 * 1024)
      reasons.push(`the data shrank by ${pct(shrunk)} (${m.parentBytes} to ${m.bytes} bytes)`);
  }
  const parentRows = totalRows(parent.meta);
  const rows = totalRows(meta);
  if (parentRows !== undefined && rows !== undefined) {
    m.parentRows = parentRows;
    m.rows = rows;
    if (parentRows > 0 && (parentRows - rows) / parentRows > t.rows)
      reasons.push(
        `the database lost ${pct((parentRows - rows) / parentRows)} of its rows (${parentRows} to ${rows})`,
      );
  }
  return { metrics: m, reasons };
}

/**
 * Total row count recorded by a database source: `meta.rowCounts` or `meta.tables` as a map
 * of table to rows, or a plain `meta.rows` number.
 */
function totalRows(meta: Snapshot["meta"] | undefined): number | undefined {
  if (!meta) return undefined;
  if (typeof meta.rows === "number") return meta.rows;
  for (const key of ["rowCounts", "tables"]) {
    const v = meta[key];
    if (v && typeof v === "object" && !Array.isArray(v)) {
      const nums = Object.values(v as Record<string, unknown>).filter(
        (x): x is number => typeof x === "number",
      );
      if (nums.length > 0) return nums.reduce((a, b) => a + b, 0);
    }
  }
  return undefined;
}
