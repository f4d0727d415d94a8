/**
 * `repair packs --from-repo COPY`: a repository whose packs were deleted or damaged heals from
 * a second repository that `copy` filled (other keys, other chunk boundaries), by content.
 * Data packs and a tree pack are deleted, a blob inside another pack is damaged; afterwards
 * `check --read-data` finds only what no copy holds (a file backed up after the copy was made),
 * which is reported by name, and every other snapshot restores byte for byte as before the damage.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import {
  assertTreesEqual,
  baseEnv,
  jsonLines,
  listAll,
  run,
  runOk,
  show,
  snapshotListing,
  useWorkspace,
  writeRandomFile,
} from "../support/cli.js";

const ws = useWorkspace({ password: "one password" });

const packs = async (repo: string) =>
  new Set(
    (await listAll(path.join(repo, "data")).catch(() => [] as string[])).filter((p) =>
      /\/[0-9a-f]{64}$/.test(p),
    ),
  );

/** Byte 5 of a pack is its type: 0 data, 1 tree. */
const packType = async (file: string) => ((await fs.readFile(file))[5] === 1 ? "tree" : "data");

const added = async (repo: string, before: Set<string>) => {
  const out = { data: [] as string[], tree: [] as string[] };
  for (const p of await packs(repo)) if (!before.has(p)) out[await packType(p)].push(p);
  return out;
};

const summary = (r: { stdout: string }) =>
  jsonLines(r.stdout).find((l) => l.message_type === "summary") as Record<string, unknown>;

