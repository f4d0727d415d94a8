import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { openRepository } from "../../src/index.js";
import { BlobType } from "../../src/repo/blob.js";
import type { Snapshot } from "../../src/repo/snapshot.js";
import type { TreeNode } from "../../src/repo/tree.js";
import { baseEnv, listAll, run, tempDir } from "../support/cli.js";

let dir: string;
let repo: string;
let env: Record<string, string>;

before(async () => {
  dir = await tempDir();
  repo = path.join(dir, "repo");
  env = baseEnv({ LIFEBOAT_PASSWORD: "evil", LIFEBOAT_REPOSITORY: repo });
  process.env.LIFEBOAT_KDF_N = "1024";
  assert.equal((await run(["init"], { env })).code, 0);
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const meta = { mode: 0o644, uid: 0, gid: 0, mtime: "1700000000000000000" };

/** Writes a snapshot whose root tree is `nodes` (built through the library, as an attacker could). */
async function craft(
  build: (
    file: (name: string, text: string) => Promise<TreeNode>,
    dirNode: (name: string, nodes: TreeNode[]) => Promise<TreeNode>,
  ) => Promise<TreeNode[]>,
): Promise<string> {
  const r = await openRepository(repo, "evil");
  const file = async (name: string, text: string): Promise<TreeNode> => {
    const data = Buffer.from(text);
    const { id } = await r.saveBlob(BlobType.data, data);
    return { name, type: "file", ...meta, size: data.length, content: [id.toString("hex")] };
  };
  const dirNode = async (name: string, nodes: TreeNode[]): Promise<TreeNode> => {
    const t = await r.saveTree({ nodes });
    return { name, type: "dir", ...meta, mode: 0o755, subtree: t.id };
  };
  const root = await r.saveTree({ nodes: await build(file, dirNode) });
  await r.flush();
  const snap: Snapshot = {
    version: 1,
    time: new Date().toISOString(),
    tree: root.id,
    paths: ["/evil"],
    hostname: "evil",
    username: "evil",
    tags: [],
    incomplete: false,
    errors: [],
    changedWhileReading: [],
    excludes: [],
    program: "crafted",
  };
  const id = await r.saveSnapshot(snap);
  await r.close();
  return id;
}

test("names that try to leave the target are refused; nothing is written outside it", async () => {
  const outside = path.join(dir, "outside");
  await fs.mkdir(outside);
  await fs.writeFile(path.join(outside, "victim"), "original\n");
  const id = await craft(async (file, dirNode) => [
    await file("..", "dotdot"),
    await file("../../escape", "escape"),
    await file("a/b", "slash"),
    await file("", "empty"),
    await file("x\0y", "nul"),
    await file("/etc/passwd", "absolute"),
    await file("dup", "first"),
    await file("dup", "second"),
    await file(".", "dot"),
    await dirNode("sub", [await file("../../outside/victim", "overwritten!")]),
    await file("fine.txt", "a normal file survives"),
  ]);
  const target = path.join(dir, "target1");
  const before = await listAll(dir);
  const r = await run(["restore", id, "--target", target], { env });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /refused unsafe or duplicate name/);
  assert.equal(await fs.readFile(path.join(outside, "victim"), "utf8"), "original\n");
  const created = (await listAll(dir)).filter((p) => !before.includes(p));
  for (const p of created)
    assert.ok(
      p.startsWith(`${target}/`) || p === target || p.startsWith(`${repo}/`),
      `created outside the target: ${p}`,
    );
  assert.equal(await fs.readFile(path.join(target, "fine.txt"), "utf8"), "a normal file survives");
  assert.equal(await fs.readFile(path.join(target, "dup"), "utf8"), "first");
});

test("symlinks in a snapshot are never followed when writing", async () => {
  const outside = path.join(dir, "outside2");
  await fs.mkdir(outside);
  const id = await craft(async (file, dirNode) => [
    { name: "link", type: "symlink", ...meta, mode: 0o777, target: outside },
    await dirNode("link", [await file("planted", "through the link")]),
    { name: "esc", type: "symlink", ...meta, mode: 0o777, target: "../../../../../../tmp" },
    await file("esc", "replaces the link, not its target"),
  ]);
  const target = path.join(dir, "target2");
  const r = await run(["restore", id, "--target", target], { env });
  assert.notEqual(r.code, 0);
  assert.deepEqual(await fs.readdir(outside), []);
  assert.ok((await fs.lstat(path.join(target, "link"))).isSymbolicLink());
  // Restoring again over the existing symlinks must not write through them either.
  const id2 = await craft(async (file, dirNode) => [
    await dirNode("link", [await file("planted", "second try")]),
  ]);
  const r2 = await run(["restore", id2, "--target", target], { env });
  assert.equal(r2.code, 0, r2.stderr);
  assert.deepEqual(await fs.readdir(outside), []);
  assert.ok((await fs.lstat(path.join(target, "link"))).isDirectory());
  assert.equal(await fs.readFile(path.join(target, "link", "planted"), "utf8"), "second try");
});
