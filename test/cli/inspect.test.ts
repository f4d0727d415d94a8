import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { diffTrees } from "../../src/ops/inspect/diff.js";
import { globToRegExp } from "../../src/ops/inspect/find.js";
import { openRepository } from "../../src/ops/open.js";
import {
  baseEnv,
  CLI,
  describeTree,
  jsonLines,
  prng,
  run,
  tempDir,
  writeRandomFile,
} from "../support/cli.js";

let dir: string;
let repo: string;
let src: string;
let env: Record<string, string>;
let snap1: string;
let snap2: string;

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function backup(paths: string[], extra: string[] = []): Promise<string> {
  const r = await run(["backup", ...paths, ...extra, "--json"], { env });
  assert.equal(r.code, 0, r.stderr);
  return jsonLines(r.stdout).find((l) => l.message_type === "summary")!.snapshot_id as string;
}

before(async () => {
  dir = await tempDir("lifeboat-inspect-");
  repo = path.join(dir, "repo");
  src = path.join(dir, "src");
  env = baseEnv({ LIFEBOAT_PASSWORD: "inspect", LIFEBOAT_REPOSITORY: repo });
  assert.equal((await run(["init"], { env })).code, 0);
  await fs.mkdir(path.join(src, "keep"), { recursive: true });
  await fs.writeFile(path.join(src, "keep", "k.txt"), "kept unchanged\n");
  await writeRandomFile(path.join(src, "keep", "big.bin"), 3, 5);
  await fs.writeFile(path.join(src, "removed.txt"), "this file goes away\n");
  await fs.writeFile(path.join(src, "mod.txt"), "version one\n");
  await fs.writeFile(path.join(src, "chmod.sh"), "#!/bin/sh\necho hi\n", { mode: 0o644 });
  await fs.chmod(path.join(src, "chmod.sh"), 0o644);
  await fs.writeFile(path.join(src, "swap"), "a file that becomes a symlink\n");
  snap1 = await backup([src], ["--tag", "first"]);

  await fs.rm(path.join(src, "removed.txt"));
  await fs.writeFile(path.join(src, "mod.txt"), "version two, longer\n");
  await fs.chmod(path.join(src, "chmod.sh"), 0o755);
  await fs.rm(path.join(src, "swap"));
  await fs.symlink("mod.txt", path.join(src, "swap"));
  await fs.writeFile(path.join(src, "added.txt"), "brand new\n");
  await fs.mkdir(path.join(src, "newdir"));
  await fs.writeFile(path.join(src, "newdir", "x.txt"), "inside a new folder\n");
  snap2 = await backup([src], ["--tag", "second"]);
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const expectedChanges = (p: string) => [
  `+  ${p}/added.txt`,
  `U  ${p}/chmod.sh`,
  `M  ${p}/mod.txt`,
  `+  ${p}/newdir/`,
  `+  ${p}/newdir/x.txt`,
  `-  ${p}/removed.txt`,
  `T  ${p}/swap`,
];

test("diff lists added, removed, modified, metadata-only and type changes", async () => {
  const r = await run(["diff", snap1, snap2, "-q"], { env });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  // Folders above src may have new mtimes (other tests write to the temp folder): those may
  // appear, as `U` folder lines only, and nothing else outside src.
  const ancestors = lines.filter((l) => !l.startsWith(`U  ${src}/`) && !l.includes(`${src}/`));
  for (const l of ancestors) {
    assert.match(l, /^U {2}\/.*\/$/);
    assert.ok(src.startsWith(l.slice(3, -1)), l);
  }
  assert.deepEqual(
    lines.filter((l) => !ancestors.includes(l)),
    [`U  ${src}/`, ...expectedChanges(src)],
  );
});

test("diff of SNAPSHOT:PATH with --json: one object per change and a summary with byte counts", async () => {
  const r = await run(["diff", `${snap1}:${src}`, `${snap2.slice(0, 10)}:${src}`, "--json"], { env });
  assert.equal(r.code, 0, r.stderr);
  const docs = jsonLines(r.stdout);
  const changes = docs.filter((d) => d.message_type === "change");
  assert.deepEqual(
    changes.map((c) => `${c.modifier}  ${c.path}${c.type === "dir" ? "/" : ""}`),
    expectedChanges(src),
  );
  assert.deepEqual(
    changes.find((c) => c.modifier === "T"),
    { message_type: "change", modifier: "T", path: `${src}/swap`, type: "symlink", old_type: "file" },
  );
  const s = docs.find((d) => d.message_type === "summary")!;
  const len = (t: string) => Buffer.byteLength(t);
  assert.deepEqual(s, {
    message_type: "summary",
    source_snapshot: snap1,
    target_snapshot: snap2,
    added: 3,
    removed: 1,
    modified: 1,
    metadata: 1,
    type_changed: 1,
    bytes_added: len("brand new\n") + len("inside a new folder\n") + len("version two, longer\n"),
    bytes_removed:
      len("this file goes away\n") + len("version one\n") + len("a file that becomes a symlink\n"),
  });
  const same = await run(["diff", snap2, snap2, "--json"], { env });
  assert.equal(same.code, 0, same.stderr);
  assert.deepEqual(
    jsonLines(same.stdout).map((d) => d.message_type),
    ["summary"],
  );
});

test("diff never reads a subtree whose id is the same in both snapshots", async () => {
  const r = await openRepository(repo, "inspect");
  try {
    const [a, b] = await Promise.all([snap1, snap2].map((id) => r.loadSnapshot(id)));
    const keepOf = async (root: string) => {
      let tree = root;
      for (const name of [...src.split("/").filter(Boolean), "keep"])
        tree = (await r.loadTree(tree)).nodes.find((n) => n.name === name)!.subtree!;
      return tree;
    };
    const keep = await keepOf(a!.tree);
    assert.equal(await keepOf(b!.tree), keep);
    const loaded: string[] = [];
    const load = r.loadTree.bind(r);
    r.loadTree = (id: string) => {
      loaded.push(id);
      return load(id);
    };
    const s = await diffTrees(r, a!.tree, b!.tree);
    assert.equal(s.added, 3);
    assert.ok(loaded.length > 0);
    assert.ok(!loaded.includes(keep), "the unchanged keep/ folder was read");
    loaded.length = 0;
    await diffTrees(r, a!.tree, a!.tree);
    assert.deepEqual(loaded, []);
  } finally {
    await r.close();
  }
});

test("globs: * stays in one path component, ** crosses them, classes and escapes", () => {
  assert.ok(globToRegExp("*.txt").test("a.txt"));
  assert.ok(!globToRegExp("*.txt").test("a.txt.bak"));
  assert.ok(!globToRegExp("/src/*.txt").test("/src/keep/k.txt"));
  assert.ok(globToRegExp("/src/**.txt").test("/src/keep/k.txt"));
  assert.ok(globToRegExp("file[0-9]?").test("file7a"));
  assert.ok(!globToRegExp("file[!0-9]").test("file7"));
  assert.ok(globToRegExp("a\\*b").test("a*b"));
  assert.ok(!globToRegExp("a\\*b").test("axb"));
  assert.ok(globToRegExp("A.TXT", true).test("a.txt"));
  assert.ok(globToRegExp("(x)+.txt").test("(x)+.txt"));
});

test("find matches names across snapshots, with --path, --snapshot, --tag and --host filters", async () => {
  const find = async (...args: string[]) => {
    const r = await run(["find", ...args, "--json"], { env });
    assert.equal(r.code, 0, r.stderr);
    const docs = jsonLines(r.stdout);
    const summary = docs.find((d) => d.message_type === "summary")!;
    const matches = docs.filter((d) => d.message_type === "match");
    assert.equal(summary.matches, matches.length);
    return matches.map((m) => `${(m.snapshot as string) === snap1 ? 1 : 2} ${m.path}`);
  };
  assert.deepEqual(await find("*.txt"), [
    `1 ${src}/keep/k.txt`,
    `1 ${src}/mod.txt`,
    `1 ${src}/removed.txt`,
    `2 ${src}/added.txt`,
    `2 ${src}/keep/k.txt`,
    `2 ${src}/mod.txt`,
    `2 ${src}/newdir/x.txt`,
  ]);
  assert.deepEqual(await find("x.*", "removed*"), [`1 ${src}/removed.txt`, `2 ${src}/newdir/x.txt`]);
  assert.deepEqual(await find("--path", `${src}/*.txt`, "--snapshot", snap2.slice(0, 8)), [
    `2 ${src}/added.txt`,
    `2 ${src}/mod.txt`,
  ]);
  assert.deepEqual(await find("--path", "**/keep/*", "--tag", "first"), [
    `1 ${src}/keep/big.bin`,
    `1 ${src}/keep/k.txt`,
  ]);
  assert.deepEqual(await find("SWAP", "-i", "--snapshot", snap1, "--snapshot", "latest"), [
    `1 ${src}/swap`,
    `2 ${src}/swap`,
  ]);
  assert.deepEqual(await find("*", "--host", "no-such-host"), []);

  const r = await run(["find", "big.bin", "--snapshot", snap1], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    new RegExp(`^ {2}${snap1.slice(0, 8)} {2}file +3\\.00 MiB {2}\\d{4}-.* ${src}/keep/big\\.bin$`, "m"),
  );
  const m = jsonLines((await run(["find", "big.bin", "--snapshot", snap1, "--json"], { env })).stdout)[0]!;
  assert.equal(m.size, 3 << 20);
  assert.equal(m.type, "file");
  // From the nanosecond mtime, truncated to milliseconds (Stats.mtime may round up by 1 ms).
  const st = await fs.stat(path.join(src, "keep", "big.bin"), { bigint: true });
  assert.equal(m.mtime, new Date(Number(st.mtimeNs / 1_000_000n)).toISOString());
});

test("stats: dedup ratio above 1 for a duplicated file, compression about 1 for random data and above 1 for text", async () => {
  const r1 = path.join(dir, "stats-random");
  const t1 = path.join(dir, "stats-text");
  await fs.mkdir(r1);
  await fs.mkdir(t1);
  const random = prng(200_000, 77);
  await fs.writeFile(path.join(r1, "one.bin"), random);
  await fs.writeFile(path.join(r1, "copy.bin"), random);
  const text = "All work and no play makes Jack a dull boy.\n".repeat(4000);
  await fs.writeFile(path.join(t1, "text.txt"), text);
  const sr = await backup([r1]);
  const st = await backup([t1]);

  const r = await run(["stats", sr, st, "--json"], { env });
  assert.equal(r.code, 0, r.stderr);
  const docs = jsonLines(r.stdout);
  const [a, b] = docs.filter((d) => d.message_type === "snapshot");
  const total = docs.find((d) => d.message_type === "summary")!;
  assert.equal(a!.snapshot, sr);
  assert.equal(a!.files, 2);
  assert.equal(a!.logical_bytes, 400_000);
  assert.equal(a!.unique_bytes, 200_000);
  assert.equal(a!.blobs, 1);
  assert.equal(a!.dedup_ratio, 2);
  // Random data is stored as is: 12-byte nonce and 16-byte tag per blob.
  assert.equal(a!.stored_bytes, 200_000 + 28);
  assert.ok(Math.abs((a!.compression_ratio as number) - 1) < 0.01);
  assert.equal(b!.files, 1);
  assert.equal(b!.logical_bytes, text.length);
  assert.equal(b!.unique_bytes, text.length);
  assert.equal(b!.dedup_ratio, 1);
  assert.ok((b!.compression_ratio as number) > 20, `text compression ${b!.compression_ratio}`);
  assert.equal(total.snapshots, 2);
  assert.equal(total.files, 3);
  assert.equal(total.logical_bytes, 400_000 + text.length);
  assert.equal(total.unique_bytes, 200_000 + text.length);
  assert.equal(total.stored_bytes, (a!.stored_bytes as number) + (b!.stored_bytes as number));
  assert.ok((total.packs as number) >= 1);
  assert.ok((total.pack_bytes as number) > (total.stored_bytes as number));

  // The two file snapshots share keep/: the total counts those blobs once.
  const all = await run(["stats", snap1, snap2, "--json"], { env });
  const d = jsonLines(all.stdout);
  const [s1, s2] = d.filter((x) => x.message_type === "snapshot");
  const sum = d.find((x) => x.message_type === "summary")!;
  assert.ok((s1!.unique_bytes as number) > 3 << 20);
  assert.ok((sum.unique_bytes as number) < (s1!.unique_bytes as number) + (s2!.unique_bytes as number));
  assert.ok((sum.dedup_ratio as number) > 1.9);

  const text1 = await run(["stats"], { env });
  assert.equal(text1.code, 0, text1.stderr);
  assert.match(text1.stdout, /^Snapshot +Files +Logical +Unique +Stored +Dedup +Compression$/m);
  assert.match(
    text1.stdout,
    new RegExp(`^${sr.slice(0, 8)} +2 +391 KiB +195 KiB +195 KiB +2\\.00x +1\\.00x$`, "m"),
  );
  assert.match(text1.stdout, /^repository: \d+ packs, /m);
});

/** Runs the CLI with stdout piped into another command (e.g. `tar -x`). */
function pipeInto(
  args: string[],
  cmd: string,
  cmdArgs: string[],
): Promise<{ code: number; tarCode: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const cli = spawn(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    const tar = spawn(cmd, cmdArgs, { stdio: ["pipe", "ignore", "pipe"] });
    cli.stdout.pipe(tar.stdin);
    let stderr = "";
    cli.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    tar.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    let code = -1;
    cli.on("error", reject);
    tar.on("error", reject);
    cli.on("close", (c) => {
      code = c ?? -1;
    });
    tar.on("close", (c) => {
      const finish = () => resolve({ code, tarCode: c ?? -1, stderr });
      if (code !== -1) finish();
      else cli.on("close", finish);
    });
  });
}

test("dump of a file streams its exact bytes; --target writes it atomically", async () => {
  const original = await fs.readFile(path.join(src, "keep", "big.bin"));
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const cli = spawn(process.execPath, [CLI, "dump", snap1, `${src}/keep/big.bin`], {
      env,
      stdio: ["ignore", "pipe", "inherit"],
    });
    cli.stdout.on("data", (d: Buffer) => chunks.push(d));
    cli.on("error", reject);
    cli.on("close", (c) => (c === 0 ? resolve() : reject(new Error(`exit ${c}`))));
  });
  assert.equal(sha(Buffer.concat(chunks)), sha(original));

  const out = path.join(dir, "out.bin");
  await fs.writeFile(out, "old content");
  const r = await run(["dump", snap2, `${src}/mod.txt`, "--target", out], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await fs.readFile(out, "utf8"), "version two, longer\n");
  assert.deepEqual(
    (await fs.readdir(dir)).filter((n) => n.includes(".lifeboat-")),
    [],
  );
  // A failure leaves the old file and no temporary behind.
  const bad = await run(["dump", snap2, `${src}/nope`, "--target", out], { env });
  assert.equal(bad.code, 1);
  assert.equal(await fs.readFile(out, "utf8"), "version two, longer\n");
  assert.deepEqual(
    (await fs.readdir(dir)).filter((n) => n.includes(".lifeboat-")),
    [],
  );
});

