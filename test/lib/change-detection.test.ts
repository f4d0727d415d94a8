// Backup change detection, below the CLI: what is read again and what is taken from the parent
// snapshot, through takeSnapshot with hand-made sources (reads counted) and backup() on real
// files in a temp folder.
import assert from "node:assert/strict";
import fsSync, { promises as fs } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { backup } from "../../src/app/backup.js";
import { failure, itemError, LifeboatError } from "../../src/core/errors.js";
import { Repository } from "../../src/repo/repository.js";
import type { BackupProgress } from "../../src/snapshot/progress.js";
import type { FileEntry, TreeSource, VirtualEntry, VirtualSource } from "../../src/snapshot/source.js";
import { type SnapshotOptions, takeSnapshot } from "../../src/snapshot/take.js";
import { statMeta } from "../../src/snapshot/tree-builder.js";
import { walkTree } from "../../src/snapshot/walker.js";
import { file, type MemDir, type MemFile, memSource, newRepo, noise, PW } from "./support.js";

const opts: SnapshotOptions = { host: "h", anomaly: false };

let tmp = "";
before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-change-"));
});
after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** The subtree id of a top-level folder of a snapshot's root tree (below the source's path). */
async function subtree(repo: Repository, root: string, ...names: string[]): Promise<string> {
  let tree = root;
  for (const name of names) {
    const n = (await repo.loadTree(tree)).nodes.find((x) => x.name === name);
    assert.ok(n?.subtree, `no folder ${name}`);
    tree = n.subtree;
  }
  return tree;
}

/** Reads every blob below a tree (fails on anything missing or damaged). */
async function readAll(repo: Repository, tree: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  await walkTree(repo, tree, {
    node: async (n, p) => {
      if (n.type !== "file") return undefined;
      const parts: Buffer[] = [];
      for (const c of n.content ?? []) parts.push(await repo.loadBlob(Buffer.from(c, "hex")));
      files.set(p, Buffer.concat(parts));
      return undefined;
    },
  });
  return files;
}

function spec() {
  return {
    a: { f1: file(noise(3000)), f2: file(noise(5000)) },
    b: { g: file(noise(7000)) },
    top: file("top"),
  } satisfies MemDir;
}

test("an unchanged file is not read again; an unchanged folder is the parent's tree", async () => {
  const { repo } = await newRepo();
  const src = memSource(spec());
  const first = await takeSnapshot(repo, src.source, opts);
  assert.equal(src.total(), 4);
  assert.equal(first.summary.filesNew, 4);
  const second = await takeSnapshot(repo, src.source, opts);
  assert.equal(src.total(), 4, "nothing read again");
  assert.equal(second.snapshot.parent, first.snapshotId);
  assert.equal(second.summary.filesUnchanged, 4);
  assert.equal(second.summary.filesNew + second.summary.filesChanged, 0);
  assert.equal(second.summary.blobsAdded, 0, "not even a tree");
  assert.equal(second.snapshot.tree, first.snapshot.tree);
  assert.equal(src.listings.get("/a"), 2, "folders are still listed (that is how they are compared)");
  await repo.close();
});

for (const field of ["size", "mtime", "ctime", "inode"] as const) {
  test(`a file whose ${field} alone changed is read; the other folders keep their trees`, async () => {
    const { repo } = await newRepo();
    const s = spec();
    const src = memSource(s);
    const first = await takeSnapshot(repo, src.source, opts);
    const f1: MemFile = s.a.f1;
    if (field === "size") f1.data = Buffer.concat([f1.data, Buffer.from("more")]);
    else f1[field] = "2000000000000000000";
    const second = await takeSnapshot(repo, src.source, opts);
    assert.deepEqual(
      [...src.reads].filter(([, n]) => n > 1),
      [["/a/f1", 2]],
    );
    assert.equal(second.summary.filesChanged, 1);
    assert.equal(second.summary.filesUnchanged, 3);
    // New: folder a's tree and the root tree, plus the data when the bytes changed.
    assert.equal(second.summary.blobsAdded, field === "size" ? 3 : 2);
    const [t1, t2] = [first.snapshot.tree, second.snapshot.tree];
    assert.notEqual(t2, t1);
    assert.equal(await subtree(repo, t2, "b"), await subtree(repo, t1, "b"), "b is the parent's tree");
    assert.notEqual(await subtree(repo, t2, "a"), await subtree(repo, t1, "a"));
    const files = await readAll(repo, t2);
    assert.deepEqual(files.get("/a/f1"), f1.data);
    await repo.close();
  });
}

