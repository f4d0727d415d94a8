/**
 * restore, check --read-data and drill while a prune repacks the packs they read (issue 18,
 * item 5): none of them holds a session, so the prune deletes the packs at once; each must
 * follow the blobs to where they moved and succeed. The readers are slowed down with a download
 * limit, so every round's prune runs to its end while they are still reading; the restore reads
 * more than it reads ahead (16 MiB), so its last ranges come from the repacked pack. The
 * library test test/lib/prune-readers.test.ts does the same deterministically.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import {
  assertTreesEqual,
  jsonLines,
  MiB,
  prng,
  run,
  runOk,
  show,
  startCli,
  summaryOf,
  useWorkspace,
} from "../support/cli.js";

const KiB = 1024;
const ws = useWorkspace({ password: "prune-readers" });

/** Round `n`: `keep/` (what the kept snapshot holds: 24 MiB) and `gone/` (only the forgotten
 * one), backed up in this order, so the last pack holds both and is repacked. */
async function writeRound(src: string, n: number): Promise<void> {
  await fs.rm(src, { recursive: true, force: true });
  for (const part of ["keep", "gone"]) {
    await fs.mkdir(path.join(src, part), { recursive: true });
    for (let i = 0; i < 24; i++) {
      const size = part === "keep" && i % 4 === 0 ? 4 * MiB : 20 * KiB + i * 997;
      await fs.writeFile(path.join(src, part, `f${i}`), prng(size, `${part}-${n}-${i}`));
    }
  }
}

async function backup(args: string[]): Promise<string> {
  const r = await runOk(["backup", ...args, "--json"], { env: ws.env });
  return String(summaryOf(r).snapshot_id);
}

test("restore, check --read-data and drill succeed while a prune repacks what they read", async () => {
  const src = path.join(ws.base, "src");
  const slow = { ...ws.env, LIFEBOAT_LIMIT_DOWNLOAD: "4096" }; // KiB/s: seconds per reader
  let overlapped = 0;
  for (let n = 0; n < 2; n++) {
    await writeRound(src, n);
    // One snapshot of everything, then one of keep/ alone: its blobs live in the first one's
    // packs, which forgetting the first leaves partly unused, so the prune repacks them.
    const whole = await backup([src]);
    const kept = await backup([path.join(src, "keep")]);
    const target = path.join(ws.base, `out-${n}`);
    const readers = [
      startCli(["restore", `${kept}:${path.join(src, "keep")}`, "--target", target], { env: slow }),
      startCli(["check", "--read-data"], { env: slow }),
      startCli(["drill", kept], { env: slow }),
    ];
    let finished = 0;
    for (const r of readers) void r.done.then(() => finished++);
    // Once the restore has begun writing (it read the index and the trees), prune.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && (await fs.readdir(target).catch(() => [])).length === 0)
      await new Promise((r) => setTimeout(r, 20));
    const prune = await run(["forget", whole, "--prune", "--max-unused", "0", "--json"], { env: ws.env });
    assert.equal(prune.code, 0, show(prune));
    const pruned = jsonLines(prune.stdout).find((l) => l.action === "prune");
    const mark = pruned?.mark as { repackPacks: string[] } | undefined;
    assert.ok((mark?.repackPacks.length ?? 0) > 0, `nothing was repacked: ${prune.stdout}`);
    assert.ok(
      ((pruned?.swept as unknown[]) ?? []).length > 0,
      `the plan was not carried out: ${prune.stdout}`,
    );
    if (finished === 0) overlapped++;
    const [restore, check, drill] = await Promise.all(readers.map((r) => r.done));
    assert.equal(restore!.code, 0, show(restore!));
    assert.equal(check!.code, 0, show(check!));
    assert.equal(drill!.code, 0, show(drill!));
    await assertTreesEqual(path.join(src, "keep"), target);
  }
  // A round's prune ended before any reader did (with the limit they take seconds).
  assert.ok(overlapped >= 1, `the prune ran beside the readers in ${overlapped} of 2 rounds`);
});
