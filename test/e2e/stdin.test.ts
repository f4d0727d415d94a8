/** `backup --stdin`: what arrives on standard input becomes one file in a snapshot. */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import {
  assertCleanError,
  dirBytes,
  jsonLines,
  MiB,
  makeTempDir,
  prng,
  removeTempDir,
  repoEnv,
  runCli,
  runOk,
  show,
  summaryOf,
} from "../helpers/cli.js";

let base: string;
let repo: string;
let env: Record<string, string>;

before(async () => {
  base = await makeTempDir();
  repo = path.join(base, "repo");
  env = repoEnv(repo, "stdin");
  await runOk(["init"], { env });
});
after(async () => {
  if (base) await removeTempDir(base);
});

test("echo data | lifeboat backup --stdin --stdin-filename db.sql, then ls, restore and cat blob", async () => {
  const data = Buffer.concat([
    Buffer.from("-- dump\nCREATE TABLE t (x int);\nINSERT INTO t VALUES (1);\n"),
    prng(3 * MiB + 12345, "stdin"),
  ]);
  const r = await runCli(["backup", "--stdin", "--stdin-filename", "db.sql", "--json"], { env, input: data });
  assert.equal(r.code, 0, show(r));
  const s = summaryOf(r);
  assert.equal(s.total_bytes_processed, data.length);
  assert.equal(s.files_new, 1);

  const ls = await runCli(["ls", "latest"], { env });
  assert.equal(ls.code, 0, show(ls));
  assert.deepEqual(ls.stdout.split("\n").filter(Boolean), ["/db.sql"]);
  const lsl = jsonLines((await runOk(["ls", "latest", "--json"], { env })).stdout);
  const node = lsl.find((m) => m.message_type === "node");
  assert.equal(node?.path, "/db.sql");
  assert.equal(node?.size, data.length);

  const out = path.join(base, "out");
  await runOk(["restore", "latest", "--target", out, "--verify"], { env });
  const { readFile, readdir } = await import("node:fs/promises");
  assert.deepEqual(await readdir(out), ["db.sql"]);
  assert.ok((await readFile(path.join(out, "db.sql"))).equals(data), "restored bytes differ");

  // The same bytes through `cat`: snapshot → tree → each content blob, concatenated.
  const snap = JSON.parse((await runOk(["cat", "snapshot", "latest"], { env })).stdout) as { tree: string };
  const tree = JSON.parse((await runOk(["cat", "tree", snap.tree], { env })).stdout) as {
    nodes: { name: string; content: string[] }[];
  };
  assert.equal(tree.nodes.length, 1);
  assert.equal(tree.nodes[0]!.name, "db.sql");
  const parts: Buffer[] = [];
  for (const id of tree.nodes[0]!.content) parts.push((await runOk(["cat", "blob", id], { env })).stdoutRaw);
  assert.ok(Buffer.concat(parts).equals(data), "cat blob bytes differ from the input");
});

test("empty stdin makes an empty file", async () => {
  await runOk(["backup", "--stdin", "--stdin-filename", "empty.txt"], { env, input: "" });
  const out = path.join(base, "out-empty");
  await runOk(["restore", "latest", "--target", out], { env });
  const { readFile } = await import("node:fs/promises");
  assert.equal((await readFile(path.join(out, "empty.txt"))).length, 0);
});

test("--stdin with paths is bad usage and writes nothing", async () => {
  const before = await dirBytes(repo);
  assertCleanError(await runCli(["backup", "--stdin", base], { env, input: "x" }), 2, /--stdin/);
  assert.equal(await dirBytes(repo), before);
});

test("--stdin-filename with a slash is bad usage (with a hint) and writes nothing", async () => {
  const before = await dirBytes(repo);
  assertCleanError(
    await runCli(["backup", "--stdin", "--stdin-filename", "../escape"], { env, input: "x" }),
    2,
    /stdin-filename/,
  );
  assert.equal(await dirBytes(repo), before);
});
