import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { SnapshotWithId } from "./snapshot.js";
import { decodeTree } from "./tree.js";

/** Snapshots kept per series (host, paths, source): the last one is the next parent, and a
 * guard compares its after snapshot with the before snapshot it named. */
const KEPT_PER_SERIES = 3;
/** Trees younger than this are never removed (see `trim`). */
const RECENT_MS = 6 * 3600_000;

/** `$LIFEBOAT_CACHE_DIR`, else `$XDG_CACHE_HOME/lifeboat`, else `~/.cache/lifeboat`. */
export function defaultCacheDir(): string {
  if (process.env.LIFEBOAT_CACHE_DIR) return process.env.LIFEBOAT_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "lifeboat");
}

async function writeAtomic(file: string, data: Buffer | string): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(4).toString("hex")}`;
  await fs.writeFile(tmp, data, { mode: 0o600 });
  await fs.rename(tmp, file);
}

const seriesOf = (s: SnapshotWithId) => JSON.stringify([s.hostname, [...s.paths].sort(), s.source ?? ""]);

/**
 * What a write-only host remembers of its own backups, since it cannot read the repository's:
 * the last snapshots it wrote (documents) and every tree of them (plaintext, as stored), under
 * `<cache>/write-only/<repository id>/<key id>/`. The next backup takes its parent from here —
 * unchanged files (size, times, inode) are not read again — and a guard compares its two
 * snapshots from here. Trees are checked against their keyed ids when read back, so a damaged
 * file costs only a re-read. Losing the cache costs one backup that reads everything again
 * (blobs the repository holds are still not stored twice).
 *
 * The cache holds this host's own file names and metadata, which the host has anyway; it is
 * written with mode 0600 in a 0700 folder.
 */
export class HostCache {
  private constructor(
    readonly dir: string,
    private readonly idOf: (plain: Buffer) => Buffer,
  ) {}

  static async open(root: string, repoId: string, keyId: string, idOf: (plain: Buffer) => Buffer) {
    const dir = path.join(root, "write-only", repoId, keyId);
    for (const d of [dir, path.join(dir, "trees"), path.join(dir, "snapshots")])
      await fs.mkdir(d, { recursive: true, mode: 0o700 });
    return new HostCache(dir, idOf);
  }

  private treeFile(id: string): string {
    return path.join(this.dir, "trees", id.slice(0, 2), id);
  }

  async putTree(id: string, bytes: Buffer): Promise<void> {
    const file = this.treeFile(id);
    try {
      const now = new Date();
      await fs.utimes(file, now, now); // already cached: mark it recent (see `trim`)
      return;
    } catch {}
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeAtomic(file, bytes);
  }

  /** A tree this host wrote, verified against its id; undefined when not cached (or damaged). */
  async getTree(id: string): Promise<Buffer | undefined> {
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(this.treeFile(id));
    } catch {
      return undefined;
    }
    return this.idOf(bytes).toString("hex") === id ? bytes : undefined;
  }

  /** Every cached snapshot, oldest first. */
  async snapshots(): Promise<SnapshotWithId[]> {
    const out: SnapshotWithId[] = [];
    for (const f of await fs.readdir(path.join(this.dir, "snapshots"))) {
      if (!/^[0-9a-f]{64}\.json$/.test(f)) continue;
      try {
        const doc = JSON.parse(await fs.readFile(path.join(this.dir, "snapshots", f), "utf8")) as {
          snapshot: SnapshotWithId;
        };
        if (doc.snapshot?.id === f.slice(0, 64)) out.push(doc.snapshot);
      } catch {}
    }
    return out.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
  }

  async getSnapshot(id: string): Promise<SnapshotWithId | undefined> {
    return (await this.snapshots()).find((s) => s.id === id);
  }

  /** Forgets a snapshot (the owner removed it from the repository). */
  async drop(id: string): Promise<void> {
    await fs.rm(path.join(this.dir, "snapshots", `${id}.json`), { force: true });
    await fs.rm(path.join(this.dir, "snapshots", `${id}.trees`), { force: true });
  }

  /**
   * Records a snapshot this host just stored, with the list of its trees (walked from its root:
   * every one of them is cached, written now or reused from the parent), then keeps only the
   * last few of each series and the trees they need.
   */
  async putSnapshot(s: SnapshotWithId): Promise<void> {
    const trees = new Set<string>();
    const walk = async (id: string): Promise<void> => {
      if (trees.has(id)) return;
      const bytes = await this.getTree(id);
      if (!bytes) return; // not cached: the next backup reads that folder's files again
      trees.add(id);
      for (const n of decodeTree(bytes, `cached tree ${id}`).nodes) if (n.subtree) await walk(n.subtree);
    };
    await walk(s.tree);
    await writeAtomic(path.join(this.dir, "snapshots", `${s.id}.trees`), [...trees].join("\n"));
    await writeAtomic(
      path.join(this.dir, "snapshots", `${s.id}.json`),
      JSON.stringify({ version: 1, snapshot: s }),
    );
    await this.trim();
  }

  private async trim(): Promise<void> {
    const bySeries = new Map<string, SnapshotWithId[]>();
    for (const s of await this.snapshots()) {
      const list = bySeries.get(seriesOf(s)) ?? [];
      list.push(s);
      bySeries.set(seriesOf(s), list);
    }
    const keep: SnapshotWithId[] = [];
    for (const list of bySeries.values()) {
      for (const s of list.slice(0, -KEPT_PER_SERIES)) await this.drop(s.id);
      keep.push(...list.slice(-KEPT_PER_SERIES));
    }
    const needed = new Set<string>();
    for (const s of keep) {
      const list = await fs
        .readFile(path.join(this.dir, "snapshots", `${s.id}.trees`), "utf8")
        .catch(() => "");
      for (const id of list.split("\n")) if (id) needed.add(id);
    }
    // Trees no kept snapshot needs go, unless recent: another backup of this host (other paths)
    // may be writing the trees of a snapshot it has not stored yet.
    const trees = path.join(this.dir, "trees");
    const before = Date.now() - RECENT_MS;
    for (const sub of await fs.readdir(trees)) {
      for (const f of await fs.readdir(path.join(trees, sub)).catch(() => [] as string[])) {
        if (needed.has(f) || !/^[0-9a-f]{64}$/.test(f)) continue;
        const file = path.join(trees, sub, f);
        const st = await fs.stat(file).catch(() => undefined);
        if (st && st.mtimeMs < before) await fs.rm(file, { force: true });
      }
    }
  }
}
