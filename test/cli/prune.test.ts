/**
 * forget and prune through the CLI: retention with reasons, space actually freed, a prune killed
 * at random moments never damages the repository, and prune running while two other processes
 * back up into the same repository never loses data a snapshot needs.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { baseEnv, CLI, describeTree, dirBytes, jsonLines, prng, run, tempDir } from "../support/cli.js";

let dir: string;
before(async () => {
  dir = await tempDir("lifeboat-prune-");
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const KiB = 1024;

/**
 * Writes the state of source `who` at round `n`: ten files; files 0-4 change every i+1 rounds,
 * so successive snapshots share data; files 5-9 cycle through five versions, so a backup keeps
 * meeting content that only forgotten snapshots had, which prune is deleting meanwhile.
 */
async function writeState(src: string, who: number, n: number): Promise<void> {
  await fs.mkdir(src, { recursive: true });
  for (let i = 0; i < 10; i++) {
    const version = i < 5 ? Math.floor(n / (i + 1)) : 1_000 + ((n + i) % 5);
    const size = 150 * KiB + ((i * 97 + version * 31) % 7) * 100 * KiB;
    await fs.writeFile(path.join(src, `f${i}`), prng(size, who * 1_000_000 + i * 1000 + version));
  }
}

async function newRepo(name: string): Promise<Record<string, string>> {
  const env = baseEnv({ LIFEBOAT_REPOSITORY: path.join(dir, name), LIFEBOAT_PASSWORD: "prune" });
  assert.equal((await run(["init"], { env })).code, 0);
  return env;
}

async function snapshots(
  env: Record<string, string>,
): Promise<{ id: string; tags: string[]; paths: string[] }[]> {
  const r = await run(["snapshots", "--json"], { env });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** Restores every snapshot and compares it with the state its tag names (`w<who>-r<round>`). */
async function verifyAll(env: Record<string, string>, work: string): Promise<number> {
  const snaps = await snapshots(env);
  for (const s of snaps) {
    const m = /^w(\d+)-r(\d+)$/.exec(s.tags[0] ?? "");
    assert.ok(m, `snapshot ${s.id} has no state tag`);
    const expected = path.join(work, `expected-${s.id}`);
    const restored = path.join(work, `restored-${s.id}`);
    await writeState(expected, Number(m[1]), Number(m[2]));
    const r = await run(["restore", s.id, "--target", restored], { env });
    assert.equal(r.code, 0, `restore ${s.id}: ${r.stderr}`);
    assert.deepEqual(
      contentOnly(await describeTree(path.join(restored, s.paths[0]!))),
      contentOnly(await describeTree(expected)),
      `snapshot ${s.id} (${s.tags[0]}) restores to what was backed up`,
    );
    await fs.rm(expected, { recursive: true });
    await fs.rm(restored, { recursive: true });
  }
  return snaps.length;
}

/** Files by name, size and SHA-256 (describeTree lines also carry times and modes). */
const contentOnly = (lines: string[]) =>
  lines
    .filter((l) => l.startsWith("F "))
    .map((l) => {
      const f = l.split(" ");
      return `${f[1]} ${f[3]} ${f[5]}`;
    });

test("forget: a policy keeps and removes with reasons; ids; an empty policy is refused", async () => {
  const env = await newRepo("forget");
  const src = path.join(dir, "forget-src");
  for (let n = 0; n < 4; n++) {
    await writeState(src, 1, n);
    assert.equal((await run(["backup", src, "--tag", n === 0 ? "release" : `r${n}`], { env })).code, 0);
  }
  const empty = await run(["forget"], { env });
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /no retention policy/);

  const dry = await run(["forget", "--keep-last", "2", "--keep-tag", "release", "--dry-run", "--json"], {
    env,
  });
  assert.equal(dry.code, 0, dry.stderr);
  const plan = jsonLines(dry.stdout).find((l) => l.action === "forget") as {
    groups: { keep: { reasons: string[] }[]; remove: unknown[] }[];
    removed: string[];
  };
  assert.equal(plan.groups.length, 1);
  assert.equal(plan.groups[0]!.keep.length, 3);
  assert.equal(plan.removed.length, 1);
  assert.deepEqual(
    plan.groups[0]!.keep.map((k) => k.reasons.join("+")).sort(),
    ["last snapshot", "last snapshot", "tagged release"].sort(),
  );
  assert.equal((await snapshots(env)).length, 4, "dry run removes nothing");

  const real = await run(["forget", "--keep-last", "2", "--keep-tag", "release"], { env });
  assert.equal(real.code, 0, real.stderr);
  const left = await snapshots(env);
  assert.equal(left.length, 3);

  const one = await run(["forget", left[0]!.id.slice(0, 8)], { env });
  assert.equal(one.code, 0, one.stderr);
  assert.equal((await snapshots(env)).length, 2);
  const unknown = await run(["forget", "ffffffff"], { env });
  assert.equal(unknown.code, 13);
});

