/**
 * Re-backups: an unchanged tree is not read again (every file "unmodified", nothing added);
 * after changing one file only that file is read; --force reads everything but stores nothing new.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import {
  MiB,
  prng,
  removeTempDir,
  run,
  show,
  summaryOf,
  tempDir,
  useWorkspace,
  writeRandomBytes,
} from "../support/cli.js";

const FILES = 25;
const BIG = 2 * MiB;

let src: string;
let env: Record<string, string>;

const ws = useWorkspace({
  password: "incremental",
  setup: async () => {
    ({ src, env } = ws);
    for (let i = 0; i < FILES; i++) {
      const p = path.join(src, `dir${i % 4}`, i % 2 ? `sub/f${i}` : `f${i}`);
      await fs.mkdir(path.dirname(p), { recursive: true });
      if (i % 5 === 0) await writeRandomBytes(p, BIG, `inc${i}`);
      else await fs.writeFile(p, prng(100 + i * 37, `inc${i}`));
    }
  },
});

/**
 * The snapshot records the metadata of the folders above the backed-up path (os.tmpdir()
 * itself), which other tests may change at any moment. Returns a fingerprint of them.
 */
async function ancestorsFingerprint(): Promise<string> {
  const parts: string[] = [];
  for (let d = path.dirname(src); ; d = path.dirname(d)) {
    const st = await fs.lstat(d, { bigint: true });
    parts.push(`${d} ${st.mtimeNs} ${st.ctimeNs}`);
    if (d === path.dirname(d)) break;
  }
  return parts.join("\n");
}

let fpBeforeLast = "";

/**
 * Runs `backup --json` and returns its summary, and whether the folders above `src` are as
 * they were when the previous backup started (then an unchanged tree must add nothing at all).
 */
async function backupJson(extra: string[] = []) {
  const fp = await ancestorsFingerprint();
  const r = await run(["backup", "--json", ...extra, src], { env });
  assert.equal(r.code, 0, show(r));
  const ancestorsSame = fp === fpBeforeLast && fp === (await ancestorsFingerprint());
  fpBeforeLast = fp;
  return { s: summaryOf(r), ancestorsSame };
}

/** Nothing changed in the tree: nothing may be added (but see `ancestorsFingerprint`). */
function assertNothingAdded(s: Record<string, unknown>, ancestorsSame: boolean) {
  if (ancestorsSame) {
    assert.equal(s.data_added, 0, `nothing changed, yet data was added: ${JSON.stringify(s)}`);
    assert.equal(s.data_blobs_added, 0);
  } else {
    // os.tmpdir() changed meanwhile (another test): only the root listing may be new.
    assert.ok((s.data_blobs_added as number) <= 1, `${os.tmpdir()} changed: ${JSON.stringify(s)}`);
    assert.ok((s.data_added as number) < 4096, JSON.stringify(s));
  }
}

test("first backup reads everything, an unchanged second backup reads and adds nothing", async () => {
  const { s: s1 } = await backupJson();
  assert.equal(s1.files_new, FILES);
  assert.equal(s1.files_unmodified, 0);

  const { s: s2, ancestorsSame } = await backupJson();
  assert.equal(s2.files_unmodified, FILES, JSON.stringify(s2));
  assert.equal(s2.files_new, 0);
  assert.equal(s2.files_changed, 0);
  assert.equal(s2.total_files_processed, FILES);
  assertNothingAdded(s2, ancestorsSame);
});

test("after changing one file only that file is read again", async () => {
  const victim = path.join(src, "dir0", "f0"); // a BIG file
  const st = await fs.stat(victim);
  await writeRandomBytes(victim, BIG, "changed"); // same size, new bytes
  await fs.utimes(victim, st.atime, st.mtime); // even with the old mtime (ctime still moves)
  const { s } = await backupJson();
  assert.equal(s.files_changed, 1, JSON.stringify(s));
  assert.equal(s.files_unmodified, FILES - 1);
  assert.equal(s.files_new, 0);
  // Only the changed file's bytes (all new, random) plus a few folder listings are added.
  assert.ok((s.data_added as number) >= BIG, JSON.stringify(s));
  assert.ok((s.data_added as number) < BIG + 64 * 1024, JSON.stringify(s));

  const out = await tempDir(); // not in the workspace: that would change what is backed up
  const rr = await run(["restore", `latest:${victim}`, "--target", out, "--verify"], { env });
  assert.equal(rr.code, 0, show(rr));
  assert.deepEqual(await fs.readFile(path.join(out, "f0")), await fs.readFile(victim));
  await removeTempDir(out);
});

test("--force reads every file again but finds every chunk already stored", async () => {
  const { s, ancestorsSame } = await backupJson(["--force"]);
  assert.equal(s.files_unmodified, 0, JSON.stringify(s));
  assert.equal((s.files_changed as number) + (s.files_new as number), FILES);
  assertNothingAdded(s, ancestorsSame);
});

test("after appending to a small file (its size changes) only that file is read again", async () => {
  await fs.appendFile(path.join(src, "dir1", "sub", "f1"), "more\n");
  const { s } = await backupJson();
  assert.equal(s.files_changed, 1, JSON.stringify(s));
  assert.equal(s.files_unmodified, FILES - 1);
  assert.equal(s.files_new, 0);
  // The file and the listings of the folders above it.
  assert.ok((s.data_added as number) < 64 * 1024, JSON.stringify(s));
});
