import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { baseEnv, describeTree, dirBytes, jsonLines, run, tempDir, writeRandomFile } from "../support/cli.js";

let dir: string;
let repo: string;
let src: string;
let env: Record<string, string>;

before(async () => {
  dir = await tempDir();
  repo = path.join(dir, "repo");
  src = path.join(dir, "src");
  env = baseEnv({ LIFEBOAT_PASSWORD: "round trip password", LIFEBOAT_REPOSITORY: repo });
  assert.equal((await run(["init"], { env })).code, 0);
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function makeHardTree(root: string): Promise<void> {
  await fs.mkdir(root, { recursive: true });
  await fs.writeFile(path.join(root, "ümlaut ✓ 日本.txt"), "unicode\n");
  await fs.writeFile(path.join(root, "line\nbreak"), "newline in the name\n");
  await fs.writeFile(path.join(root, "-rf"), "starts with a dash\n");
  await fs.writeFile(path.join(root, "--help"), "another\n");
  await fs.writeFile(path.join(root, "empty"), "");
  await fs.mkdir(path.join(root, "empty-dir"));
  let deep = path.join(root, "deep");
  for (let i = 0; i < 60; i++) deep = path.join(deep, `d${i}`);
  await fs.mkdir(deep, { recursive: true });
  await fs.writeFile(path.join(deep, "bottom.txt"), "deep\n");
  await fs.symlink("does/not/exist", path.join(root, "dangling"));
  await fs.symlink("ümlaut ✓ 日本.txt", path.join(root, "good-link"));
  await fs.writeFile(path.join(root, "hard-a"), "hard linked\n");
  await fs.mkdir(path.join(root, "sub"));
  await fs.link(path.join(root, "hard-a"), path.join(root, "sub", "hard-b"));
  await fs.writeFile(path.join(root, "private"), "secret\n", { mode: 0o600 });
  await fs.chmod(path.join(root, "private"), 0o600);
  await fs.writeFile(path.join(root, "script.sh"), "#!/bin/sh\n", { mode: 0o755 });
  await fs.chmod(path.join(root, "script.sh"), 0o755);
  await fs.writeFile(path.join(root, "readonly"), "ro\n");
  await fs.chmod(path.join(root, "readonly"), 0o444);
  await fs.mkdir(path.join(root, "setgid"));
  await fs.chmod(path.join(root, "setgid"), 0o2775);
  await writeRandomFile(path.join(root, "big.bin"), 300, 7);
  await fs.utimes(
    path.join(root, "empty"),
    new Date("2001-02-03T04:05:06Z"),
    new Date("2001-02-03T04:05:06Z"),
  );
}

test("a tree of hard cases restores byte for byte, with metadata", async () => {
  await makeHardTree(src);
  const b = await run(["backup", src, "--json"], { env });
  assert.equal(b.code, 0, b.stderr);
  const summary = jsonLines(b.stdout).find((l) => l.message_type === "summary")!;
  assert.equal(summary.files_new, 12);
  const target = path.join(dir, "restore1");
  const r = await run(["restore", "latest", "--target", target, "--verify"], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /verified \d+ files/);
  assert.deepEqual(await describeTree(path.join(target, src)), await describeTree(src));
});

test("an unchanged re-backup reads nothing; a change re-reads only that file", async () => {
  const again = await run(["backup", src, "--json"], { env });
  assert.equal(again.code, 0, again.stderr);
  const s1 = jsonLines(again.stdout).find((l) => l.message_type === "summary")!;
  assert.equal(s1.files_new, 0);
  assert.equal(s1.files_changed, 0);
  assert.equal(s1.files_unmodified, 12);
  // Only tree blobs of the folders above src (whose mtimes the other tests change) are new.
  assert.ok((s1.data_added as number) < 4096, `added ${s1.data_added} bytes`);
  await fs.appendFile(path.join(src, "-rf"), "more\n");
  const third = await run(["backup", src, "--json"], { env });
  const s2 = jsonLines(third.stdout).find((l) => l.message_type === "summary")!;
  assert.equal(s2.files_changed, 1);
  assert.equal(s2.files_unmodified, 11);
  assert.ok((s2.data_added as number) < 64 * 1024, `added ${s2.data_added}`); // the file and its folders' trees
});

test("restore of a sub-path, and --include / --exclude", async () => {
  const t1 = path.join(dir, "restore-sub");
  assert.equal((await run(["restore", `latest:${src}/sub`, "--target", t1], { env })).code, 0);
  assert.deepEqual(await fs.readdir(t1), ["hard-b"]);
  const t2 = path.join(dir, "restore-include");
  const inc = await run(
    ["restore", "latest", "--target", t2, "--include", "*.sh", "--include", "bottom.txt"],
    { env },
  );
  assert.equal(inc.code, 0, inc.stderr);
  const files = (await describeTree(t2)).filter((l) => l.startsWith("F")).map((l) => l.split(" ")[1]);
  assert.equal(files.length, 2);
  assert.ok(files.some((f) => f!.endsWith('script.sh"')));
  const t3 = path.join(dir, "restore-exclude");
  assert.equal(
    (await run(["restore", "latest", "--target", t3, "--exclude", "big.bin", "--exclude", "deep/"], { env }))
      .code,
    0,
  );
  const restored = await describeTree(path.join(t3, src));
  assert.ok(!restored.some((l) => l.includes("big.bin") || l.includes("bottom.txt")));
  assert.ok(restored.some((l) => l.includes("private")));
});

test("backup --exclude and --exclude-file use gitignore syntax", async () => {
  const ex = path.join(dir, "excludes");
  await fs.writeFile(ex, "# comment\n*.bin\n/deep\n");
  const b = await run(["backup", src, "--exclude-file", ex, "--exclude", "sub/", "--tag", "excl"], { env });
  assert.equal(b.code, 0, b.stderr);
  const ls = await run(["ls", "latest", "--json"], { env });
  const paths = jsonLines(ls.stdout)
    .filter((l) => l.message_type === "node")
    .map((l) => l.path as string);
  assert.ok(paths.some((p) => p.endsWith("/private")));
  assert.ok(!paths.some((p) => p.endsWith(".bin") || p.includes("/deep") || p.endsWith("/sub")));
});

test("the same 50 MB under three names, and shifted, is stored about once", async () => {
  const d = path.join(dir, "dedup");
  await fs.mkdir(d);
  await writeRandomFile(path.join(d, "one"), 50, 99);
  const data = await fs.readFile(path.join(d, "one"));
  await fs.writeFile(path.join(d, "two"), data);
  await fs.writeFile(path.join(d, "three"), data);
  await fs.writeFile(path.join(d, "shifted"), Buffer.concat([Buffer.from("a few inserted bytes"), data]));
  const before = await dirBytes(repo);
  const b = await run(["backup", d, "--json"], { env });
  assert.equal(b.code, 0, b.stderr);
  const grew = (await dirBytes(repo)) - before;
  const s = jsonLines(b.stdout).find((l) => l.message_type === "summary")!;
  assert.equal(s.total_bytes_processed, 4 * data.length + 20);
  assert.ok(grew < 60 * 1024 * 1024, `repository grew by ${grew} bytes for 200 MB of mostly duplicate data`);
  assert.ok(grew > 50 * 1000 * 1000, `repository grew by only ${grew} bytes`);
});

test("--stdin stores a stream as one file", async () => {
  const payload = Buffer.from("CREATE TABLE t(x);\n".repeat(1000));
  const b = await run(["backup", "--stdin", "--stdin-filename", "db.sql", "--tag", "dump"], {
    env,
    input: payload,
  });
  assert.equal(b.code, 0, b.stderr);
  const ls = await run(["ls", "latest"], { env });
  assert.equal(ls.stdout.trim(), "/db.sql");
  const t = path.join(dir, "restore-stdin");
  assert.equal((await run(["restore", "latest", "--target", t], { env })).code, 0);
  assert.deepEqual(await fs.readFile(path.join(t, "db.sql")), payload);
});

test("snapshots --json and cat", async () => {
  const s = await run(["snapshots", "--json"], { env });
  assert.equal(s.code, 0);
  const list = JSON.parse(s.stdout) as { id: string; tree: string; tags: string[] }[];
  assert.ok(list.length >= 5);
  assert.ok(list.some((x) => x.tags.includes("dump")));
  const cfg = JSON.parse((await run(["cat", "config"], { env })).stdout);
  assert.equal(cfg.version, 1);
  const snap = JSON.parse((await run(["cat", "snapshot", list[0]!.id.slice(0, 10)], { env })).stdout);
  assert.equal(snap.tree, list[0]!.tree);
  const tree = JSON.parse((await run(["cat", "tree", list[0]!.tree], { env })).stdout);
  assert.ok(Array.isArray(tree.nodes));
  const table = await run(["snapshots"], { env });
  assert.match(table.stdout, /ID\s+Time\s+Host/);
});

test("a resumed restore skips files already right and repairs damaged ones", async () => {
  const target = path.join(dir, "restore-resume");
  assert.equal((await run(["restore", "latest", "--target", target], { env })).code, 0);
  await fs.rm(path.join(target, "db.sql"));
  const r = await run(["restore", "latest", "--target", target, "--json"], { env });
  const s = jsonLines(r.stdout).find((l) => l.message_type === "summary")!;
  assert.equal(s.files_restored, 1);
  assert.equal(s.files_skipped, 0);
  // The big tree: restore, damage one file (same size), delete another, restore again.
  const t2 = path.join(dir, "restore-resume-2");
  const snaps = JSON.parse((await run(["snapshots", "--json", "--path", src], { env })).stdout) as {
    id: string;
  }[];
  const id = snaps[1]!.id;
  assert.equal((await run(["restore", id, "--target", t2], { env })).code, 0);
  const base = path.join(t2, src);
  const big = await fs.open(path.join(base, "big.bin"), "r+");
  await big.write(Buffer.from("XXXX"), 0, 4, 1_000_000);
  await big.close();
  await fs.rm(path.join(base, "private"));
  const again = await run(["restore", id, "--target", t2, "--json", "--verify"], { env });
  assert.equal(again.code, 0, again.stderr);
  const s2 = jsonLines(again.stdout).find((l) => l.message_type === "summary")!;
  assert.equal(s2.files_restored, 12);
  assert.ok((s2.files_skipped as number) >= 9, `skipped ${s2.files_skipped}`);
  assert.ok((s2.bytes_written as number) >= 300 * 1024 * 1024);
  const restored = await describeTree(base);
  assert.ok(restored.some((l) => l.includes('"private"')));
});

test("runs of zeroes are restored as holes (sparse files)", async () => {
  const d = path.join(dir, "sparse");
  await fs.mkdir(d);
  const f = path.join(d, "disk.img");
  const fh = await fs.open(f, "w");
  await fh.truncate(96 * 1024 * 1024);
  await fh.write(Buffer.from("data in the middle"), 0, 18, 40 * 1024 * 1024);
  await fh.close();
  assert.equal((await run(["backup", d], { env })).code, 0);
  const t = path.join(dir, "restore-sparse");
  const r = await run(["restore", "latest", "--target", t, "--verify"], { env });
  assert.equal(r.code, 0, r.stderr);
  const restored = path.join(t, f);
  assert.deepEqual(await describeTree(path.join(t, d)), await describeTree(d));
  const st = await fs.stat(restored);
  assert.equal(st.size, 96 * 1024 * 1024);
  assert.ok(st.blocks * 512 < 32 * 1024 * 1024, `restored file occupies ${st.blocks * 512} bytes on disk`);
});
