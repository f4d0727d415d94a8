/**
 * Kill points for files: backup and `forget --keep-last 3 --prune` on a changing tree (the
 * sequence of issue 18), `copy`, and `restore`, each SIGKILLed after the Nth storage write or
 * after a random delay. After every kill: `check --read-data` exits 0, every snapshot that was
 * there before (and every one listed now) restores byte for byte as the tree was when it was
 * backed up (whole trees, hidden files included), and the same command run again completes
 * without storing again what the killed run had made durable (blobs in its index files).
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { removeTempDir, show, tempDir, writeRandomBytes } from "../support/cli.js";
import { Killer } from "./killer.js";
import {
  assertRestores,
  assertSameTree,
  checkClean,
  copyTree,
  envFor,
  figure,
  indexedBlobs,
  initSmall,
  lbOk,
  newBlobs,
  PROFILE,
  rng,
  SEED,
  type SnapshotInfo,
  sized,
  rounds as sizedRounds,
  snapshots,
  summary,
  timeUp,
} from "./support.js";
import { evolve } from "./tree.js";

const PW = "torture-kill";

/** Restores every listed snapshot and compares it with the state its tag names. */
async function restoresAll(
  env: Record<string, string>,
  list: SnapshotInfo[],
  states: string,
  scratch: string,
): Promise<number> {
  for (const s of list) {
    const tag = s.tags.find((t) => t.startsWith("r"));
    assert.ok(tag, `snapshot ${s.id} has no round tag`);
    await assertRestores(env, s.id, s.paths[0]!, path.join(states, tag), scratch);
  }
  return list.length;
}

test("backup and forget --keep-last 3 --prune on a changing tree, killed at random points", async () => {
  const base = await tempDir("lifeboat-torture-seq-");
  try {
    const repo = path.join(base, "repo");
    const src = path.join(base, "src");
    const states = path.join(base, "states");
    const scratch = path.join(base, "scratch");
    await fs.mkdir(scratch);
    await initSmall(repo, PW);
    const env = envFor(repo, PW);
    const r = rng(`${SEED}/sequence`);
    const killer = new Killer(r);
    const rounds = sizedRounds(5, 70);
    let reused = 0;
    let restores = 0;
    let pendingSeen = 0;
    let duplicatesSeen = 0;
    let roundsRun = 0;
    for (let round = 0; round < rounds && !timeUp(); round++) {
      roundsRun++;
      const tag = `r${round}`;
      await evolve(src, round, `${SEED}`);
      await copyTree(src, path.join(states, tag));

      // The backup, maybe killed.
      const before = await snapshots(env);
      const b0 = await indexedBlobs(repo, PW);
      const args = ["backup", "--json", "--tag", tag, src];
      const b = await killer.run("backup", args, { env }, killer.mode(sized(0.6, 0.8)));
      if (b.killed) {
        const c = await checkClean(env, `backup ${tag} killed`);
        pendingSeen += c.pendingPlans.length;
        duplicatesSeen += c.duplicateBlobs;
        const now = await snapshots(env);
        for (const s of before)
          assert.ok(
            now.some((x) => x.id === s.id),
            `snapshot ${s.id} survived the kill`,
          );
        restores += await restoresAll(env, now, states, scratch);
        const b1 = await indexedBlobs(repo, PW);
        const again = await lbOk(args, { env });
        killer.learn("backup", again);
        const stored = newBlobs(b1, await indexedBlobs(repo, PW));
        const durable = newBlobs(b0, b1);
        const twice = [...durable].filter((id) => stored.has(id));
        assert.deepEqual(
          twice,
          [],
          `the backup after the kill stored again ${twice.length} blob(s) the killed one had indexed`,
        );
        reused += durable.size;
      } else assert.equal(b.code, 0, show(b));

      // forget --keep-last 3 --prune, maybe killed.
      const kept = (await snapshots(env)).slice(-3);
      const fargs = ["forget", "--json", "--keep-last", "3", "--prune"];
      const f = await killer.run("forget --prune", fargs, { env }, killer.mode(sized(0.6, 0.8)));
      if (f.killed) {
        const c = await checkClean(env, `forget --prune after ${tag} killed`);
        pendingSeen += c.pendingPlans.length;
        duplicatesSeen += c.duplicateBlobs;
        const now = await snapshots(env);
        for (const s of kept)
          assert.ok(
            now.some((x) => x.id === s.id),
            `kept snapshot ${s.id} survived`,
          );
        restores += await restoresAll(env, now, states, scratch);
        killer.learn("forget --prune", await lbOk(fargs, { env }));
      } else assert.equal(f.code, 0, show(f));
    }
    // At the end: clean, nothing pending, the kept snapshots restore.
    const prune = await lbOk(["prune", "--json"], { env });
    const end = await checkClean(env, "the last prune");
    assert.deepEqual(end.pendingPlans, [], "no plan left once every prune has run to the end");
    const last = await snapshots(env);
    restores += await restoresAll(env, last, states, scratch);
    const t = killer.totals();
    await figure("kill/backup+forget-prune", {
      rounds: roundsRun,
      planned: rounds,
      ...t,
      perCommand: killer.summary(),
      blobsReusedAfterKill: reused,
      restoresCompared: restores,
      pendingPlansSeenAfterKills: pendingSeen,
      duplicateBlobsSeenAfterKills: duplicatesSeen,
      lastPrune: summary(prune).swept,
    });
    console.log(`# sequence (${PROFILE}): ${t.killed} kills in ${t.runs} runs over ${rounds} rounds`);
  } finally {
    await removeTempDir(base);
  }
});

