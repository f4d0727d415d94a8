/**
 * Resumable restore: run again over a partly deleted, partly damaged target, it skips files
 * that are already right, rewrites the rest, and ends with the exact tree.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { assertTreesEqual, prng, run, runOk, show, summaryOf, useWorkspace } from "../support/cli.js";

const N = 20;
let src: string;
let out: string;
let env: Record<string, string>;
const rel: string[] = [];

const ws = useWorkspace({
  password: "resume",
  setup: async () => {
    ({ src, env } = ws);
    out = path.join(ws.base, "out");
    for (let i = 0; i < N; i++) {
      const r = `${i % 3 ? `d${i % 3}/` : ""}file-${i}.bin`;
      rel.push(r);
      await fs.mkdir(path.dirname(path.join(src, r)), { recursive: true });
      await fs.writeFile(path.join(src, r), prng(50_000 + i * 40_000, `resume${i}`));
    }
    await runOk(["backup", src], { env });
  },
});

test("restore again after deleting half the files and corrupting one", async () => {
  const r1 = await run(["restore", `latest:${src}`, "--target", out, "--json"], { env });
  assert.equal(r1.code, 0, show(r1));
  assert.equal(summaryOf(r1).files_skipped, 0);
  await assertTreesEqual(src, out);

  const deleted = rel.filter((_, i) => i % 2 === 0);
  for (const r of deleted) await fs.rm(path.join(out, r));
  // Damage one remaining file without changing its size or mtime.
  const damaged = rel[1]!;
  const p = path.join(out, damaged);
  const st = await fs.stat(p);
  const fh = await fs.open(p, "r+");
  await fh.write(Buffer.from("DAMAGE"), 0, 6, 1000);
  await fh.close();
  await fs.utimes(p, st.atime, st.mtime);

  const r2 = await run(["restore", `latest:${src}`, "--target", out, "--json"], { env });
  assert.equal(r2.code, 0, show(r2));
  const s = summaryOf(r2);
  const untouched = N - deleted.length - 1;
  assert.equal(s.files_skipped, untouched, `untouched files should be skipped: ${JSON.stringify(s)}`);
  assert.equal(s.files_restored, N, `skipped files count as restored: ${JSON.stringify(s)}`);
  let rewritten = 0;
  for (const r of [...deleted, damaged]) rewritten += (await fs.stat(path.join(src, r))).size;
  assert.equal(
    s.bytes_written,
    rewritten,
    `only deleted and damaged files are written: ${JSON.stringify(s)}`,
  );
  assert.deepEqual(s.errors, []);
  await assertTreesEqual(src, out);

  // Nothing left to do: everything is skipped, nothing written.
  const r3 = await run(["restore", `latest:${src}`, "--target", out, "--json"], { env });
  assert.equal(r3.code, 0, show(r3));
  assert.equal(summaryOf(r3).files_skipped, N);
  assert.equal(summaryOf(r3).bytes_written, 0);
});

test("the human summary says how many files were already in place", async () => {
  const r = await run(["restore", `latest:${src}`, "--target", out], { env });
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, new RegExp(`\\(${N} already in place\\)`));
});