test("dump of a folder is a tar stream that tar -x turns back into the same tree", async () => {
  const tree = path.join(dir, "tree");
  const long = `${"a-rather-long-file-name-".repeat(6)}.txt`; // 148 bytes
  const deep = path.join(tree, "d".repeat(50), "e".repeat(50));
  await fs.mkdir(deep, { recursive: true });
  await fs.writeFile(path.join(tree, long), "long name\n");
  await fs.writeFile(path.join(deep, "deep-file.txt"), "deeper than 100 bytes of path\n");
  await fs.mkdir(path.join(tree, "empty"));
  await fs.chmod(path.join(tree, "empty"), 0o700);
  await fs.symlink(long, path.join(tree, "link"));
  await fs.symlink("does/not/exist", path.join(tree, "dangling"));
  await fs.writeFile(path.join(tree, "script.sh"), "#!/bin/sh\n", { mode: 0o755 });
  await fs.chmod(path.join(tree, "script.sh"), 0o755);
  await fs.writeFile(path.join(tree, "hard-a"), "linked\n");
  await fs.link(path.join(tree, "hard-a"), path.join(tree, "hard-b"));
  await fs.writeFile(path.join(tree, "ümlaut ✓.txt"), "unicode\n");
  await fs.writeFile(path.join(tree, "random.bin"), prng(700_000, 9));
  await fs.utimes(
    path.join(tree, "empty"),
    new Date("2001-02-03T04:05:06Z"),
    new Date("2001-02-03T04:05:06Z"),
  );
  const id = await backup([tree]);

  const target = path.join(dir, "untarred");
  await fs.mkdir(target);
  const r = await pipeInto(["dump", id, tree], "tar", ["-xpf", "-", "-C", target]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.tarCode, 0, r.stderr);
  assert.equal(r.stderr, "");
  assert.deepEqual(await describeTree(path.join(target, "tree")), await describeTree(tree));
  assert.deepEqual(await fs.readdir(target), ["tree"]);

  const file = path.join(dir, "tree.tar");
  const t = await run(["dump", id, `${tree}/`, "--target", file, "--archive", "tar"], { env });
  assert.equal(t.code, 0, t.stderr);
  const listing = await new Promise<string>((resolve, reject) => {
    const p = spawn("tar", ["-tvf", file], { stdio: ["ignore", "pipe", "inherit"] });
    let s = "";
    p.stdout.on("data", (d: Buffer) => {
      s += d.toString();
    });
    p.on("close", (c) => (c === 0 ? resolve(s) : reject(new Error(`tar exit ${c}`))));
  });
  assert.ok(listing.includes(`tree/${long}\n`), listing);
  assert.match(listing, /^drwx------ .* 2001-02-0\d \d\d:\d\d tree\/empty\/$/m);
  assert.match(listing, /^lrwxrwxrwx .* tree\/dangling -> does\/not\/exist$/m);
  assert.match(listing, /^h.* tree\/hard-b link to tree\/hard-a$/m);
});

