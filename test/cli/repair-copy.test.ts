/**
 * copy between repositories with different passwords (dedup in the destination, nothing copied
 * twice), and repair: a deleted index file is rebuilt from the packs; a deleted pack is
 * reported, and repair snapshots keeps everything else restorable while naming what is lost.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { baseEnv, describeTree, jsonLines, listAll, run, tempDir, writeRandomFile } from "../support/cli.js";

let dir: string;
let src: string;
before(async () => {
  dir = await tempDir("lifeboat-repair-");
  src = path.join(dir, "src");
  await fs.mkdir(path.join(src, "sub"), { recursive: true });
  await writeRandomFile(path.join(src, "big.bin"), 6, 7);
  await writeRandomFile(path.join(src, "sub", "other.bin"), 3, 8);
  await fs.writeFile(path.join(src, "note.txt"), "hello\n".repeat(1000));
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const envFor = (name: string, password: string) =>
  baseEnv({ LIFEBOAT_REPOSITORY: path.join(dir, name), LIFEBOAT_PASSWORD: password });

async function initWithBackup(name: string, password: string): Promise<Record<string, string>> {
  const env = envFor(name, password);
  assert.equal((await run(["init"], { env })).code, 0);
  const b = await run(["backup", src], { env });
  assert.equal(b.code, 0, b.stderr);
  return env;
}

async function restoresEqual(env: Record<string, string>, snap: string, target: string): Promise<void> {
  const r = await run(["restore", snap, "--target", target], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await describeTree(path.join(target, src)), await describeTree(src));
}

test("copy: another password, dedup against what the destination has, nothing copied twice", async () => {
  const from = await initWithBackup("copy-from", "source password");
  await fs.writeFile(path.join(src, "later.txt"), "added later\n");
  assert.equal((await run(["backup", src], { env: from })).code, 0);
  await fs.rm(path.join(src, "later.txt"));
  // The destination already backed up the same folder itself.
  const to = await initWithBackup("copy-to", "destination password");
  const env = {
    ...to,
    LIFEBOAT_FROM_REPOSITORY: from.LIFEBOAT_REPOSITORY!,
    LIFEBOAT_FROM_PASSWORD: "source password",
  };

  const wrong = await run(["copy"], { env: { ...env, LIFEBOAT_FROM_PASSWORD: "nope" } });
  assert.equal(wrong.code, 12, wrong.stderr);
  const r = await run(["copy", "--json"], { env });
  assert.equal(r.code, 0, r.stderr);
  const s = jsonLines(r.stdout).find((l) => l.message_type === "summary") as {
    copied: unknown[];
    bytesAdded: number;
  };
  assert.equal(s.copied.length, 2);
  assert.ok(s.bytesAdded < 64 * 1024, `copy stored ${s.bytesAdded} bytes the destination already had`);

  const again = await run(["copy", "--json"], { env });
  const s2 = jsonLines(again.stdout).find((l) => l.message_type === "summary") as {
    copied: unknown[];
    skipped: unknown[];
  };
  assert.equal(s2.copied.length, 0);
  assert.equal(s2.skipped.length, 2);

  const snaps = JSON.parse((await run(["snapshots", "--json"], { env: to })).stdout) as {
    id: string;
    meta?: { copiedFrom?: string };
  }[];
  assert.equal(snaps.length, 3);
  const copied = snaps.filter((x) => x.meta?.copiedFrom);
  assert.equal(copied.length, 2);
  await restoresEqual(to, copied[0]!.id, path.join(dir, "copy-restore"));
  assert.equal((await run(["check", "--read-data"], { env: to })).code, 0);
});

test("repair index: a deleted index file is rebuilt from the pack headers", async () => {
  const env = await initWithBackup("reindex", "pw");
  const repo = env.LIFEBOAT_REPOSITORY!;
  for (const f of await listAll(path.join(repo, "index"))) await fs.rm(f);
  const broken = await run(["check"], { env });
  assert.equal(broken.code, 14, broken.stdout + broken.stderr);
  const r = await run(["repair", "index", "--json"], { env });
  assert.equal(r.code, 0, r.stderr);
  const s = jsonLines(r.stdout).find((l) => l.message_type === "summary") as {
    packs: number;
    damaged: unknown[];
  };
  assert.ok(s.packs >= 2);
  assert.deepEqual(s.damaged, []);
  const check = await run(["check", "--read-data"], { env });
  assert.equal(check.code, 0, check.stdout + check.stderr);
  await restoresEqual(env, "latest", path.join(dir, "reindex-restore"));
});

test("a deleted pack: check names it, repair snapshots keeps the rest restorable and lists the loss", async () => {
  const env = envFor("lostpack", "pw");
  const repo = env.LIFEBOAT_REPOSITORY!;
  const own = path.join(dir, "lostpack-src");
  await fs.mkdir(path.join(own, "sub"), { recursive: true });
  await writeRandomFile(path.join(own, "keep.bin"), 2, 9);
  assert.equal((await run(["init"], { env })).code, 0);
  assert.equal((await run(["backup", own], { env })).code, 0);
  const dataPacks = async () =>
    (await listAll(path.join(repo, "data"))).filter((p) => /\/[0-9a-f]{64}$/.test(p));
  const first = new Set(await dataPacks());
  // The second backup adds one file: its content lands in a pack of its own.
  await writeRandomFile(path.join(own, "sub", "victim.bin"), 2, 10);
  assert.equal((await run(["backup", own], { env })).code, 0);
  const added = (await dataPacks()).filter((p) => !first.has(p));
  const sizes = await Promise.all(added.map(async (p) => ({ p, size: (await fs.stat(p)).size })));
  const victim = sizes.sort((a, b) => b.size - a.size)[0]!.p;
  await fs.rm(victim);

  const check = await run(["check"], { env });
  assert.equal(check.code, 14);
  assert.match(check.stdout + check.stderr, new RegExp(path.basename(victim)));

  assert.equal((await run(["repair", "index"], { env })).code, 0);
  const dry = await run(["repair", "snapshots", "--dry-run", "--json"], { env });
  const lost = (
    jsonLines(dry.stdout).find((l) => l.message_type === "summary") as { snapshots: { lost: string[] }[] }
  ).snapshots;
  assert.equal(lost.length, 1, "only the second snapshot needed the pack");
  assert.deepEqual(lost[0]!.lost, [`${own}/sub/victim.bin`]);
  const fix = await run(["repair", "snapshots", "--forget"], { env });
  assert.equal(fix.code, 0, fix.stderr);
  assert.match(fix.stdout, /lost: .*victim\.bin/);
  const after = await run(["check", "--read-data"], { env });
  assert.equal(after.code, 0, after.stdout + after.stderr);
  const snaps = JSON.parse((await run(["snapshots", "--json"], { env })).stdout) as { tags: string[] }[];
  assert.equal(snaps.length, 2);
  assert.ok(snaps[1]!.tags.includes("repaired"));
  const target = path.join(dir, "lostpack-restore");
  const r = await run(["restore", "latest", "--target", target], { env });
  assert.equal(r.code, 0, r.stderr);
  const files = (await describeTree(path.join(target, own))).filter((l) => l.startsWith("F "));
  assert.deepEqual(
    files,
    (await describeTree(own)).filter((l) => l.startsWith("F ") && !l.includes("victim.bin")),
  );
});