test("prune frees what forgotten snapshots used; what is left checks and restores", async () => {
  const env = await newRepo("frees");
  const src = path.join(dir, "frees-src");
  for (let n = 0; n < 6; n++) {
    await writeState(src, 2, n * 3); // big steps: most files change each round
    assert.equal((await run(["backup", src, "--tag", `w2-r${n * 3}`], { env })).code, 0);
  }
  const before = await dirBytes(env.LIFEBOAT_REPOSITORY!);
  const dry = await run(["prune", "--dry-run", "--json"], { env });
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(
    (jsonLines(dry.stdout).find((l) => l.action === "prune") as { mark: { bytesToFree: number } }).mark
      .bytesToFree,
    0,
  );

  const f = await run(["forget", "--keep-last", "2", "--prune", "--max-unused", "0", "--json"], { env });
  assert.equal(f.code, 0, f.stderr);
  const p = jsonLines(f.stdout).find((l) => l.action === "prune") as {
    mark: { bytesToFree: number; unusedPacks: string[] };
    swept: { deletedPacks: number; bytesFreed: number }[];
    waiting: unknown[];
  };
  assert.ok(p.mark.bytesToFree > 0);
  assert.equal(p.waiting.length, 0, "no backup was running, so the plan is carried out at once");
  assert.ok(p.swept[0]!.deletedPacks > 0);
  const afterBytes = await dirBytes(env.LIFEBOAT_REPOSITORY!);
  assert.ok(afterBytes < before * 0.6, `repository shrank from ${before} to ${afterBytes}`);

  const check = await run(["check", "--read-data"], { env });
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.doesNotMatch(check.stdout, /not in any index/);
  assert.equal(await verifyAll(env, path.join(dir, "frees-work")), 2);
  // Nothing left to do: a second prune plans nothing.
  const again = await run(["prune", "--json", "--max-unused", "0"], { env });
  const m = (jsonLines(again.stdout).find((l) => l.action === "prune") as { mark: { plan?: string } }).mark;
  assert.equal(m.plan, undefined);
});

test("a prune killed at any moment leaves a repository that checks clean and restores", async () => {
  const env = await newRepo("killed");
  const src = path.join(dir, "killed-src");
  let round = 0;
  for (let attempt = 0; attempt < 8; attempt++) {
    for (let k = 0; k < 2; k++, round++) {
      await writeState(src, 3, round * 2);
      assert.equal((await run(["backup", src, "--tag", `w3-r${round * 2}`], { env })).code, 0);
    }
    assert.equal((await run(["forget", "--keep-last", "2"], { env })).code, 0);
    // Kill prune after a growing delay, so different rounds stop it in different phases.
    const child = spawn(process.execPath, [CLI, "prune", "--max-unused", "0"], { env, stdio: "ignore" });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const timer = setTimeout(() => child.kill("SIGKILL"), 150 + attempt * 60);
    const code = await exited;
    clearTimeout(timer);
    assert.ok(code === 0 || code === null, `prune exited ${code}`);
    const check = await run(["check"], { env });
    assert.equal(check.code, 0, `after kill #${attempt}: ${check.stdout}${check.stderr}`);
  }
  // A later prune finishes the job; everything still restores.
  const p = await run(["prune", "--max-unused", "0"], { env });
  assert.equal(p.code, 0, p.stderr);
  const check = await run(["check", "--read-data"], { env });
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.equal(await verifyAll(env, path.join(dir, "killed-work")), 2);
});