test("errors: unknown snapshot exits 13; a path not in the snapshot is one line with a hint", async () => {
  for (const args of [
    ["diff", "deadbeef", snap2],
    ["dump", "0000", `${src}/mod.txt`],
    ["stats", "ffff"],
    ["find", "x", "--snapshot", "abc"],
  ]) {
    const r = await run(args, { env });
    assert.equal(r.code, 13, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /^error: no snapshot id starts with [0-9a-f]+\n {2}hint: /);
  }
  const r = await run(["dump", snap1, `${src}/added.txt`], { env });
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    `error: ${src}/added.txt is not in snapshot ${snap1.slice(0, 8)}\n` +
      `  hint: snapshot ${snap1.slice(0, 8)} holds ${src}; list it with \`lifeboat ls ${snap1.slice(0, 8)} PATH\`\n`,
  );
  const j = await run(["dump", snap1, `${src}/added.txt`, "--json"], { env });
  assert.equal(j.code, 1);
  assert.equal(j.stderr.trimEnd().split("\n").length, 1);
  assert.equal(jsonLines(j.stderr)[0]!.code, "NOT_FOUND");
  const d = await run(["diff", `${snap1}:${src}/nothing`, snap2], { env });
  assert.equal(d.code, 1);
  assert.match(d.stderr, /is not in snapshot [0-9a-f]{8}\n {2}hint: /);
  const l = await run(["dump", snap2, `${src}/swap`], { env });
  assert.equal(l.code, 2);
  assert.match(l.stderr, /is a symbolic link to "mod\.txt"/);
});
