/**
 * Crafted snapshots (written with the library, as anyone holding the password could) whose trees
 * try to make restore write outside --target: "..", "a/b", "", NUL, absolute names, duplicate
 * names, a symlink followed by a folder of the same name, a symlink to a file outside followed
 * by a file of the same name, and a second restore over symlinks left by a first one. Restore
 * must refuse the bad names (non-zero exit, names reported) and write nothing outside the target.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { openBackend } from "../../src/backend/open.js";
import { ExitCode } from "../../src/core/errors.js";
import { BlobType } from "../../src/repo/blob.js";
import { Repository } from "../../src/repo/repository.js";
import type { Snapshot } from "../../src/repo/snapshot.js";
import type { TreeNode } from "../../src/repo/tree.js";
import { run, sha256File, show, snapshotListing, useWorkspace } from "../support/cli.js";

const PW = "attacker knows the password";
let victim: string;

const meta = { mode: 0o644, uid: 0, gid: 0, mtime: "1700000000000000000" };

interface Builder {
  file(name: string, text: string, extra?: Partial<TreeNode>): Promise<TreeNode>;
  dir(name: string, nodes: TreeNode[]): Promise<TreeNode>;
  symlink(name: string, target: string): TreeNode;
}

/** Writes a snapshot whose root tree holds `build(...)`'s nodes, in exactly that order. */
async function craft(build: (b: Builder) => Promise<TreeNode[]>): Promise<string> {
  const repo = await Repository.open(await openBackend(ws.repo), PW);
  try {
    const root = await repo.withWriter(async (w) => {
      const b: Builder = {
        async file(name, text, extra = {}) {
          const data = Buffer.from(text);
          const { id } = await w.saveBlob(BlobType.data, data);
          return { name, type: "file", ...meta, size: data.length, content: [id.toString("hex")], ...extra };
        },
        async dir(name, nodes) {
          const t = await w.saveTree({ nodes });
          return { name, type: "dir", ...meta, mode: 0o755, subtree: t.id };
        },
        symlink(name, target) {
          return { name, type: "symlink", ...meta, mode: 0o777, target };
        },
      };
      return w.saveTree({ nodes: await build(b) });
    });
    const snap: Snapshot = {
      version: 1,
      time: new Date().toISOString(),
      tree: root.id,
      paths: ["/crafted"],
      hostname: "attacker",
      username: "attacker",
      tags: [],
      incomplete: false,
      errors: [],
      changedWhileReading: [],
      excludes: [],
      program: "crafted by hand",
    };
    return await repo.writeSnapshot(snap);
  } finally {
    await repo.close();
  }
}

/** Places a restore could reach if it followed a name or a link out of the target. */
const SENTINELS = ["/escape", "/pwned-lifeboat", "/tmp/escape", "/tmp/pwned-lifeboat", "/etc/pwned-lifeboat"];

/**
 * Restores `id` into a fresh target below the workspace and checks that nothing outside the
 * target changed: the listing of the workspace (minus the target), /etc/passwd, and a few
 * sentinel paths.
 */
async function restoreAndCheck(id: string, target: string) {
  await fs.mkdir(target, { recursive: true }); // made first, so only its own contents may change
  const inTarget = (p: string) => p === target || p.startsWith(`${target}/`);
  const before = await snapshotListing(ws.base, inTarget);
  const passwd = await sha256File("/etc/passwd");
  const r = await run(["restore", id, "--target", target], { env: ws.env });
  assert.deepEqual(
    await snapshotListing(ws.base, inTarget),
    before,
    `something outside the target changed\n${show(r)}`,
  );
  assert.equal(await sha256File("/etc/passwd"), passwd, "/etc/passwd changed!");
  for (const s of SENTINELS) {
    await assert.rejects(fs.lstat(s), `${s} was created\n${show(r)}`);
  }
  return r;
}

