// Helpers shared by the library-level tests in test/lib: repositories in memory, hand-made
// tree sources whose reads are counted, and a check that a repository is whole.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Backend, ObjectInfo, PutOptions } from "../../src/backend/backend.js";
import { type MemoryBackend, memoryBackend, memoryStore } from "../../src/backend/memory.js";
import { LifeboatError } from "../../src/core/errors.js";
import { names } from "../../src/repo/config.js";
import { RECORD_KINDS } from "../../src/repo/record-store.js";
import { Repository } from "../../src/repo/repository.js";
import type { FileEntry, SourceDir, SourceEntry, TreeSource } from "../../src/snapshot/source.js";
import { walkTree } from "../../src/snapshot/walker.js";

// Key files use a cheap scrypt cost (it is stored in each key file, so opening still works).
process.env.LIFEBOAT_KDF_N ??= "1024";

export const PW = "correct horse";
/** Small chunks and packs, so a few KiB of data make several blobs and packs. */
export const SMALL = { chunker: { min: 1024, avg: 4096, max: 16384 }, packSize: 64 * 1024 };

export async function newRepo(
  options: { packSize?: number; backend?: MemoryBackend } = {},
): Promise<{ be: MemoryBackend; repo: Repository }> {
  const be = options.backend ?? memoryBackend();
  const repo = await Repository.init(be, PW, {
    ...SMALL,
    ...(options.packSize ? { packSize: options.packSize } : {}),
  });
  return { be, repo };
}

/** A second backend over a deep copy of `be`'s objects (to replay a scenario from one state). */
export function cloneBackend(be: MemoryBackend): MemoryBackend {
  const store = memoryStore();
  store.created = true;
  for (const [name, o] of be.store.objects) store.objects.set(name, { data: Buffer.from(o.data) });
  return memoryBackend({ store });
}

/** Object names under a prefix, sorted. */
export function objectsUnder(be: MemoryBackend, prefix: string): string[] {
  return [...be.objects().keys()].filter((n) => n.startsWith(prefix));
}

/** One write or delete as a backend saw it, in order. */
export interface Op {
  op: "put" | "delete";
  name: string;
}

/** Wraps a backend and records every put and delete, in the order they completed. */
export function recordingBackend(inner: Backend): Backend & { ops: Op[] } {
  const ops: Op[] = [];
  return {
    ops,
    location: inner.location,
    capabilities: inner.capabilities,
    exists: () => inner.exists(),
    create: () => inner.create(),
    get: (name, o) => inner.get(name, o),
    stat: (name) => inner.stat(name),
    async put(name: string, data: Buffer, o?: PutOptions) {
      await inner.put(name, data, o);
      ops.push({ op: "put", name });
    },
    list: (prefix: string): AsyncIterable<ObjectInfo> => inner.list(prefix),
    async delete(name: string) {
      await inner.delete(name);
      ops.push({ op: "delete", name });
    },
    close: () => inner.close(),
  };
}

/**
 * What a crash leaves must be a repository where nothing points at missing data: opens it
 * afresh and reads every tree and data blob of every snapshot, and every blob a record pins.
 * Packs nobody indexes are allowed (an interrupted backup leaves them; prune removes them).
 * Returns how many snapshots and blobs were read.
 */
