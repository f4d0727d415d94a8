/**
 * `check` after a prune was killed once its plan was stored (found by the torture campaign:
 * every snapshot restored, yet `check --read-data` exited 14 with "pack header lists 111
 * blob(s), the index 106"). Backups made after the plan do not deduplicate against the packs it
 * dooms, so they store some of those blobs again; the doomed pack then holds blobs the index
 * resolves elsewhere. That is expected, not damage: check must say so and exit 0 when every
 * snapshot's data is there, and still find real damage in such a pack.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import {
  CLI,
  jsonLines,
  listAll,
  run,
  runOk,
  show,
  startCli,
  useWorkspace,
  waitFor,
  writeRandomFile,
} from "../support/cli.js";

const ws = useWorkspace({ password: "pw" });

const files = async (sub: string) =>
  (await listAll(path.join(ws.repo, sub)).catch(() => [] as string[])).filter((p) =>
    /\/[0-9a-f]{64}$/.test(p),
  );

test("a prune killed after storing its plan, then backups: check explains it and exits 0", async () => {
  const src = ws.src;
  await fs.mkdir(src, { recursive: true });
  const file = path.join(src, "data.bin");
  const first = path.join(ws.base, "first.bin");
  await writeRandomFile(first, 6, 71);
  await fs.copyFile(first, file);
  await runOk(["backup", src], { env: ws.env });
  for (const seed of [72, 73, 74]) {
    await writeRandomFile(file, 6, seed);
    await runOk(["backup", src], { env: ws.env });
  }

  // A backup that keeps running (reading stdin that stays open) holds the plan back, so the
  // prune stores it and stops there; the prune is killed as soon as the plan is visible.
  const holder = spawn(process.execPath, [CLI, "backup", "--stdin", "--stdin-filename", "held.txt"], {
    env: ws.env,
    stdio: ["pipe", "ignore", "ignore"],
  });
  try {
    assert.ok(await waitFor(async () => (await files("sessions")).length === 1, 60_000), "holder started");
    const pruning = startCli(["forget", "--keep-last", "3", "--prune"], { env: ws.env });
    assert.ok(await waitFor(async () => (await files("gc")).length > 0, 120_000, 5), "plan stored");
    pruning.child.kill("SIGKILL");
    await pruning.done;
  } finally {
    holder.kill("SIGKILL");
    await new Promise((r) => holder.once("close", r));
  }
  assert.equal((await files("gc")).length, 1, "the plan is pending");

  // Later backups store blobs of the doomed packs again: the first half of the first file.
  const half = (await fs.readFile(first)).subarray(0, 3 * 1024 * 1024);
  await fs.writeFile(file, half);
  await runOk(["backup", src], { env: ws.env });
  await writeRandomFile(path.join(src, "more.bin"), 1, 75);
  await runOk(["backup", src], { env: ws.env });

  const c = await run(["check", "--read-data"], { env: ws.env });
  assert.equal(c.code, 0, show(c));
  assert.match(c.stdout, /prune plan [0-9a-f]{8} .*not carried out yet/);
  assert.match(c.stdout, /\d+ blob\(s\) are stored in more than one pack/);
  assert.match(c.stdout, /no errors were found/);
  const j = await run(["check", "--read-data", "--json"], { env: ws.env });
  assert.equal(j.code, 0, show(j));
  const summary = jsonLines(j.stdout).find((l) => l.message_type === "summary") as {
    ok: boolean;
    problems: unknown[];
    pendingPlans: { plan: string; packs: number }[];
    duplicateBlobs: number;
  };
  assert.equal(summary.ok, true);
  assert.equal(summary.pendingPlans.length, 1);
  assert.ok(summary.duplicateBlobs > 0);

  // Every snapshot restores, byte for byte where the file is known.
  const snaps = JSON.parse((await runOk(["snapshots", "--json"], { env: ws.env })).stdout) as {
    id: string;
  }[];
  for (const s of snaps) {
    const target = path.join(ws.base, `restore-${s.id.slice(0, 8)}`);
    const r = await run(["restore", s.id, "--target", target, "--verify"], { env: ws.env });
    assert.equal(r.code, 0, show(r));
  }
  const last = path.join(ws.base, `restore-${snaps.at(-1)!.id.slice(0, 8)}`);
  assert.deepEqual(await fs.readFile(path.join(last, file)), half);

  // The next prune carries the plan out; check is clean and says nothing more about it.
  await runOk(["prune"], { env: ws.env });
  const after = await run(["check", "--read-data"], { env: ws.env });
  assert.equal(after.code, 0, show(after));
  assert.doesNotMatch(after.stdout, /prune plan/);

  // Real damage in a pack is still found.
  const packs = await files("data");
  const victim = packs[0]!;
  const bytes = await fs.readFile(victim);
  bytes[100] = bytes[100]! ^ 1;
  await fs.writeFile(victim, bytes);
  const bad = await run(["check", "--read-data"], { env: ws.env });
  assert.equal(bad.code, 14, show(bad));
});
