/**
 * Round trip through the built CLI of a tree full of hard cases: odd names, deep nesting, empty
 * and big files, sparse files, dangling symlinks, hard links, special permission bits, foreign
 * owners, far-past and far-future mtimes, empty folders. backup → restore --verify → the trees
 * are equal; then SNAPSHOT:PATH and --include/--exclude on the same snapshot, backup excludes,
 * and snapshots / cat.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import {
  assertCleanError,
  assertTreesEqual,
  diffDescriptions,
  jsonLines,
  MiB,
  prng,
  removeTempDir,
  run,
  runOk,
  show,
  summaryOf,
  treeEntries,
  useWorkspace,
  writeRandomBytes,
} from "../support/cli.js";

/** Size of the one big file (LIFEBOAT_E2E_BIG_MB overrides; default 64 MB: bigger only costs time). */
const BIG = Number(process.env.LIFEBOAT_E2E_BIG_MB ?? 64) * MiB;
/** A sparse file: zeroes but for a few bytes at SPARSE_DATA_AT. */
const SPARSE = 48 * MiB;
const SPARSE_DATA_AT = 20 * MiB;
const PW = "round trip password";

const NOBODY = 65534;
/** 60 nested folders d00/d01/.../d59. */
const DEEP = Array.from({ length: 60 }, (_, i) => `d${String(i).padStart(2, "0")}`).join("/");
const t = (iso: string) => new Date(iso).getTime() / 1000;