export async function assertWhole(
  backend: Backend,
  what = "repository",
): Promise<{ snapshots: number; blobs: number }> {
  const repo = await Repository.open(backend, PW);
  try {
    // Every pack an index file in force names must exist.
    for (const packId of repo.indexedPacks())
      assert.ok(await backend.stat(names.pack(packId)), `${what}: indexed pack ${packId} is missing`);
    const seen = new Set<string>();
    const load = async (hex: string, where: string) => {
      if (seen.has(hex)) return;
      seen.add(hex);
      try {
        await repo.loadBlob(Buffer.from(hex, "hex"));
      } catch (e) {
        assert.fail(
          `${what}: ${where} needs blob ${hex.slice(0, 12)}, which cannot be read: ${(e as Error).message}`,
        );
      }
    };
    const snapshots = await repo.listSnapshots();
    for (const s of snapshots) {
      await walkTree(repo, s.tree, {
        node: async (n, p) => {
          for (const c of n.content ?? []) await load(c, `snapshot ${s.id.slice(0, 8)} ${p}`);
          return undefined;
        },
        unreadable: (t, p, e) => {
          assert.fail(
            `${what}: snapshot ${s.id.slice(0, 8)} tree ${t.slice(0, 12)} at ${p || "/"}: ${(e as Error).message}`,
          );
        },
      });
    }
    for (const kind of RECORD_KINDS) {
      if (!kind.pins) continue;
      for (const r of await repo.records.list(kind, { unreadable: "throw" }))
        for (const id of kind.pins(r.record)) await load(id, r.object);
    }
    return { snapshots: snapshots.length, blobs: seen.size };
  } finally {
    await repo.close();
  }
}

// --- hand-made tree sources -------------------------------------------------------------------

/** A file of a hand-made source: its bytes and the metadata the source reports. */
export interface MemFile {
  data: Buffer;
  mtime?: string;
  ctime?: string;
  inode?: string;
  /** Makes reading it fail with this error (thrown by the stream). */
  fail?: Error;
}

/** A folder of a hand-made source: files (Buffer or MemFile), subfolders, or entries as they are. */
export interface MemDir {
  [name: string]: MemFile | MemDir | SourceEntry;
}

const isMemFile = (v: unknown): v is MemFile => typeof v === "object" && v !== null && "data" in v;
const isEntry = (v: unknown): v is SourceEntry =>
  typeof v === "object" && v !== null && "kind" in v && typeof (v as { kind: unknown }).kind === "string";

/**
 * A TreeSource over an in-memory tree that counts how often each file is read and each folder
 * listed (`reads.get("/a/b")`, `listings.get("/a")`). Changing `spec` between snapshots changes
 * what the next snapshot sees.
 */
export function memSource(spec: MemDir, paths = ["/mem"]) {
  const reads = new Map<string, number>();
  const listings = new Map<string, number>();
  const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  const meta = (f?: MemFile) => ({
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: f?.mtime ?? "1000000000000000000",
    ctime: f?.ctime ?? "1000000000000000000",
    inode: f?.inode ?? "1",
  });
  const dir = (d: MemDir, p: string): SourceDir => ({
    path: p,
    async entries() {
      bump(listings, p);
      const out: SourceEntry[] = [];
      for (const [name, v] of Object.entries(d)) {
        const child = `${p === "/" ? "" : p}/${name}`;
        if (isMemFile(v)) {
          const f = v;
          const entry: FileEntry = {
            kind: "file",
            name,
            meta: meta(f),
            size: f.data.length,
            content: {
              kind: "stream",
              read: async function* () {
                bump(reads, child);
                if (f.fail) throw f.fail;
                yield f.data;
              },
            },
          };
          out.push(entry);
        } else if (isEntry(v)) out.push(v);
        else out.push({ kind: "dir", name, meta: meta(), dir: dir(v as MemDir, child) });
      }
      return out;
    },
  });
  const source: TreeSource = { paths, root: dir(spec, "/") };
  return { source, reads, listings, total: () => [...reads.values()].reduce((a, b) => a + b, 0) };
}

export const file = (data: string | Buffer, m: Omit<MemFile, "data"> = {}): MemFile => ({
  data: typeof data === "string" ? Buffer.from(data) : data,
  ...m,
});

/** Incompressible bytes (so sizes in packs are predictable). */
export const noise = (n: number) => randomBytes(n);

/** Awaits `p`, asserts it fails with the LifeboatError `code`, and returns that error. */
export async function rejectsWith(p: Promise<unknown>, code: string): Promise<LifeboatError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof LifeboatError, String(e));
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}`);
}
