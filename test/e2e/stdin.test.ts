/** `backup --stdin`: what arrives on standard input becomes one file in a snapshot. */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import {
  assertCleanError,
  dirBytes,
  jsonLines,
  MiB,
  prng,
  run,
  runOk,
  summaryOf,
  useWorkspace,
} from "../support/cli.js";

const ws = useWorkspace({ password: "stdin" });

test("echo data | lifeboat backup --stdin --stdin-filename db.sql, then ls, restore and cat blob", async () => {
  const data = Buffer.concat([
    Buffer.from("-- dump\nCREATE TABLE t (x int);\nINSERT INTO t VALUES (1);\n"),
    prng(3 * MiB + 12345, "stdin"),
  ]);
  const args = ["backup", "--stdin", "--stdin-filename", "db.sql", "--json"];
  const s = summaryOf(await runOk(args, { env: ws.env, input: data }));
  assert.equal(s.total_bytes_processed, data.length);
  assert.equal(s.files_new, 1);

  const ls = await runOk(["ls", "latest"], { env: ws.env });
  assert.deepEqual(ls.stdout.split("\n").filter(Boolean), ["/db.sql"]);
  const lsl = jsonLines((await runOk(["ls", "latest", "--json"], { env: ws.env })).stdout);
  const node = lsl.find((m) => m.message_type === "node");
  assert.equal(node?.path, "/db.sql");
  assert.equal(node?.size, data.length);

  const out = path.join(ws.base, "out");
  await runOk(["restore", "latest", "--target", out, "--verify"], { env: ws.env });
  assert.deepEqual(await fs.readdir(out), ["db.sql"]);
  assert.ok((await fs.readFile(path.join(out, "db.sql"))).equals(data), "restored bytes differ");

  // The same bytes through `cat`: snapshot → tree → each content blob, concatenated.
  const snap = JSON.parse((await runOk(["cat", "snapshot", "latest"], { env: ws.env })).stdout) as {
    tree: string;
  };
  const tree = JSON.parse((await runOk(["cat", "tree", snap.tree], { env: ws.env })).stdout) as {
    nodes: { name: string; content: string[] }[];
  };
  assert.equal(tree.nodes.length, 1);
  assert.equal(tree.nodes[0]!.name, "db.sql");
  const parts: Buffer[] = [];
  for (const id of tree.nodes[0]!.content)
    parts.push((await runOk(["cat", "blob", id], { env: ws.env })).stdoutRaw);
  assert.ok(Buffer.concat(parts).equals(data), "cat blob bytes differ from the input");
});

test("empty stdin makes an empty file", async () => {
  await runOk(["backup", "--stdin", "--stdin-filename", "empty.txt"], { env: ws.env, input: "" });
  const out = path.join(ws.base, "out-empty");
  await runOk(["restore", "latest", "--target", out], { env: ws.env });
  assert.equal((await fs.readFile(path.join(out, "empty.txt"))).length, 0);
});

test("--stdin with paths is bad usage and writes nothing", async () => {
  const before = await dirBytes(ws.repo);
  assertCleanError(await run(["backup", "--stdin", ws.base], { env: ws.env, input: "x" }), 2, /--stdin/);
  assert.equal(await dirBytes(ws.repo), before);
});

test("--stdin-filename with a slash is bad usage (with a hint) and writes nothing", async () => {
  const before = await dirBytes(ws.repo);
  assertCleanError(
    await run(["backup", "--stdin", "--stdin-filename", "../escape"], { env: ws.env, input: "x" }),
    2,
    /stdin-filename/,
  );
  assert.equal(await dirBytes(ws.repo), before);
});

test("a file and the same bytes on stdin are cut into the same chunks (worker and main-thread chunkers agree)", async () => {
  // Files are chunked on worker threads, streams on the main thread: both must cut identically,
  // or a database dump and its file copy would stop deduplicating against each other.
  const data = prng(9 * MiB + 777, "same chunks");
  const file = path.join(ws.base, "same.bin");
  await fs.writeFile(file, data);
  const first = summaryOf(await runOk(["backup", file, "--json"], { env: ws.env }));
  assert.ok(Number(first.data_blobs_added) > 4, `expected several chunks, got ${first.data_blobs_added}`);
  const again = summaryOf(
    await runOk(["backup", "--stdin", "--stdin-filename", "same.bin", "--json"], {
      env: ws.env,
      input: data,
    }),
  );
  // Only the new tree is added: every data chunk was already stored.
  assert.equal(again.data_blobs_added, 1, "the stdin copy added data chunks");
  assert.ok(Number(again.data_added) < 4096, `stdin copy added ${again.data_added} bytes`);
});