test("two backups and forget --prune at once, many rounds: every remaining snapshot restores", async () => {
  const env = await newRepo("concurrent");
  const rounds = Number(process.env.LIFEBOAT_TEST_ROUNDS ?? 10);
  const writer = async (who: number) => {
    const src = path.join(dir, `concurrent-src-${who}`);
    for (let n = 0; n < rounds; n++) {
      await writeState(src, who, n);
      const r = await run(["backup", src, "--tag", `w${who}-r${n}`], { env });
      assert.equal(r.code, 0, `backup w${who} r${n}: ${r.stderr}`);
    }
  };
  let writing = true;
  let prunes = 0;
  const pruner = async () => {
    while (writing) {
      const r = await run(["forget", "--keep-last", "2", "--prune", "--max-unused", "0"], { env });
      assert.equal(r.code, 0, `forget --prune: ${r.stderr}`);
      prunes++;
    }
  };
  const p = pruner();
  await Promise.all([writer(4), writer(5)]);
  writing = false;
  await p;
  assert.ok(prunes >= 2, `prune ran ${prunes} times during the backups`);
  const last = await run(["forget", "--keep-last", "2", "--prune", "--max-unused", "0"], { env });
  assert.equal(last.code, 0, last.stderr);
  const check = await run(["check", "--read-data"], { env });
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.equal(await verifyAll(env, path.join(dir, "concurrent-work")), 4);
});

test("a backup killed while it streams a pack leaves a temporary file; prune removes it once a day old", async () => {
  const env = await newRepo("killed-stream");
  const repo = env.LIFEBOAT_REPOSITORY!;
  const src = path.join(dir, "killed-stream-src");
  await fs.mkdir(src, { recursive: true });
  // Incompressible data, so packs take a while to fill and stream for most of the backup.
  for (let i = 0; i < 12; i++) await fs.writeFile(path.join(src, `big${i}`), prng(4 * 1024 * KiB, 9000 + i));
  const temporaries = async () =>
    (await fs.readdir(path.join(repo, "data")).catch(() => [] as string[])).filter((n) =>
      n.startsWith(".tmp-"),
    );
  const child = spawn(process.execPath, [CLI, "backup", src], { env, stdio: "ignore" });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  // Killed once a piece of a pack is written (not the moment its file is created).
  const written = async () => {
    for (const t of await temporaries())
      if ((await fs.stat(path.join(repo, "data", t)).catch(() => undefined))?.size) return true;
    return false;
  };
  for (let i = 0; i < 2000 && !(await written()); i++) await new Promise((r) => setTimeout(r, 5));
  child.kill("SIGKILL");
  assert.equal(await exited, null, "killed before it finished");
  const left = await temporaries();
  assert.ok(left.length > 0, "the pack being written stays behind as a temporary file");
  assert.equal((await run(["check"], { env })).code, 0, "and nothing reads it");

  // A day has not passed: prune leaves it (a backup of another host may still be writing it).
  let p = await run(["prune", "--json"], { env });
  assert.equal(p.code, 0, p.stderr);
  assert.deepEqual(jsonLines(p.stdout).find((l) => l.message_type === "summary")?.temporaries, {
    files: 0,
    bytes: 0,
  });
  assert.deepEqual(await temporaries(), left);

  const old = new Date(Date.now() - 2 * 24 * 3600_000);
  for (const t of left) await fs.utimes(path.join(repo, "data", t), old, old);
  p = await run(["prune", "--json"], { env });
  assert.equal(p.code, 0, p.stderr);
  const summary = jsonLines(p.stdout).find((l) => l.message_type === "summary") as {
    temporaries: { files: number; bytes: number };
  };
  assert.equal(summary.temporaries.files, left.length);
  assert.ok(summary.temporaries.bytes > 0);
  assert.deepEqual(await temporaries(), []);
  p = await run(["prune"], { env });
  assert.doesNotMatch(p.stderr + p.stdout, /temporary file/, "nothing more to say");

  // The next backup completes and restores.
  assert.equal((await run(["backup", src], { env })).code, 0);
  assert.equal((await run(["check", "--read-data"], { env })).code, 0);
});
