// What a backup holds at once and what its anomaly check reads, through the tree builder with
// hand-made sources: folders are listed a bounded number ahead (not the whole tree), and the
// anomaly check counts unchanged subtrees from the builder instead of reading them again.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Repository } from "../../src/repo/repository.js";
import { detectAnomalies } from "../../src/snapshot/anomaly.js";
import { ProgressCounter } from "../../src/snapshot/progress.js";
import type { SourceEntry, TreeSource } from "../../src/snapshot/source.js";
import { TreeBuilder } from "../../src/snapshot/tree-builder.js";
import { file, type MemDir, memSource, newRepo } from "./support.js";

/** `wide` folders of `wide` folders of `files` files each. */
function grid(wide: number, files: number, tag = ""): MemDir {
  const top: MemDir = {};
  for (let a = 0; a < wide; a++) {
    const mid: MemDir = {};
    for (let b = 0; b < wide; b++) {
      const leaf: MemDir = {};
      for (let c = 0; c < files; c++) leaf[`f${c}`] = file(`${a}/${b}/${c}${tag}`);
      mid[`d${b}`] = leaf;
    }
    top[`d${a}`] = mid;
  }
  return top;
}

async function build(repo: Repository, source: TreeSource, parentTree?: string) {
  return repo.withWriter(async (w) => {
    const b = new TreeBuilder(repo, w, { progress: new ProgressCounter(undefined) });
    const tree = await b.dir(source.root, parentTree);
    return { tree, count: b.treeCount(tree) };
  });
}

test("a backup lists a bounded number of folders ahead, not every folder of the tree", async () => {
  const { repo } = await newRepo();
  const spec = grid(30, 4);
  const { source } = memSource(spec);
  // A leaf folder is open from its listing until each of its files has been read.
  let open = 0;
  let most = 0;
  const leafOpen = (entries: SourceEntry[]) => {
    const files = entries.filter((e) => e.kind === "file");
    if (files.length === 0 || files.length !== entries.length) return entries;
    open++;
    most = Math.max(most, open);
    let left = files.length;
    return entries.map((e) => {
      if (e.kind !== "file" || e.content.kind !== "stream") return e;
      const read = e.content.read;
      return {
        ...e,
        content: {
          kind: "stream" as const,
          read: async function* () {
            yield* read();
            if (--left === 0) open--;
          },
        },
      };
    });
  };
  const wrap = (d: TreeSource["root"]): TreeSource["root"] => ({
    path: d.path,
    async entries() {
      const es = (await d.entries()).map((e) => (e.kind === "dir" ? { ...e, dir: wrap(e.dir) } : e));
      return leafOpen(es);
    },
  });
  const { tree, count } = await build(repo, { paths: source.paths, root: wrap(source.root) });
  assert.deepEqual(count, { files: 30 * 30 * 4, bytes: count?.bytes });
  // Before the bound, 32 folders at each level started at once: hundreds of the 900 leaves.
  assert.ok(most <= 24, `${most} leaf folders listed and not yet read at once`);
  let files = 0;
  for (const top of (await repo.loadTree(tree)).nodes)
    for (const mid of (await repo.loadTree(top.subtree!)).nodes)
      files += (await repo.loadTree(mid.subtree!)).nodes.length;
  assert.equal(files, 30 * 30 * 4, "every file is in the snapshot");
});

test("the anomaly check finds the same figures from the builder's counts as by reading every tree", async () => {
  const { repo } = await newRepo();
  const spec = grid(6, 5);
  const first = memSource(spec);
  const a = await build(repo, first.source);
  // A change in two folders, a folder gone, one added, one file zeroed: the rest is unchanged.
  const d0 = spec.d0 as MemDir;
  (d0.d1 as MemDir).f0 = file("changed content");
  (d0.d2 as MemDir).f9 = file("new file");
  delete (spec.d3 as MemDir).d4;
  (spec.d5 as MemDir).added = { x: file("x"), y: file("yy") };
  const b = await build(repo, memSource(spec).source, a.tree);
  assert.ok(b.count, "the builder counted the new tree");
  const parent = { tree: a.tree, meta: undefined };
  const read = await detectAnomalies(repo, parent, b.tree, undefined);
  const counted = await detectAnomalies(repo, parent, b.tree, undefined, undefined, b.count);
  assert.deepEqual(counted, read);
  assert.equal(read.metrics.files, 6 * 6 * 5 - 5 + 1 + 2);
  assert.equal(read.metrics.parentFiles, 6 * 6 * 5);
  assert.equal(read.metrics.deletedFiles, 5);

  // A wipe of most folders is flagged the same way by both.
  for (const k of ["d0", "d1", "d2", "d3"]) delete spec[k];
  const c = await build(repo, memSource(spec).source, b.tree);
  const parentB = { tree: b.tree, meta: undefined };
  const readC = await detectAnomalies(repo, parentB, c.tree, undefined);
  const countedC = await detectAnomalies(repo, parentB, c.tree, undefined, undefined, c.count);
  assert.deepEqual(countedC, readC);
  assert.match(readC.reasons.join(), /of the files are gone/);

  // A count below what the walk saw of the new tree does not add up: the trees are read.
  const wrong = await detectAnomalies(repo, parent, b.tree, undefined, undefined, { files: 1, bytes: 1 });
  assert.deepEqual(wrong, read);
});