test("force reads every file again (and stores nothing new)", async () => {
  const { repo } = await newRepo();
  const src = memSource(spec());
  const first = await takeSnapshot(repo, src.source, opts);
  const forced = await takeSnapshot(repo, src.source, { ...opts, force: true });
  assert.deepEqual([...src.reads.values()], [2, 2, 2, 2]);
  assert.equal(forced.summary.filesUnchanged, 0);
  assert.equal(forced.summary.filesNew + forced.summary.filesChanged, 4);
  assert.equal(forced.summary.blobsAdded, 0);
  assert.equal(forced.snapshot.tree, first.snapshot.tree);
  await repo.close();
});

test("a parent whose folder tree is damaged only costs speed: that folder is read again, the rest is not", async () => {
  const { be, repo } = await newRepo();
  const s = spec();
  const src = memSource(s);
  const first = await takeSnapshot(repo, src.source, opts);
  const treeA = await subtree(repo, first.snapshot.tree, "a");
  const loc = repo.lookup(Buffer.from(treeA, "hex"));
  assert.ok(loc);
  await repo.close();
  // Flip a byte of folder a's tree in its pack (bit rot).
  be.corrupt(`data/${loc.packId.slice(0, 2)}/${loc.packId}`, (d) => {
    d[loc.offset + 20] = d[loc.offset + 20]! ^ 0xff;
    return undefined;
  });
  const fresh = await Repository.open(be, PW);
  await assert.rejects(
    fresh.loadTree(treeA),
    (e: unknown) => e instanceof LifeboatError && e.code === "CORRUPTION",
  );
  // A file in a changed too, so folder a's new tree differs from the damaged one.
  s.a.f2.mtime = "3000000000000000000";
  const second = await takeSnapshot(fresh, src.source, opts);
  assert.deepEqual(second.errors, []);
  assert.equal(second.snapshot.incomplete, false);
  assert.deepEqual(Object.fromEntries(src.reads), { "/a/f1": 2, "/a/f2": 2, "/b/g": 1, "/top": 1 });
  assert.equal(second.summary.filesUnchanged, 2);
  const files = await readAll(fresh, second.snapshot.tree);
  assert.deepEqual(files.get("/a/f1"), s.a.f1.data);
  assert.deepEqual(files.get("/a/f2"), s.a.f2.data);
  assert.deepEqual(files.get("/b/g"), s.b.g.data);
  await fresh.close();
});

