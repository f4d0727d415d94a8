import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { baseEnv, CLI, describeTree, jsonLines, run, tempDir, writeRandomFile } from "../support/cli.js";

let dir: string;
let repo: string;
let env: Record<string, string>;

before(async () => {
  dir = await tempDir();
  repo = path.join(dir, "repo");
  env = baseEnv({ LIFEBOAT_PASSWORD: "crash", LIFEBOAT_REPOSITORY: repo });
  assert.equal((await run(["init"], { env })).code, 0);
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function countPacks(): Promise<number> {
  let n = 0;
  const data = path.join(repo, "data");
  for (const sub of await fs.readdir(data).catch(() => [] as string[])) {
    n += (await fs.readdir(path.join(data, sub))).filter((f) => !f.startsWith(".tmp-")).length;
  }
  return n;
}

/** Starts a backup and kills it with SIGKILL once `packs` more packs exist (or after `ms`). */
async function killMidway(src: string, packs: number, ms: number): Promise<void> {
  const start = await countPacks();
  const child = spawn(process.execPath, [CLI, "backup", "-q", src], { env, stdio: "ignore" });
  const exited = new Promise((r) => child.on("exit", r));
  const t0 = Date.now();
  while ((await countPacks()) - start < packs && Date.now() - t0 < ms)
    await new Promise((r) => setTimeout(r, 20));
  child.kill("SIGKILL");
  await exited;
}

test("kill -9 during backup: earlier snapshots restore, the next backup reuses uploaded data", async () => {
  const first = path.join(dir, "first");
  await fs.mkdir(first);
  await fs.writeFile(path.join(first, "keep.txt"), "from the first snapshot\n");
  assert.equal((await run(["backup", first], { env })).code, 0);

  const src = path.join(dir, "big");
  await fs.mkdir(src);
  for (let i = 0; i < 8; i++) await writeRandomFile(path.join(src, `part${i}.bin`), 50, 100 + i);
  // Several kills at different moments: after a few packs, and almost at once.
  await killMidway(src, 12, 60_000);
  await killMidway(src, 0, 150);
  await killMidway(src, 4, 60_000);

  const snaps = JSON.parse((await run(["snapshots", "--json"], { env })).stdout) as { paths: string[] }[];
  assert.equal(snaps.length, 1, "no snapshot may appear for a killed backup");
  const target = path.join(dir, "restore-first");
  const r = await run(["restore", "latest", "--target", target, "--verify"], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await describeTree(path.join(target, first)), await describeTree(first));

  const done = await run(["backup", src, "--json"], { env });
  assert.equal(done.code, 0, done.stderr);
  const s = jsonLines(done.stdout).find((l) => l.message_type === "summary")!;
  const total = s.total_bytes_processed as number;
  const added = s.data_added as number;
  assert.ok(
    added < total * 0.9,
    `the resumed backup added ${added} of ${total} bytes: uploaded packs were not reused`,
  );
  const t2 = path.join(dir, "restore-big");
  const r2 = await run(["restore", "latest", "--target", t2, "--verify"], { env });
  assert.equal(r2.code, 0, r2.stderr);
  assert.deepEqual(await describeTree(path.join(t2, src)), await describeTree(src));
});
