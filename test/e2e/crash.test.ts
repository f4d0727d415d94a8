/**
 * kill -9 during a backup: the repository stays usable (snapshots lists, earlier snapshots
 * restore byte-for-byte, no snapshot appears for a killed backup), and the next backup
 * completes, reusing the packs already indexed.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import {
  assertTreesEqual,
  countFiles,
  findNamed,
  MiB,
  repoEnv,
  run,
  runOk,
  show,
  startCli,
  summaryOf,
  useWorkspace,
  waitFor,
  withTempDir,
  writeRandomBytes,
} from "../support/cli.js";

const FILES = 8;
/** Enough for the first index file (written every 8 packs of 16 MiB) to appear well before the end. */
const TOTAL = 256 * MiB;
/** Rounds of "kill at a random moment" (seeded; LIFEBOAT_E2E_SEED changes the seed), after one
 * round that kills almost at once. */
const ROUNDS = 3;
const SEED = Number(process.env.LIFEBOAT_E2E_SEED ?? 20261125);
const notTemp = (name: string) => !name.startsWith(".tmp-");

let small: string;
let big: string;

const ws = useWorkspace({
  setup: async () => {
    small = path.join(ws.base, "small");
    big = path.join(ws.base, "big");
    await fs.mkdir(path.join(small, "d"), { recursive: true });
    await writeRandomBytes(path.join(small, "a.bin"), 3 * MiB, "crash-small");
    await fs.writeFile(path.join(small, "d", "note.txt"), "from before the crash\n");
    await fs.mkdir(big);
    for (let i = 0; i < FILES; i++)
      await writeRandomBytes(path.join(big, `f${i}.bin`), TOTAL / FILES, `crash${i}`);
  },
});

/** A new repository holding one snapshot of `small`; returns its env and snapshot id. */
async function repoWithSnapshot(name: string) {
  const repo = path.join(ws.base, name);
  const env = repoEnv(repo, "crash");
  await runOk(["init"], { env });
  const r = await runOk(["backup", "--json", small], { env });
  return { repo, env, snap: summaryOf(r).snapshot_id as string };
}

/** The repository is still usable: `snapshots` lists exactly `ids`, and `snap` restores exactly. */
async function assertIntact(env: Record<string, string>, ids: string[], snap: string) {
  const s = await run(["snapshots", "--json"], { env });
  assert.equal(s.code, 0, show(s));
  assert.deepEqual((JSON.parse(s.stdout) as { id: string }[]).map((x) => x.id).sort(), [...ids].sort());
  assert.equal((await run(["snapshots"], { env })).code, 0);
  await withTempDir(async (out) => {
    const r = await run(["restore", snap, "--target", out, "--verify"], { env });
    assert.equal(r.code, 0, show(r));
    await assertTreesEqual(small, path.join(out, small));
  });
}

async function assertBigRestores(env: Record<string, string>) {
  await withTempDir(async (out) => {
    const r = await run(["restore", `latest:${big}`, "--target", out, "--verify"], {
      env,
      timeoutMs: 180_000,
    });
    assert.equal(r.code, 0, show(r));
    await assertTreesEqual(big, out);
  });
}

test("kill -9 after some packs were indexed; the next backup reuses them", async (t) => {
  const { repo, env, snap } = await repoWithSnapshot("repo-crash");
  const indexDir = path.join(repo, "index");
  const dataDir = path.join(repo, "data");
  // Index files are put as index/.tmp-* and then renamed: count only the renamed ones.
  const indexesBefore = await countFiles(indexDir, notTemp);
  const { child, done } = startCli(["backup", big], { env, timeoutMs: 180_000 });
  // An index file is written every 8 packs: wait for the first one of this backup, then kill.
  const sawIndex = await waitFor(
    async () => (await countFiles(indexDir, notTemp)) > indexesBefore,
    120_000,
    10,
  );
  const packsAtKill = await countFiles(dataDir, notTemp);
  child.kill("SIGKILL");
  const killed = await done;
  assert.ok(sawIndex, "the backup wrote no index file while running");
  assert.equal(killed.signal, "SIGKILL", `the backup ended before it was killed:\n${show(killed)}`);
  const tmpLeft = await findNamed(repo, ".tmp-");
  t.diagnostic(
    `killed with ${packsAtKill} pack files on disk; ${tmpLeft.length} .tmp-* file(s) left by the crash`,
  );

  await assertIntact(env, [snap], snap);

  const r = await run(["backup", "--json", big], { env, timeoutMs: 180_000 });
  assert.equal(r.code, 0, show(r));
  const s = summaryOf(r);
  const added = s.data_added as number;
  t.diagnostic(`resumed backup: data_added=${(added / MiB).toFixed(1)} MiB of ${TOTAL / MiB} MiB`);
  // At least 8 packs (8 x 16 MiB) were indexed before the kill; those chunks are not stored again.
  assert.ok(
    added <= TOTAL - 100 * MiB,
    `the resumed backup stored ${(added / MiB).toFixed(1)} MiB of ${TOTAL / MiB} MiB: indexed packs were not reused`,
  );
  assert.ok(added > 0, "the killed backup cannot have stored everything");
  await assertIntact(env, [snap, s.snapshot_id as string], snap);
  await assertBigRestores(env);
});

test(`kill -9 almost at once, then at ${ROUNDS} random moments; then a backup completes`, async (t) => {
  const { env, snap } = await repoWithSnapshot("repo-random");
  let x = SEED >>> 0;
  const rand = () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
  t.diagnostic(`seed ${SEED}`);
  for (let round = 0; round <= ROUNDS; round++) {
    const delay = round === 0 ? 150 : Math.floor(100 + rand() * 2500);
    const { child, done } = startCli(["backup", big], { env, timeoutMs: 180_000 });
    await new Promise((res) => setTimeout(res, delay));
    child.kill("SIGKILL");
    const r = await done;
    t.diagnostic(`round ${round}: killed after ${delay} ms (${r.signal ?? `exited ${r.code}`})`);
    if (r.signal !== "SIGKILL") assert.equal(r.code, 0, show(r)); // finished first: must have succeeded
    const ids = JSON.parse((await runOk(["snapshots", "--json"], { env })).stdout) as { id: string }[];
    await assertIntact(
      env,
      ids.map((i) => i.id),
      snap,
    );
    assert.ok(ids.length <= 2 + round, "more snapshots than backups that finished");
    if (round === 0)
      assert.deepEqual(
        ids.map((i) => i.id),
        [snap],
        "no snapshot may appear for a killed backup",
      );
  }
  const r = await run(["backup", "--json", big], { env, timeoutMs: 180_000 });
  assert.equal(r.code, 0, show(r));
  t.diagnostic(`final backup: data_added=${((summaryOf(r).data_added as number) / MiB).toFixed(1)} MiB`);
  await assertBigRestores(env);
});
