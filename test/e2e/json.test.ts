/**
 * --json: every line of stdout is one JSON document (status lines while working, then a
 * summary), for backup, snapshots, ls, restore, key list and init; stderr stays empty on success.
 * Without --json nothing is drawn into a pipe.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { jsonLines, MiB, run, show, useWorkspace, writeRandomBytes } from "../support/cli.js";

/** Big enough for several status lines (one every 250 ms) while the work is under way. */
const BIG = 150 * MiB;
let src: string;
let env: Record<string, string>;
const ws = useWorkspace({
  password: "json",
  init: false, // `init --json` is one of the tests
  setup: async () => {
    ({ src, env } = ws);
    await fs.mkdir(path.join(src, "d"), { recursive: true });
    await writeRandomBytes(path.join(src, "big.bin"), BIG, "json");
    await fs.writeFile(path.join(src, "d", "small.txt"), "small\n");
    await fs.symlink("d/small.txt", path.join(src, "link"));
  },
});

/** Runs with --json, checks exit 0, an empty stderr and that stdout is JSON lines. */
async function json(args: string[]) {
  const r = await run([...args, "--json"], { env, timeoutMs: 120_000 });
  assert.equal(r.code, 0, show(r));
  assert.equal(r.stderr, "", `stderr should be empty on success:\n${show(r)}`);
  assert.ok(r.stdout.endsWith("\n"), "output ends with a newline");
  return jsonLines(r.stdout);
}

function checkStatusLines(lines: Record<string, unknown>[], action: string, total: number) {
  const status = lines.filter((m) => m.message_type === "status");
  assert.ok(status.length >= 2, `expected status lines, got ${status.length}`);
  let prev = -1;
  for (const s of status) {
    assert.equal(s.action, action);
    assert.equal(typeof s.bytes_done, "number");
    assert.ok((s.bytes_done as number) >= prev, "bytes_done never goes back");
    prev = s.bytes_done as number;
    if (s.percent_done !== null)
      assert.ok((s.percent_done as number) >= 0 && (s.percent_done as number) <= 1);
  }
  // Status arrives while the work is under way, not only at the end.
  assert.ok((status[0]!.bytes_done as number) < total, "first status line came only at the end");
  assert.equal(status.at(-1)!.bytes_done, total);
  assert.equal(lines.at(-1)!.message_type, "summary", "the summary is the last line");
  return status.length;
}

test("init --json prints one initialized line", async () => {
  const lines = await json(["init"]);
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.message_type, "initialized");
});

test("backup --json of a large file: status lines while working, then one summary", async () => {
  const lines = await json(["backup", src]);
  const n = checkStatusLines(lines, "backup", BIG + 6);
  const summary = lines.at(-1)!;
  assert.equal(summary.total_bytes_processed, BIG + 6);
  assert.equal(summary.files_new, 2);
  if ((summary.duration_ms as number) > 1500)
    assert.ok(n >= 3, `only ${n} status lines in ${summary.duration_ms} ms`);
  const withTotals = lines.filter((m) => m.message_type === "status" && m.total_bytes !== null);
  assert.ok(withTotals.length > 0, "no status line carried the totals");
  assert.equal(withTotals.at(-1)!.total_bytes, BIG + 6);
});

test("backup without --json draws no progress into a pipe", async () => {
  const r = await run(["backup", src], { env });
  assert.equal(r.code, 0, show(r));
  assert.equal(r.stderr, "");
  assert.doesNotMatch(r.stdout, /\r|\x1b\[/);
});

test("snapshots --json is one line holding an array", async () => {
  const lines = await json(["snapshots"]);
  assert.equal(lines.length, 1);
  const arr = lines[0] as unknown as { id: string; short_id: string; paths: string[]; time: string }[];
  assert.ok(Array.isArray(arr));
  assert.equal(arr.length, 2);
  for (const s of arr) {
    assert.match(s.id, /^[0-9a-f]{64}$/);
    assert.equal(s.short_id, s.id.slice(0, 8));
    assert.deepEqual(s.paths, [src]);
    assert.ok(!Number.isNaN(Date.parse(s.time)));
  }
});

test("ls --json: a snapshot line, then one line per node", async () => {
  const lines = await json(["ls", "latest", src]);
  assert.equal(lines[0]!.message_type, "snapshot");
  const nodes = lines.slice(1);
  assert.ok(nodes.every((n) => n.message_type === "node"));
  const byPath = new Map(nodes.map((n) => [n.path, n]));
  assert.deepEqual([...byPath.keys()].sort(), [
    `${src}/big.bin`,
    `${src}/d`,
    `${src}/d/small.txt`,
    `${src}/link`,
  ]);
  assert.equal(byPath.get(`${src}/big.bin`)!.size, BIG);
  assert.equal(byPath.get(`${src}/link`)!.type, "symlink");
  assert.equal(byPath.get(`${src}/link`)!.target, "d/small.txt");
  assert.equal(byPath.get(`${src}/d`)!.type, "dir");
});

test("restore --json: status lines, then one summary", async () => {
  const out = path.join(ws.base, "out");
  const lines = await json(["restore", `latest:${src}`, "--target", out, "--verify"]);
  checkStatusLines(lines, "restore", BIG + 6);
  const s = lines.at(-1)!;
  assert.equal(s.files_restored, 2);
  assert.equal(s.files_verified, 2);
  assert.equal(s.symlinks, 1);
  assert.deepEqual(s.errors, []);
});

test("key list --json is one line holding an array", async () => {
  const lines = await json(["key", "list"]);
  assert.equal(lines.length, 1);
  const keys = lines[0] as unknown as { id: string; current: boolean }[];
  assert.equal(keys.length, 1);
  assert.equal(keys[0]!.current, true);
});
