import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { baseEnv, describeTree, run, tempDir, writeRandomFile } from "../support/cli.js";

test("a full repository disk: exit 15, a clear message, earlier snapshots intact", async (t) => {
  const dir = await tempDir();
  const mnt = path.join(dir, "small-disk");
  await fs.mkdir(mnt);
  const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt], { encoding: "utf8" });
  if (m.status !== 0) {
    await fs.rm(dir, { recursive: true, force: true });
    t.skip(`cannot mount a small tmpfs here (${m.stderr.trim()})`);
    return;
  }
  try {
    const repo = path.join(mnt, "repo");
    const env = baseEnv({ LIFEBOAT_REPOSITORY: repo, LIFEBOAT_PASSWORD: "full" });
    assert.equal((await run(["init"], { env })).code, 0);
    const small = path.join(dir, "small");
    await fs.mkdir(small);
    await fs.writeFile(path.join(small, "a.txt"), "fits\n");
    assert.equal((await run(["backup", small], { env })).code, 0);
    const big = path.join(dir, "big");
    await fs.mkdir(big);
    await writeRandomFile(path.join(big, "data.bin"), 60, 5);
    const r = await run(["backup", big], { env });
    assert.equal(r.code, 15, r.stderr);
    assert.match(r.stderr, /^error: no space left on the repository storage/m);
    assert.match(r.stderr, /hint: free space/);
    const snaps = JSON.parse((await run(["snapshots", "--json"], { env })).stdout) as unknown[];
    assert.equal(snaps.length, 1);
    const target = path.join(dir, "restored");
    assert.equal((await run(["restore", "latest", "--target", target, "--verify"], { env })).code, 0);
    assert.deepEqual(await describeTree(path.join(target, small)), await describeTree(small));
    // The failed write left no temporary file behind.
    const leftovers = spawnSync("find", [repo, "-name", ".tmp-*"], { encoding: "utf8" }).stdout.trim();
    assert.equal(leftovers, "");
  } finally {
    spawnSync("umount", [mnt]);
    await fs.rm(dir, { recursive: true, force: true });
  }
});