test("unreadable entries become item errors with their codes, and the snapshot is incomplete", async () => {
  const { repo } = await newRepo();
  const eacces = Object.assign(new Error("EACCES: permission denied, open '/mem/locked'"), {
    code: "EACCES",
  });
  const folder = path.join(tmp, "not-a-file");
  await fs.mkdir(folder, { recursive: true });
  const pathFile = (name: string, p: string): FileEntry => ({
    kind: "file",
    name,
    meta: { mode: 0o644, uid: 0, gid: 0, mtime: "1" },
    size: 10,
    content: { kind: "path", path: p },
  });
  const src = memSource({
    ok: file("fine"),
    locked: { kind: "failed", name: "locked", error: itemError("/mem/locked", eacces, "UNREADABLE") },
    io: file("x", { fail: Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" }) }),
    source: file("x", { fail: new LifeboatError("SOURCE_UNREADABLE", "the server dropped the connection") }),
    damaged: file("x", { fail: failure("DAMAGED", "checksum mismatch in the source's own copy") }),
    became: pathFile("became", folder),
    vanished: pathFile("vanished", path.join(tmp, "no-such-file")),
    sub: {
      kind: "dir",
      name: "sub",
      meta: { mode: 0o755, uid: 0, gid: 0, mtime: "1" },
      dir: {
        path: "/sub",
        entries: async () => {
          throw Object.assign(new Error("EIO: i/o error, scandir '/sub'"), { code: "EIO" });
        },
      },
    },
  });
  const r = await takeSnapshot(repo, src.source, opts);
  const codes = Object.fromEntries(r.errors.map((e) => [e.path, e.code]));
  assert.deepEqual(codes, {
    "/mem/locked": "UNREADABLE",
    "/io": "UNREADABLE",
    "/source": "UNREADABLE",
    "/damaged": "DAMAGED",
    // Named by where it is in the snapshot, not where it was read from (a file-system snapshot
    // is gone after the backup).
    "/became": "CHANGED_TYPE",
    "/sub": "UNREADABLE",
  });
  assert.equal(r.snapshot.incomplete, true);
  assert.deepEqual([...r.snapshot.errors].sort(), r.errors.map((e) => `${e.path}: ${e.message}`).sort());
  const root = (await repo.loadTree(r.snapshot.tree)).nodes;
  assert.deepEqual(
    root.map((n) => n.name),
    ["ok", "sub"],
    "failed and vanished files are left out; the unlistable folder is kept, empty",
  );
  assert.deepEqual((await repo.loadTree(root[1]!.subtree!)).nodes, []);
  assert.equal(r.summary.files, 1);
  await repo.close();
});

test("a failure of the repository (not of a file) stops the backup; no snapshot is written", async () => {
  const { repo } = await newRepo();
  const src = memSource({
    ok: file("fine"),
    bad: file("x", { fail: new LifeboatError("STORAGE_FULL", "no space left on the repository's disk") }),
  });
  await assert.rejects(
    takeSnapshot(repo, src.source, opts),
    (e: unknown) => e instanceof LifeboatError && e.code === "STORAGE_FULL",
  );
  assert.deepEqual(await repo.listSnapshots(), []);
  await repo.close();
});

// --- files that change while they are read -----------------------------------------------------

/** A source of one real file whose metadata is taken when listed, like the files source does. */
function oneFile(p: string, changeAfterListing: () => void): TreeSource {
  return {
    paths: [p],
    root: {
      path: "/",
      async entries() {
        const st = fsSync.lstatSync(p, { bigint: true });
        changeAfterListing();
        return [
          {
            kind: "file",
            name: "f",
            meta: statMeta(st),
            size: Number(st.size),
            content: { kind: "path", path: p },
          },
        ];
      },
    },
  };
}

let touches = 0;
/** A change a reader notices: a new modification time (which also changes the ctime). */
const touch = (p: string) => {
  const t = new Date(Date.UTC(2020, 0, 1) + ++touches * 1000);
  fsSync.utimesSync(p, t, t);
};

test("a file that changed between listing and reading is read again; stable then, it is not listed as changing", async () => {
  const { repo } = await newRepo();
  const p = path.join(tmp, "changes-once");
  await fs.writeFile(p, noise(900));
  let last: BackupProgress | undefined;
  const r = await takeSnapshot(
    repo,
    oneFile(p, () => touch(p)),
    {
      ...opts,
      onProgress: (x) => {
        last = x;
      },
    },
  );
  assert.equal(last?.done, true);
  assert.equal(last?.bytesDone, 2 * 900, "read twice");
  assert.deepEqual(r.snapshot.changedWhileReading, []);
  const node = (await repo.loadTree(r.snapshot.tree)).nodes[0]!;
  assert.equal(
    node.mtime,
    fsSync.statSync(p, { bigint: true }).mtimeNs.toString(),
    "the metadata after the read",
  );
  await repo.close();
});

test("a file that keeps changing while read is read twice, stored as read and listed in changedWhileReading", async () => {
  const { repo } = await newRepo();
  const p = path.join(tmp, "keeps-changing");
  const data = noise(900);
  await fs.writeFile(p, data);
  let last: BackupProgress | undefined;
  const r = await takeSnapshot(
    repo,
    oneFile(p, () => touch(p)),
    {
      ...opts,
      // Called as the first read's bytes arrive: the file changes again before the second read.
      onProgress: (x) => {
        last = x;
        if (!x.done) touch(p);
      },
    },
  );
  assert.equal(last?.bytesDone, 2 * 900, "read twice, not more");
  assert.deepEqual(r.snapshot.changedWhileReading, ["/f"], "named by its place in the snapshot");
  assert.equal(r.snapshot.incomplete, false);
  assert.deepEqual((await readAll(repo, r.snapshot.tree)).get("/f"), data);
  await repo.close();
});

// --- real files through backup() -------------------------------------------------------------

test("backup() of real files: unchanged files are not read; size, mtime, ctime and inode changes are", async () => {
  const { repo } = await newRepo();
  const root = path.join(tmp, "real");
  await fs.mkdir(path.join(root, "d", "e"), { recursive: true });
  const names = ["one", "d/two", "d/e/three", "d/e/four", "z/five"];
  await fs.mkdir(path.join(root, "z"));
  for (const n of names) await fs.writeFile(path.join(root, n), noise(2000 + n.length));
  const run = (force = false) => backup(repo, [root], { ...opts, ...(force ? { force } : {}) });
  const below = root.split("/").filter(Boolean);
  const first = await run();
  assert.equal(first.summary.filesNew, 5);
  const same = await run();
  assert.equal(same.summary.filesUnchanged, 5);
  // The folders above the backed-up one (the temp folder, /tmp) are recorded with their
  // metadata, which other processes change: only their trees may be new.
  const ancestors = below.length;
  assert.ok(same.summary.blobsAdded <= ancestors, `${same.summary.blobsAdded} blobs added`);
  assert.equal(
    await subtree(repo, same.snapshot.tree, ...below),
    await subtree(repo, first.snapshot.tree, ...below),
  );

  const changes: [string, (p: string) => Promise<void>][] = [
    ["size", (p) => fs.appendFile(p, "more")],
    ["mtime", async (p) => touch(p)],
    [
      "ctime",
      async (p) => {
        const before = fsSync.statSync(p, { bigint: true });
        await fs.chmod(p, Number(before.mode & 0o7777n));
        const after = fsSync.statSync(p, { bigint: true });
        assert.equal(after.mtimeNs, before.mtimeNs);
        assert.notEqual(after.ctimeNs, before.ctimeNs, "chmod changed the ctime");
      },
    ],
    [
      "inode",
      async (p) => {
        const st = fsSync.statSync(p);
        await fs.copyFile(p, `${p}.new`);
        await fs.rename(`${p}.new`, p);
        await fs.utimes(p, st.atime, st.mtime);
        assert.notEqual(fsSync.statSync(p).ino, st.ino);
      },
    ],
  ];
  let prev = same;
  for (const [what, change] of changes) {
    await change(path.join(root, "d/e/three"));
    const r = await run();
    assert.equal(r.snapshot.parent, prev.snapshotId);
    assert.equal(r.summary.filesChanged, 1, what);
    assert.equal(r.summary.filesUnchanged, 4, what);
    assert.equal(
      await subtree(repo, r.snapshot.tree, ...below, "z"),
      await subtree(repo, prev.snapshot.tree, ...below, "z"),
      `${what}: the unchanged folder keeps its tree`,
    );
    assert.notEqual(
      await subtree(repo, r.snapshot.tree, ...below, "d", "e"),
      await subtree(repo, prev.snapshot.tree, ...below, "d", "e"),
    );
    prev = r;
  }
  const forced = await run(true);
  assert.equal(forced.summary.filesUnchanged, 0);
  assert.equal(forced.summary.filesNew + forced.summary.filesChanged, 5);
  assert.ok(forced.summary.blobsAdded <= ancestors, "read again, deduplicated");
  await repo.close();
});

test("backup() of real files: a socket is skipped with a warning, and the snapshot is complete", async () => {
  const { repo } = await newRepo();
  const root = path.join(tmp, "with-socket");
  await fs.mkdir(root, { recursive: true });
  await fs.writeFile(path.join(root, "f"), "data");
  const server = net.createServer();
  const sock = path.join(root, "s.sock");
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  try {
    const warnings: string[] = [];
    const r = await backup(repo, [root], { ...opts, onWarning: (w) => warnings.push(w) });
    assert.deepEqual(warnings, [`skipped socket ${sock}`]);
    assert.deepEqual(r.warnings, warnings);
    assert.equal(r.snapshot.incomplete, false);
    assert.deepEqual(r.errors, []);
    assert.equal(r.summary.files, 1);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
  await repo.close();
});

// --- virtual sources --------------------------------------------------------------------------

test("virtual sources: `reuse` takes a parent node without reading it, unless its blobs are gone or doomed", async () => {
  const { repo } = await newRepo();
  const mtime = new Date(Date.UTC(2024, 0, 1));
  const content = new Map([
    // Below the chunker's minimum: one blob whatever the random bytes, so its id is the
    // content's (looked up below to doom its pack).
    ["box/1.eml", noise(1000)],
    ["box/2.eml", noise(4000)],
    ["other/3.eml", Buffer.from("three")],
  ]);
  let reads = 0;
  /** Yields each file, reusing the parent's node where `reuse` says so. */
  const source = (
    reuse: (p: string) => boolean,
    override?: (p: string) => VirtualEntry | undefined,
  ): VirtualSource => ({
    name: "virtual:test",
    type: "virtual",
    async *entries(parent) {
      // Folders with their own times (made-up folders would get the current time).
      yield { kind: "dir", path: "box", mtime };
      yield { kind: "dir", path: "other", mtime };
      for (const [p, data] of content) {
        const o = override?.(p);
        if (o) {
          yield o;
          continue;
        }
        const prev = reuse(p) ? await parent(p) : undefined;
        yield {
          kind: "file",
          path: p,
          mtime,
          ...(prev ? { reuse: prev } : {}),
          read: async function* () {
            reads++;
            yield data;
          },
        };
      }
    },
  });
  const first = await takeSnapshot(
    repo,
    source(() => false),
    opts,
  );
  assert.equal(reads, 3);
  assert.equal(first.snapshot.source, "virtual");
  const second = await takeSnapshot(
    repo,
    source(() => true),
    opts,
  );
  assert.equal(reads, 3, "nothing read");
  assert.equal(second.summary.filesUnchanged, 3);
  assert.equal(second.summary.blobsAdded, 0);
  assert.equal(second.snapshot.tree, first.snapshot.tree);

  // A reused node whose blobs are not stored is read instead.
  const fake = {
    name: "2.eml",
    type: "file" as const,
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: "0",
    size: 4000,
    content: ["ab".repeat(32)],
  };
  const third = await takeSnapshot(
    repo,
    source(
      () => true,
      (p) =>
        p === "box/2.eml"
          ? {
              kind: "file",
              path: p,
              mtime,
              reuse: fake,
              read: async function* () {
                reads++;
                yield content.get(p)!;
              },
            }
          : undefined,
    ),
    opts,
  );
  assert.equal(reads, 4);
  assert.equal(third.summary.filesNew, 1);
  assert.equal(third.snapshot.tree, first.snapshot.tree, "the same bytes as before");
  // ... and with nothing to read, the source is at fault.
  await assert.rejects(
    takeSnapshot(
      repo,
      source(
        () => true,
        (p) => (p === "box/2.eml" ? { kind: "file", path: p, reuse: fake } : undefined),
      ),
      opts,
    ),
    (e: unknown) =>
      e instanceof LifeboatError && e.code === "SOURCE_UNREADABLE" && /no content to read/.test(e.message),
  );
  // Blobs in packs a prune plans to delete are not reused either (they may be gone soon).
  const loc = repo.lookup(repo.blobId(content.get("box/1.eml")!));
  assert.ok(loc);
  repo.doomPacks([loc.packId]);
  const fourth = await takeSnapshot(
    repo,
    source(() => true),
    opts,
  );
  assert.ok(reads > 4, "a file in the doomed pack was read again");
  assert.ok(fourth.summary.blobsAdded > 0, "and stored again, outside the doomed pack");
  // The fresh copies count as stored from now on: the next snapshot reads nothing again.
  const readsBefore = reads;
  const fifth = await takeSnapshot(
    repo,
    source(() => true),
    opts,
  );
  assert.equal(reads, readsBefore, "the fresh copies are reused");
  assert.equal(fifth.summary.blobsAdded, 0);
  // Unsafe paths are refused.
  await assert.rejects(
    takeSnapshot(
      repo,
      source(
        () => false,
        (p) => (p === "box/1.eml" ? { kind: "file", path: "../x", read: async function* () {} } : undefined),
      ),
      opts,
    ),
    (e: unknown) =>
      e instanceof LifeboatError && e.code === "SOURCE_UNREADABLE" && /unsafe path/.test(e.message),
  );
  await repo.close();
});