test("packs deleted and damaged heal from a copy; what no copy holds is named", async () => {
  const { env, repo, src } = ws;
  await fs.mkdir(path.join(src, "sub", "deep"), { recursive: true });
  await writeRandomFile(path.join(src, "big.bin"), 6, 81);
  await writeRandomFile(path.join(src, "sub", "other.bin"), 3, 82);
  await fs.writeFile(path.join(src, "note.txt"), "a note\n".repeat(500));
  await fs.writeFile(path.join(src, "sub", "deep", "x.txt"), "deep\n");
  let before = await packs(repo);
  await runOk(["backup", src], { env });
  const first = await added(repo, before);
  await writeRandomFile(path.join(src, "big.bin"), 6, 83);
  before = await packs(repo);
  await runOk(["backup", src], { env });
  const second = await added(repo, before);
  const snaps = JSON.parse((await runOk(["snapshots", "--json"], { env })).stdout) as { id: string }[];
  const [s1, s2] = snaps.map((s) => s.id) as [string, string];
  const intact = new Map<string, string>();
  for (const id of [s1, s2]) {
    const target = path.join(ws.base, `intact-${id.slice(0, 8)}`);
    await runOk(["restore", id, "--target", target], { env });
    intact.set(id, target);
  }

  // The copy: another repository, another password, filled by `copy`.
  const copyEnv = baseEnv({ LIFEBOAT_REPOSITORY: path.join(ws.base, "copy"), LIFEBOAT_PASSWORD: "other" });
  await runOk(["init"], { env: copyEnv });
  await runOk(["copy", "--from-repo", repo], { env: { ...copyEnv, LIFEBOAT_FROM_PASSWORD: "one password" } });

  // A file backed up after the copy was made: no copy holds it.
  await writeRandomFile(path.join(src, "unique.bin"), 1, 84);
  before = await packs(repo);
  await runOk(["backup", src], { env });
  const third = await added(repo, before);
  assert.equal(third.data.length, 1);

  // The damage: the first backup's packs (data and trees: trees the later snapshots share),
  // one byte inside a blob of the second backup's data, the third backup's data.
  for (const p of [...first.data, ...first.tree, ...third.data]) await fs.rm(p);
  const victim = second.data[0]!;
  const bytes = await fs.readFile(victim);
  bytes[4096] = bytes[4096]! ^ 0x20;
  await fs.writeFile(victim, bytes);
  assert.equal((await run(["check", "--read-data"], { env })).code, 14);

  const from = ["--from-repo", path.join(ws.base, "copy")];
  const healEnv = { ...env, LIFEBOAT_FROM_PASSWORD: "other" };
  const untouched = await snapshotListing(repo);
  const dry = await run(["repair", "packs", ...from, "--dry-run", "--json"], { env: healEnv });
  assert.equal(dry.code, 14, show(dry));
  const d = summary(dry) as {
    badPacks: { why: string }[];
    lost: number;
    healed: number;
    healedBlobs: { data: number; tree: number };
    unhealed: { blob: string; type: string; neededBy: { snapshot?: string; path: string }[] }[];
  };
  assert.equal(d.badPacks.length, first.data.length + first.tree.length + 2);
  assert.equal(d.badPacks.filter((b) => b.why === "damaged").length, 1);
  assert.ok(d.healedBlobs.data > 0 && d.healedBlobs.tree > 0, JSON.stringify(d.healedBlobs));
  assert.equal(d.healed + d.unhealed.length, d.lost - ((d as { unneeded?: number }).unneeded ?? 0));
  assert.ok(d.unhealed.length > 0);
  for (const u of d.unhealed) {
    assert.equal(u.type, "data");
    assert.ok(
      u.neededBy.every((n) => n.path === path.join(src, "unique.bin")),
      JSON.stringify(u),
    );
  }
  assert.deepEqual(await snapshotListing(repo), untouched, "a dry run changes nothing");

  const real = await run(["repair", "packs", ...from], { env: healEnv });
  assert.equal(real.code, 14, show(real));
  assert.match(
    real.stderr,
    /data blob [0-9a-f]{12} is in no copy; needed by snapshot [0-9a-f]{8} .*unique\.bin/,
  );
  assert.match(real.stderr, /error: \d+ lost blob\(s\) are in no copy/);
  assert.match(real.stderr, /lifeboat repair snapshots/);
  assert.ok(!(await packs(repo)).has(victim), "the damaged pack is gone, its good blobs kept elsewhere");

  // Only what no copy holds is still missing; the rest restores as it did before the damage.
  const c = await run(["check", "--read-data", "--json"], { env });
  assert.equal(c.code, 14, show(c));
  const problems = (summary(c) as { problems: { kind: string; affected: { paths: string[] }[] }[] }).problems;
  assert.deepEqual(
    problems.map((p) => p.kind),
    ["missing-blob"],
  );
  assert.deepEqual(
    [...new Set(problems[0]!.affected.flatMap((a) => a.paths))],
    [path.join(src, "unique.bin")],
  );
  for (const [id, target] of intact) {
    const again = path.join(ws.base, `healed-${id.slice(0, 8)}`);
    await runOk(["restore", id, "--target", again, "--verify"], { env });
    await assertTreesEqual(target, again);
  }

  // repair snapshots rewrites the third around the lost file; then all is clean.
  await runOk(["repair", "snapshots", "--forget"], { env });
  assert.equal((await run(["check", "--read-data"], { env })).code, 0);
  const nothing = await run(["repair", "packs", ...from, "--json"], { env: healEnv });
  assert.equal(nothing.code, 0, show(nothing));
  assert.deepEqual((summary(nothing) as { badPacks: unknown[] }).badPacks, []);

  // Bad input: one line naming the fix.
  const none = await run(["repair", "packs"], { env });
  assert.equal(none.code, 2, show(none));
  assert.match(
    none.stderr,
    /^error: repair packs needs the repository holding a copy\n {2}hint: give --from-repo/,
  );
  const self = await run(["repair", "packs", "--from-repo", repo], {
    env: { ...env, LIFEBOAT_FROM_PASSWORD: "one password" },
  });
  assert.equal(self.code, 2, show(self));
  assert.match(self.stderr, /--from-repo is this repository itself/);
});