/** Builds the hard-case tree at `src`; returns how many regular-file paths and inodes it has. */
async function buildHardTree(src: string): Promise<{ filePaths: number; fileInodes: number }> {
  const w = async (rel: string, data: string | Buffer, mode?: number) => {
    const p = path.join(src, rel);
    await fs.mkdir(path.dirname(p), { recursive: true });
    await fs.writeFile(p, data);
    if (mode !== undefined) await fs.chmod(p, mode);
    return p;
  };
  await fs.mkdir(src, { recursive: true });
  // Names.
  await w("ümlaut ✓", "unicode name\n");
  await w("日本語 ✓.txt", "CJK name\n");
  await w("line\nbreak", "newline in the name\n");
  await w("-rf", "leading dash\n");
  await w("--help", "two leading dashes\n");
  await w("-", "just a dash\n");
  await w(" leading and trailing space ", "spaces\n");
  await w(`quotes 'single' "double" \\ back*slash?[x].txt`, "shell metacharacters\n");
  await w("emoji 🛟.txt", "astral plane\n");
  await w("caf\u00e9 NFC.txt", "NFC form\n");
  await w("cafe\u0301 NFC.txt", "NFD form, a different name on Linux\n");
  await w("L".repeat(255), "longest possible name\n");
  await w(".hidden", "dot file\n");
  // Deep nesting: 60 levels.
  await w(`${DEEP}/leaf.txt`, "bottom of the well\n");
  // Sizes.
  await w("empty", "");
  await w("sub/empty too", "");
  await writeRandomBytes(path.join(src, "big.bin"), BIG, "big");
  await w("zeros.bin", Buffer.alloc(3 * MiB)); // restore writes runs of zeroes as holes
  const sparse = await fs.open(path.join(src, "sparse.img"), "w");
  await sparse.truncate(SPARSE);
  await sparse.write(Buffer.from("data in the middle"), 0, 18, SPARSE_DATA_AT);
  await sparse.close();
  const tail = Buffer.alloc(6 * MiB);
  prng(MiB, "tail").copy(tail, 0);
  await w("random-then-zeros.bin", tail);
  await w("sub/note.txt", "in a subfolder\n");
  await w("sub/deeper/more.txt", "deeper\n");
  // Symlinks (never followed by backup, recreated as they were).
  await fs.symlink("no/such/target", path.join(src, "dangling"));
  await fs.symlink("/nonexistent/lifeboat-e2e-missing", path.join(src, "abs-dangling"));
  await fs.symlink("self-loop", path.join(src, "self-loop"));
  await fs.symlink("ümlaut ✓", path.join(src, "to-umlaut"));
  await fs.symlink("sub", path.join(src, "dir-link"));
  await fs.symlink("../ümlaut ✓", path.join(src, "sub", "up-link"));
  // Hard links: a group of three across folders and a pair.
  const a = await w("hard/a", "three names, one inode\n");
  await fs.link(a, path.join(src, "hard", "b"));
  await fs.link(a, path.join(src, "sub", "hard-c"));
  const p1 = await w("hard/pair1", "two names\n");
  await fs.link(p1, path.join(src, "hard", "pair2"));
  // Permission bits.
  await w("perm/0600", "private\n", 0o600);
  await w("perm/0755", "#!/bin/sh\necho hi\n", 0o755);
  await w("perm/0444", "read only\n", 0o444);
  await w("perm/0000", "no permissions at all\n", 0o000);
  await w("perm/4755-setuid", "setuid\n", 0o4755);
  await w("perm/setgid-dir/inside", "in a setgid folder\n");
  await fs.chmod(path.join(src, "perm/setgid-dir"), 0o2775);
  await fs.mkdir(path.join(src, "perm/sticky-dir"));
  await fs.chmod(path.join(src, "perm/sticky-dir"), 0o1777);
  await w("perm/ro-dir/inside", "in a read-only folder\n");
  await fs.chmod(path.join(src, "perm/ro-dir"), 0o555);
  // Owners other than the one restoring.
  await w("owned/by-nobody", "foreign owner\n");
  await fs.chown(path.join(src, "owned/by-nobody"), NOBODY, NOBODY);
  await fs.chown(path.join(src, "owned"), NOBODY, NOBODY);
  await fs.lchown(path.join(src, "dangling"), NOBODY, NOBODY);
  // Empty folders.
  await fs.mkdir(path.join(src, "empty-dir"));
  await fs.mkdir(path.join(src, "nest/a/b/c"), { recursive: true });
  // Times: far past, before the epoch, after 2038, sub-second.
  await w("times/old.txt", "2001\n");
  await fs.utimes(path.join(src, "times/old.txt"), t("2001-09-09T01:46:40Z"), t("2001-09-09T01:46:40Z"));
  await w("times/pre-epoch.txt", "1960\n");
  await fs.utimes(
    path.join(src, "times/pre-epoch.txt"),
    t("1960-06-01T12:00:00Z"),
    t("1960-06-01T12:00:00Z"),
  );
  await w("times/future.txt", "2100\n");
  await fs.utimes(path.join(src, "times/future.txt"), t("2100-01-01T00:00:00Z"), t("2100-01-01T00:00:00Z"));
  await w("times/fraction.txt", "fraction\n");
  await fs.utimes(path.join(src, "times/fraction.txt"), 1_600_000_000.123456, 1_600_000_000.987654);
  await fs.lutimes(path.join(src, "to-umlaut"), t("2010-01-01T00:00:00Z"), t("2010-01-01T00:00:00Z"));
  // Folder mtimes last (creating entries changes them), deepest first.
  const dirs: string[] = [];
  const walk = async (d: string) => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) {
        await walk(path.join(d, e.name));
        dirs.push(path.join(d, e.name));
      }
    }
  };
  await walk(src);
  for (const [i, d] of dirs.entries()) await fs.utimes(d, 1_500_000_000 + i * 7777, 1_500_000_000 + i * 7777);

  const desc = await treeEntries(src);
  const files = [...desc].filter(([, v]) => v.startsWith("file "));
  const inodes = new Set(files.map(([k, v]) => /hardlinks=(.*)$/.exec(v)?.[1] ?? k));
  return { filePaths: files.length, fileInodes: inodes.size };
}

