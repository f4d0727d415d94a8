import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { memoryBackend } from "../../backend/memory.js";
import { Repository } from "../../repo/repository.js";
import type { TreeNode } from "../../repo/tree.js";
import { takeSnapshot } from "../../snapshot/take.js";
import { filesSource } from "./files-source.js";

/** Every node below `tree`, by path (relative, "/"-separated). */
async function nodes(repo: Repository, tree: string, prefix = ""): Promise<Map<string, TreeNode>> {
  const out = new Map<string, TreeNode>();
  for (const n of (await repo.loadTree(tree)).nodes) {
    const p = prefix ? `${prefix}/${n.name}` : n.name;
    out.set(p, n);
    if (n.type === "dir" && n.subtree) for (const [k, v] of await nodes(repo, n.subtree, p)) out.set(k, v);
  }
  return out;
}

test("readFrom: read one place, record another — paths, device numbers, left-out paths, errors", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-readfrom-"));
  const repo = await Repository.init(memoryBackend(), "pw");
  try {
    // The original, and a "snapshot" of it elsewhere (hard links: same inodes and times), which
    // holds a file the original no longer has and lacks one it has now.
    const orig = path.join(dir, "orig");
    const view = path.join(dir, "view");
    await fs.mkdir(path.join(orig, "sub"), { recursive: true });
    await fs.writeFile(path.join(orig, "sub", "kept.txt"), "kept\n");
    await fs.mkdir(path.join(orig, "own"));
    await fs.mkdir(path.join(view, "sub"), { recursive: true });
    await fs.link(path.join(orig, "sub", "kept.txt"), path.join(view, "sub", "kept.txt"));
    await fs.writeFile(path.join(view, "sub", "then.txt"), "as it was\n");
    await fs.mkdir(path.join(view, "own"));
    await fs.writeFile(path.join(orig, "now.txt"), "written after the snapshot\n");
    const dev = (await fs.lstat(view, { bigint: true })).dev;

    const source = filesSource([orig], {
      readFrom: {
        paths: new Map([
          [orig, view],
          [path.join(orig, "gone"), path.join(dir, "missing")],
        ]),
        devices: new Map([[dev, 4242n]]),
        skip: new Set([path.join(orig, "own")]),
      },
    });
    // A folder the view has no entry for: mapped to a path that does not exist.
    await fs.mkdir(path.join(view, "gone"));
    const r = await takeSnapshot(repo, source, { host: "h", parent: false });
    assert.deepEqual(r.snapshot.paths, [orig]);
    const all = await nodes(repo, r.snapshot.tree);
    const rel = orig.slice(1);
    const under = [...all.keys()].filter((k) => k.startsWith(`${rel}/`)).map((k) => k.slice(rel.length + 1));
    assert.deepEqual(under.sort(), ["sub", "sub/kept.txt", "sub/then.txt"]);
    assert.equal(all.get(`${rel}/sub/kept.txt`)!.device, "4242");
    assert.equal(all.get(`${rel}/sub`)!.device, "4242");
    assert.equal(all.get(rel)!.device, "4242");
    assert.equal(
      all.get(`${rel}/sub/kept.txt`)!.inode,
      (await fs.lstat(path.join(orig, "sub", "kept.txt"), { bigint: true })).ino.toString(),
    );
    // The entry whose read path is missing fails under its recorded path.
    assert.deepEqual(
      r.errors.map((e) => e.path),
      [path.join(orig, "gone")],
    );

    // Read again (nothing changed in the view): every file comes from the parent, and the same
    // tree results.
    const again = await takeSnapshot(repo, source, { host: "h" });
    assert.equal(again.summary.filesUnchanged, 2);
    assert.equal(again.summary.filesNew + again.summary.filesChanged, 0);
  } finally {
    await repo.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});
