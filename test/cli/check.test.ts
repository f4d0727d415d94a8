import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { baseEnv, jsonLines, listAll, run, tempDir, writeRandomFile } from "../support/cli.js";

let dir: string;
let repo: string;
let src: string;
let env: Record<string, string>;

before(async () => {
  dir = await tempDir();
  repo = path.join(dir, "repo");
  src = path.join(dir, "src");
  env = baseEnv({ LIFEBOAT_REPOSITORY: repo, LIFEBOAT_PASSWORD: "check" });
  await fs.mkdir(src);
  await writeRandomFile(path.join(src, "victim.bin"), 3, 1);
  await fs.writeFile(path.join(src, "bystander.txt"), "I live in another pack\n".repeat(100));
  assert.equal((await run(["init"], { env })).code, 0);
  assert.equal((await run(["backup", src], { env })).code, 0);
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function packs(): Promise<string[]> {
  return (await listAll(path.join(repo, "data"))).filter((p) => /\/[0-9a-f]{64}$/.test(p));
}

test("a clean repository checks clean, with and without reading data", async () => {
  const r = await run(["check", "--read-data", "--json"], { env });
  assert.equal(r.code, 0, r.stderr);
  const s = jsonLines(r.stdout).find((l) => l.message_type === "summary")!;
  assert.equal(s.ok, true);
  assert.ok((s.packsRead as number) >= 2);
  const sub = await run(["check", "--read-data-subset", "1/2", "--json"], { env });
  assert.equal(sub.code, 0);
  assert.equal(jsonLines(sub.stdout).find((l) => l.message_type === "summary")!.packsRead, 1);
  assert.equal((await run(["check", "--read-data-subset", "3/2"], { env })).code, 2);
});

test("one flipped byte: check --read-data names the pack and the file; restore fails only for that file", async () => {
  // The data pack holding victim.bin is the largest pack.
  const sizes = await Promise.all((await packs()).map(async (p) => [p, (await fs.stat(p)).size] as const));
  const [victimPack] = sizes.sort((a, b) => b[1] - a[1])[0]!;
  const before = await listAll(repo);
  const fh = await fs.open(victimPack, "r+");
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, 100_000);
  b[0] = b[0]! ^ 0x01;
  await fh.write(b, 0, 1, 100_000);
  await fh.close();

  const structural = await run(["check"], { env });
  assert.equal(structural.code, 0, "structure is intact; only --read-data can see a flipped byte");
  const r = await run(["check", "--read-data"], { env });
  assert.equal(r.code, 14);
  assert.match(r.stderr, new RegExp(path.basename(victimPack)));
  assert.match(r.stderr, /victim\.bin/);
  assert.doesNotMatch(r.stderr, /bystander/);
  assert.match(r.stderr, /^error: the repository is damaged/m);
  assert.deepEqual(await listAll(repo), before, "check must not modify the repository");

  const ok = await run(["restore", `latest:${src}/bystander.txt`, "--target", path.join(dir, "r1")], { env });
  assert.equal(ok.code, 0, ok.stderr);
  const bad = await run(["restore", "latest", "--target", path.join(dir, "r2")], { env });
  assert.equal(bad.code, 14);
  assert.match(bad.stderr, /victim\.bin/);
  assert.match(bad.stderr, /authentication failed/);
  await assert.rejects(
    fs.stat(path.join(dir, "r2", src, "victim.bin")),
    "a damaged file is never left under its name",
  );
  assert.ok((await fs.stat(path.join(dir, "r2", src, "bystander.txt"))).isFile());
});

test("a deleted pack and a deleted index are reported by check", async () => {
  const [anyPack] = await packs();
  await fs.rm(anyPack!);
  const r = await run(["check", "--json"], { env });
  assert.equal(r.code, 14);
  assert.match(r.stderr, /missing from storage/);
  const idx = (await listAll(path.join(repo, "index"))).filter((p) => /[0-9a-f]{64}$/.test(p));
  for (const f of idx) await fs.rm(f);
  const r2 = await run(["check"], { env });
  assert.equal(r2.code, 14);
  assert.match(r2.stderr, /not in the index/);
});