describe("round trip of a tree of hard cases", () => {
  let base: string;
  let src: string;
  let env: Record<string, string>;
  let counts: { filePaths: number; fileInodes: number };
  let backupSummary: Record<string, unknown>;

  const ws = useWorkspace({
    password: PW,
    setup: async () => {
      ({ base, src, env } = ws);
      counts = await buildHardTree(src);
      const r = await run(["backup", "--json", src], { env, timeoutMs: 180_000 });
      assert.equal(r.code, 0, show(r));
      backupSummary = summaryOf(r);
    },
  });

  test("backup reads every file and reports no errors or warnings", () => {
    assert.equal(backupSummary.files_new, counts.filePaths, JSON.stringify(backupSummary));
    assert.equal(backupSummary.files_changed, 0);
    assert.equal(backupSummary.files_unmodified, 0);
    assert.equal(backupSummary.incomplete, false);
    assert.deepEqual(backupSummary.errors, []);
    assert.deepEqual(backupSummary.warnings, []);
    assert.ok((backupSummary.total_bytes_processed as number) >= BIG);
  });

  test("restore latest --verify recreates the tree exactly", async () => {
    const out = path.join(base, "out-full");
    const r = await run(["restore", "latest", "--target", out, "--verify", "--json"], {
      env,
      timeoutMs: 180_000,
    });
    assert.equal(r.code, 0, show(r));
    const s = summaryOf(r);
    assert.deepEqual(s.errors, []);
    assert.equal(s.files_restored, counts.filePaths, JSON.stringify(s));
    assert.equal(s.files_verified, counts.fileInodes, "every distinct file is read back once");
    assert.equal(s.files_skipped, 0);
    // The snapshot holds the absolute path; the restored copy sits at TARGET/<absolute path>.
    await assertTreesEqual(src, path.join(out, src));
    // Runs of zeroes are holes: the restored files take far less disk than their size.
    const onDisk = async (rel: string) => (await fs.stat(path.join(out, src, rel))).blocks * 512;
    assert.ok((await onDisk("zeros.bin")) < MiB, `zeros.bin occupies ${await onDisk("zeros.bin")} bytes`);
    assert.ok(
      (await onDisk("sparse.img")) < SPARSE / 2,
      `sparse.img (${SPARSE} bytes) occupies ${await onDisk("sparse.img")} bytes on disk`,
    );
    await removeTempDir(out);
  });

  test("restore SNAPSHOT:PATH of a subfolder puts its contents straight into the target", async () => {
    const out = path.join(base, "out-sub");
    const r = await run(["restore", `latest:${src}/sub`, "--target", out, "--verify"], { env });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /verified \d+ files/);
    // sub/hard-c belongs to a group whose other names are outside sub/: compare without groups.
    await assertTreesEqual(path.join(src, "sub"), out);
    const deepOut = path.join(base, "out-deep");
    const deepDir = Array.from({ length: 30 }, (_, i) => `d${String(i).padStart(2, "0")}`).join("/");
    const r2 = await run(["restore", `latest:${src}/${deepDir}`, "--target", deepOut], { env });
    assert.equal(r2.code, 0, show(r2));
    await assertTreesEqual(path.join(src, deepDir), deepOut);
  });

  test("restore SNAPSHOT:PATH of single files with awkward names", async () => {
    for (const name of ["ümlaut ✓", "-rf", "line\nbreak", "perm/4755-setuid"]) {
      const out = path.join(base, `out-file-${name.replace(/[^a-z]/gi, "_")}`);
      const r = await run(["restore", `latest:${src}/${name}`, "--target", out, "--verify"], { env });
      assert.equal(r.code, 0, show(r));
      const restored = path.join(out, path.basename(name));
      assert.deepEqual(await fs.readFile(restored), await fs.readFile(path.join(src, name)), name);
      const [a, b] = [await fs.lstat(path.join(src, name)), await fs.lstat(restored)];
      assert.equal(b.mode, a.mode, `mode of ${name}`);
      assert.equal(Math.floor(b.mtimeMs / 1000), Math.floor(a.mtimeMs / 1000), `mtime of ${name}`);
      assert.deepEqual(await fs.readdir(out), [path.basename(name)]);
    }
  });

  test("restore SNAPSHOT:PATH of a path that is not in the snapshot fails clearly", async () => {
    const out = path.join(base, "out-missing");
    const r = await run(["restore", `latest:${src}/no-such-thing`, "--target", out], { env });
    assertCleanError(r, 1, /no-such-thing.*not in the snapshot/);
  });

  test("restore --include restores only matching paths (and the folders leading to them)", async () => {
    const out = path.join(base, "out-include");
    const r = await run(["restore", `latest:${src}`, "--target", out, "--include", "*.txt"], { env });
    assert.equal(r.code, 0, show(r));
    const all = await treeEntries(src);
    const want = new Set<string>();
    for (const k of all.keys()) {
      if (!k.endsWith(".txt")) continue;
      const parts = k.split("/");
      for (let i = 1; i <= parts.length; i++) want.add(parts.slice(0, i).join("/"));
    }
    const got = await treeEntries(out);
    assert.deepEqual([...got.keys()].sort(), [...want].sort());
    const strip = (m: Map<string, string>) =>
      new Map([...m].filter(([k]) => want.has(k)).map(([k, v]) => [k, v.replace(/ hardlinks=.*$/, "")]));
    assert.deepEqual(diffDescriptions(strip(all), strip(got)), []);
  });

  test("restore --exclude skips matching paths and restores everything else exactly", async () => {
    const out = path.join(base, "out-exclude");
    const r = await run(
      [
        "restore",
        `latest:${src}`,
        "--target",
        out,
        "--exclude",
        "big.bin",
        "--exclude",
        "d00/",
        "--exclude",
        "perm",
      ],
      { env },
    );
    assert.equal(r.code, 0, show(r));
    const skip = (k: string) => k === "big.bin" || k === "d00" || k.startsWith("d00/") || k === "perm";
    const all = await treeEntries(src, { skip });
    const got = await treeEntries(out);
    assert.deepEqual(diffDescriptions(all, got), []);
    assert.ok(got.has("ümlaut ✓") && !got.has("big.bin") && !got.has("perm") && !got.has("d00"));
  });

  test("several --include patterns add up; a bare name matches at any depth", async () => {
    const out = path.join(base, "out-include-2");
    const r = await run(
      ["restore", `latest:${src}`, "--target", out, "--include", "0755", "--include", "leaf.txt"],
      {
        env,
      },
    );
    assert.equal(r.code, 0, show(r));
    const files = [...(await treeEntries(out))].filter(([, v]) => v.startsWith("file ")).map(([k]) => k);
    assert.deepEqual(files.sort(), [`${DEEP}/leaf.txt`, "perm/0755"].sort());
  });

  // The tests below add snapshots: the ones above rely on `latest` being the hard-case tree.

  test("backup --exclude and --exclude-file use gitignore syntax", async () => {
    const ex = path.join(base, "excludes");
    await fs.writeFile(ex, "# comment\n*.bin\n/d00\n");
    await runOk(["backup", src, "--exclude-file", ex, "--exclude", "sub/", "--tag", "excl"], { env });
    const paths = jsonLines((await runOk(["ls", "latest", "--json"], { env })).stdout)
      .filter((l) => l.message_type === "node")
      .map((l) => l.path as string);
    assert.ok(paths.some((p) => p.endsWith("/perm/0600")));
    assert.ok(paths.some((p) => p.endsWith("/sparse.img")));
    const leaked = paths.filter((p) => p.endsWith(".bin") || p.includes("/d00") || p.endsWith("/sub"));
    assert.deepEqual(leaked, []);
  });

  test("snapshots (table and --json) and cat config / snapshot PREFIX / tree", async () => {
    const list = JSON.parse((await runOk(["snapshots", "--json"], { env })).stdout) as {
      id: string;
      tree: string;
      tags: string[];
    }[];
    assert.equal(list.length, 2);
    assert.ok(list.some((x) => x.tags.includes("excl")));
    assert.match((await runOk(["snapshots"], { env })).stdout, /ID\s+Time\s+Host/);
    const cfg = JSON.parse((await runOk(["cat", "config"], { env })).stdout) as {
      version: number;
      features: unknown;
    };
    // A new repository starts with the format features a backup may need (docs/format.md).
    assert.equal(cfg.version, 2);
    assert.deepEqual(cfg.features, { read: ["byte-names", "special-files", "xattrs"], write: [] });
    const snap = JSON.parse((await runOk(["cat", "snapshot", list[0]!.id.slice(0, 10)], { env })).stdout) as {
      tree: string;
    };
    assert.equal(snap.tree, list[0]!.tree);
    const tree = JSON.parse((await runOk(["cat", "tree", list[0]!.tree], { env })).stdout) as {
      nodes: unknown;
    };
    assert.ok(Array.isArray(tree.nodes));
  });
});
