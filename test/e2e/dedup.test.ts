/**
 * Deduplication seen from outside: the same 50 MB under three names, plus once shifted by a few
 * bytes, takes ~50 MB in the repository (its folder size and the JSON summary agree), and a
 * later snapshot of the same content elsewhere adds almost nothing.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import {
  assertTreesEqual,
  dirBytes,
  MiB,
  prng,
  run,
  runOk,
  show,
  summaryOf,
  useWorkspace,
  withTempDir,
  writeRandomBytes,
} from "../support/cli.js";

const SIZE = 50 * MiB;
/** Extra bytes a shifted copy may cost: the chunks before the chunker re-synchronises (max chunk is 8 MiB). */
const SLACK = 10 * MiB;

let base: string;
let repo: string;
let env: Record<string, string>;

const ws = useWorkspace({
  password: "dedup",
  setup: async () => {
    ({ base, repo, env } = ws);
    await fs.mkdir(path.join(base, "seed"));
    await fs.writeFile(path.join(base, "seed", "hello.txt"), "hello\n");
    await runOk(["backup", path.join(base, "seed")], { env });
  },
});

test("the same 50 MB under three names and once shifted is stored once", async () => {
  const data = path.join(base, "data");
  await fs.mkdir(path.join(data, "nested", "deeper"), { recursive: true });
  const one = path.join(data, "one.bin");
  await writeRandomBytes(one, SIZE, "dedup");
  await fs.copyFile(one, path.join(data, "two.bin"));
  await fs.copyFile(one, path.join(data, "nested", "deeper", "three.bin"));
  // The same bytes after a 7-byte prefix: content-defined chunking finds the same chunks again.
  const shifted = path.join(data, "shifted.bin");
  await fs.writeFile(shifted, Buffer.from("PREFIX!"));
  await fs.appendFile(shifted, await fs.readFile(one));

  const before = await dirBytes(repo);
  const r = await run(["backup", "--json", data], { env, timeoutMs: 120_000 });
  assert.equal(r.code, 0, show(r));
  const s = summaryOf(r);
  const grew = (await dirBytes(repo)) - before;
  const mb = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
  const facts = `data_added=${mb(s.data_added as number)} data_stored=${mb(s.data_stored as number)} repo grew ${mb(grew)}`;
  assert.equal(s.total_bytes_processed, 4 * SIZE + 7, facts);
  assert.equal(s.files_new, 4);
  assert.ok((s.data_added as number) >= SIZE, facts);
  assert.ok((s.data_added as number) <= SIZE + SLACK, `data_added should be ~50 MB, not 200 MB: ${facts}`);
  assert.ok((s.data_stored as number) >= SIZE && (s.data_stored as number) <= SIZE + SLACK, facts);
  assert.ok(grew >= SIZE && grew <= SIZE + SLACK + MiB, `repository folder should grow ~50 MB: ${facts}`);

  await withTempDir(async (out) => {
    const rr = await run(["restore", `latest:${data}`, "--target", out, "--verify"], { env });
    assert.equal(rr.code, 0, show(rr));
    await assertTreesEqual(data, out);
  });
});

test("a new snapshot of the same content in another folder adds only folder listings", async () => {
  const other = path.join(base, "other");
  await fs.mkdir(other);
  await fs.copyFile(path.join(base, "data", "one.bin"), path.join(other, "copy.bin"));
  await fs.writeFile(path.join(other, "small.txt"), prng(1000, "small"));
  const before = await dirBytes(repo);
  const r = await run(["backup", "--json", other], { env });
  assert.equal(r.code, 0, show(r));
  const s = summaryOf(r);
  // New: small.txt (1000 bytes) and a handful of tree blobs.
  assert.ok((s.data_added as number) < 64 * 1024, JSON.stringify(s));
  assert.ok((await dirBytes(repo)) - before < 256 * 1024, "repository grew by more than metadata");
});