test("copy killed at random points: the copy checks clean, restores, and the next copy finishes it", async () => {
  const base = await tempDir("lifeboat-torture-copy-");
  try {
    const from = path.join(base, "copy-from");
    const to = path.join(base, "copy-to");
    const src = path.join(base, "src");
    const states = path.join(base, "states");
    const scratch = path.join(base, "scratch");
    await fs.mkdir(scratch);
    await initSmall(from, "from-pw");
    await initSmall(to, PW);
    const fromEnv = envFor(from, "from-pw");
    const env = envFor(to, PW, { LIFEBOAT_FROM_REPOSITORY: from, LIFEBOAT_FROM_PASSWORD: "from-pw" });
    const r = rng(`${SEED}/copy`);
    const killer = new Killer(r);
    const rounds = sizedRounds(4, 40);
    let reused = 0;
    let restores = 0;
    let roundsRun = 0;
    for (let round = 0; round < rounds && !timeUp(); round++) {
      roundsRun++;
      const tag = `r${round}`;
      await evolve(src, round, `${SEED}-copy`);
      await copyTree(src, path.join(states, tag));
      await lbOk(["backup", "--tag", tag, src], { env: fromEnv });
      const before = await snapshots(env);
      const b0 = await indexedBlobs(to, PW);
      const c = await killer.run("copy", ["copy", "--json"], { env, killUrl: "copy-to" }, killer.mode(0.8));
      if (!c.killed) {
        assert.equal(c.code, 0, show(c));
        continue;
      }
      await checkClean(env, `copy ${tag} killed`);
      const now = await snapshots(env);
      for (const s of before)
        assert.ok(
          now.some((x) => x.id === s.id),
          `copied snapshot ${s.id} survived`,
        );
      restores += await restoresAll(env, now, states, scratch);
      const b1 = await indexedBlobs(to, PW);
      const again = await lbOk(["copy", "--json"], { env, killUrl: "copy-to" });
      killer.learn("copy", again);
      const stored = newBlobs(b1, await indexedBlobs(to, PW));
      const twice = [...newBlobs(b0, b1)].filter((id) => stored.has(id));
      assert.deepEqual(twice, [], `the copy after the kill stored again ${twice.length} blob(s)`);
      reused += newBlobs(b0, b1).size;
      // Every source snapshot is in the copy once.
      const copied = await snapshots(env);
      const tags = copied.map((s) => s.tags.find((x) => x.startsWith("r"))).sort();
      assert.equal(new Set(tags).size, round + 1, `each of the ${round + 1} snapshots copied once: ${tags}`);
    }
    await checkClean(env, "the last copy");
    restores += await restoresAll(env, await snapshots(env), states, scratch);
    const t = killer.totals();
    await figure("kill/copy", {
      rounds: roundsRun,
      planned: rounds,
      ...t,
      perCommand: killer.summary(),
      blobsReusedAfterKill: reused,
      restoresCompared: restores,
    });
    console.log(`# copy (${PROFILE}): ${t.killed} kills in ${t.runs} runs`);
  } finally {
    await removeTempDir(base);
  }
});