/** The restore reported `name` as refused. */
function assertRefused(stderr: string, name: string) {
  const quoted = JSON.stringify(name);
  assert.ok(
    stderr.split("\n").some((l) => l.includes("refused") && l.includes(quoted)),
    `the refused name ${quoted} is not reported on stderr:\n${stderr}`,
  );
}

const ws = useWorkspace({
  password: PW,
  setup: async () => {
    victim = path.join(ws.base, "victim");
    await fs.mkdir(victim);
    await fs.writeFile(path.join(victim, "file.txt"), "original, must never change\n");
  },
});

describe("crafted snapshots cannot write outside the target", () => {
  test('names "..", "../../escape", "a/b", "", "x\\0y", "/etc/passwd", "." are refused', async () => {
    const bad = [
      "..",
      "../../escape",
      "a/b",
      "",
      "x\0y",
      "/etc/passwd",
      ".",
      "../../../../../../../../tmp/pwned-lifeboat",
    ];
    const id = await craft(async (b) => [
      ...(await Promise.all(bad.map((n) => b.file(n, `pwned via ${JSON.stringify(n)}\n`)))),
      await b.dir("sub", [await b.file("../../escape", "pwned\n"), await b.file("fine.txt", "fine\n")]),
      await b.dir("..", [await b.file("escape", "pwned\n")]),
      await b.file("ok.txt", "a harmless file\n"),
    ]);
    const target = path.join(ws.base, "t-names", "target");
    const r = await restoreAndCheck(id, target);
    assert.equal(r.code, ExitCode.corruption, show(r));
    for (const n of bad) assertRefused(r.stderr, n);
    assertRefused(r.stderr, "../../escape");
    // The harmless parts are restored.
    assert.deepEqual((await fs.readdir(target)).sort(), ["ok.txt", "sub"]);
    assert.deepEqual(await fs.readdir(path.join(target, "sub")), ["fine.txt"]);
  });

  test("SNAPSHOT:PATH with .. cannot climb out either", async () => {
    const id = await craft(async (b) => [await b.file("ok.txt", "ok\n")]);
    const target = path.join(ws.base, "t-subpath", "target");
    const r = await restoreAndCheck(`${id}:../../etc`, target);
    assert.notEqual(r.code, 0, show(r));
    assert.deepEqual(await fs.readdir(target), []);
  });

  test("duplicate names: the first wins, the duplicates are refused", async () => {
    const id = await craft(async (b) => [
      await b.file("dup", "first\n"),
      await b.file("dup", "second\n"),
      await b.dir("mixed", [await b.file("a", "a\n")]),
      await b.file("mixed", "a file named like the folder\n"),
    ]);
    const target = path.join(ws.base, "t-dup", "target");
    const r = await restoreAndCheck(id, target);
    assert.equal(r.code, ExitCode.corruption, show(r));
    assertRefused(r.stderr, "dup");
    assertRefused(r.stderr, "mixed");
    assert.deepEqual((await fs.readdir(target)).sort(), ["dup", "mixed"]);
    assert.equal(await fs.readFile(path.join(target, "dup"), "utf8"), "first\n");
  });

  test('a symlink "link" to / or ../../ followed by a folder "link" with a file inside', async () => {
    const id = await craft(async (b) => [
      b.symlink("link", "/"),
      await b.dir("link", [await b.file("pwned-lifeboat", "pwned\n")]),
      b.symlink("up", "../../"),
      await b.dir("up", [
        await b.file("escape", "pwned\n"),
        await b.dir("tmp", [await b.file("escape", "x\n")]),
      ]),
      b.symlink("tmp", "/tmp"),
      await b.dir("tmp", [await b.file("pwned-lifeboat", "pwned\n")]),
      // The other order: folder first, then a symlink of the same name.
      await b.dir("etc", [await b.file("pwned-lifeboat", "pwned\n")]),
      b.symlink("etc", "/etc"),
    ]);
    const target = path.join(ws.base, "t-linkdir", "target");
    const r = await restoreAndCheck(id, target);
    assert.equal(r.code, ExitCode.corruption, show(r));
    for (const n of ["link", "up", "tmp", "etc"]) assertRefused(r.stderr, n);
    // The first node of each name is the one restored, as it was.
    for (const n of ["link", "up", "tmp"])
      assert.ok((await fs.lstat(path.join(target, n))).isSymbolicLink(), `${n} should be the symlink`);
    assert.ok((await fs.lstat(path.join(target, "etc"))).isDirectory(), "etc should be the folder");
    await assert.rejects(fs.lstat(path.join(ws.base, "escape")));
    await assert.rejects(fs.lstat(path.join(path.dirname(ws.base), "escape")));
  });

  test("a symlink to a file outside followed by a file entry of the same name", async () => {
    const outsideFile = path.join(victim, "file.txt");
    const id = await craft(async (b) => [
      b.symlink("out", outsideFile),
      await b.file("out", "pwned through the link\n"),
      b.symlink("outdir", victim),
      await b.dir("outdir", [await b.file("file.txt", "pwned through the folder link\n")]),
    ]);
    const target = path.join(ws.base, "t-linkfile", "target");
    const r = await restoreAndCheck(id, target);
    assert.equal(r.code, ExitCode.corruption, show(r));
    assertRefused(r.stderr, "out");
    assertRefused(r.stderr, "outdir");
    assert.equal(await fs.readFile(outsideFile, "utf8"), "original, must never change\n");
  });

  test("a second restore into a target holding symlinks left by a first one does not follow them", async () => {
    const outsideFile = path.join(victim, "file.txt");
    const first = await craft(async (b) => [
      b.symlink("d", victim),
      b.symlink("f", outsideFile),
      b.symlink("deep", victim),
    ]);
    const second = await craft(async (b) => [
      await b.dir("d", [await b.file("file.txt", "pwned through d\n"), await b.file("new.txt", "pwned\n")]),
      await b.file("f", "pwned through f\n"),
      await b.dir("deep", [await b.dir("x", [await b.file("y", "pwned\n")])]),
    ]);
    const target = path.join(ws.base, "t-two-step", "target");
    const r1 = await restoreAndCheck(first, target);
    assert.equal(r1.code, 0, show(r1));
    assert.equal(await fs.readlink(path.join(target, "d")), victim);
    const r2 = await restoreAndCheck(second, target);
    assert.equal(r2.code, 0, show(r2));
    assert.ok((await fs.lstat(path.join(target, "d"))).isDirectory(), "d should now be a real folder");
    assert.equal(await fs.readFile(path.join(target, "d", "file.txt"), "utf8"), "pwned through d\n");
    assert.ok((await fs.lstat(path.join(target, "f"))).isFile(), "f should now be a regular file");
    assert.deepEqual(await fs.readdir(victim), ["file.txt"]);
    assert.equal(await fs.readFile(outsideFile, "utf8"), "original, must never change\n");
  });

  test("a crafted hard-link group cannot link to a file outside the target", async () => {
    // Two nodes claim the same inode: the second becomes a hard link to the first restored copy,
    // never to anything outside.
    const id = await craft(async (b) => [
      await b.file("a", "first copy\n", { links: 2, inode: "12345", device: "1" }),
      await b.dir("sub", [await b.file("b", "second copy\n", { links: 2, inode: "12345", device: "1" })]),
    ]);
    const target = path.join(ws.base, "t-hardlink", "target");
    const r = await restoreAndCheck(id, target);
    assert.equal(r.code, 0, show(r));
    const [a, b] = [await fs.stat(path.join(target, "a")), await fs.stat(path.join(target, "sub", "b"))];
    assert.ok(a.isFile() && b.isFile());
    assert.equal((await fs.stat(path.join(victim, "file.txt"))).nlink, 1, "the outside file gained a link");
  });
});