/** Temporary files a killed restore leaves (`.NAME.lifeboat-XXXX`, src/fsio/file-write.ts). */
async function leftovers(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await leftovers(p)));
    else if (/^\..+\.lifeboat-[0-9a-f]{12}[0-9a-z]+$/.test(e.name)) out.push(p);
  }
  return out;
}

const restoreLeftovers: string[] = [];

test("restore killed at random moments, then run again to the end: every file right", async () => {
  const base = await tempDir("lifeboat-torture-restore-");
  try {
    const repo = path.join(base, "repo");
    const src = path.join(base, "src");
    const scratch = path.join(base, "scratch");
    await fs.mkdir(scratch);
    await initSmall(repo, PW);
    const env = envFor(repo, PW);
    await evolve(src, 0, `${SEED}-restore`);
    // Large files too, so kills land inside them (issue 18, defect 8).
    for (let i = 0; i < 3; i++)
      await writeRandomBytes(path.join(src, `.big${i}`), sized(6, 40) * 1024 * 1024, `${SEED}-rb${i}`);
    await lbOk(["backup", src], { env });
    const r = rng(`${SEED}/restore`);
    const killer = new Killer(r);
    const rounds = sizedRounds(3, 40);
    let roundsRun = 0;
    for (let round = 0; round < rounds && !timeUp(); round++) {
      roundsRun++;
      const target = path.join(scratch, `t${round}`);
      // One to three kills, then a run to the end.
      const kills = 1 + Math.floor(r() * 3);
      for (let k = 0; k < kills; k++) {
        const x = await killer.run(
          "restore",
          ["restore", "latest", "--target", target],
          { env },
          "delay",
          false,
        );
        if (!x.killed) assert.equal(x.code, 0, show(x));
      }
      const done = await lbOk(["restore", "latest", "--target", target], { env });
      killer.learn("restore", done);
      const left = await leftovers(target);
      restoreLeftovers.push(...left.map((p) => path.relative(target, p)));
      // Every file of the snapshot is right, whatever else the killed runs left beside them.
      const clean = path.join(scratch, `clean${round}`);
      await copyTree(path.join(target, src), clean);
      for (const p of await leftovers(clean)) await fs.rm(p);
      await assertSameTree(src, clean, `restore round ${round} (leftovers aside)`);
      await removeTempDir(clean);
      await removeTempDir(target);
    }
    const t = killer.totals();
    await figure("kill/restore", {
      rounds: roundsRun,
      planned: rounds,
      ...t,
      perCommand: killer.summary(),
      leftoverTempFiles: restoreLeftovers.length,
    });
    console.log(
      `# restore (${PROFILE}): ${t.killed} kills in ${t.runs} runs; ${restoreLeftovers.length} leftover temp file(s)`,
    );
  } finally {
    await removeTempDir(base);
  }
});

test("a resumed restore leaves no temporary files of the killed runs (defect 8)", () => {
  assert.deepEqual(restoreLeftovers, [], "the target holds exactly the snapshot");
});
