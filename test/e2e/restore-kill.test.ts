/**
 * A restore killed with SIGKILL, again and again, then run to the end: the target equals the
 * snapshot exactly, hidden files included (issue 18, item 8). A killed run leaves either the
 * staging folder of a restore into an empty target or the temporary files of a restore in
 * place; the next run must resume or remove them, never present them.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { assertTreesEqual, MiB, prng, run, runOk, show, startCli, useWorkspace } from "../support/cli.js";

let src: string;
let env: Record<string, string>;
const BIG = ["big0.bin", "d1/big1.bin", "d2/big2.bin"];

const ws = useWorkspace({
  password: "kill-restore",
  setup: async () => {
    ({ src, env } = ws);
    for (let i = 0; i < 300; i++) {
      const p = path.join(src, `d${i % 3}`, `m${i}.eml`);
      await fs.mkdir(path.dirname(p), { recursive: true });
      await fs.writeFile(p, prng(1000 + ((i * 337) % 15_000), `mail${i}`));
    }
    await fs.writeFile(path.join(src, ".hidden"), "hidden file of the snapshot\n");
    for (const [i, b] of BIG.entries()) await fs.writeFile(path.join(src, b), prng(12 * MiB, `big${i}`));
    await runOk(["backup", src], { env });
  },
});

/** What a killed restore can leave in `dir`: a staging folder or a temporary file (by name). */
async function leftovers(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (/^\.lifeboat-/.test(e.name) || /\.lifeboat-[0-9a-f]{12}/.test(e.name))
        out.push(path.join(d, e.name));
      if (e.isDirectory()) await walk(path.join(d, e.name));
    }
  };
  await walk(dir);
  return out;
}

/**
 * Starts the restore and kills it as soon as it has left something of its own behind (or
 * after `ms`); returns whether it was killed before finishing.
 */
async function killedRestore(target: string, ms: number): Promise<boolean> {
  const { child, done } = startCli(["restore", `latest:${src}`, "--target", target], { env });
  const started = Date.now();
  let exited = false;
  void done.then(() => {
    exited = true;
  });
  while (!exited && Date.now() - started < ms) {
    if ((await leftovers(target)).length > 0) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill("SIGKILL");
  const r = await done;
  if (r.signal !== "SIGKILL") assert.equal(r.code, 0, show(r)); // finished first: must have succeeded
  return r.signal === "SIGKILL";
}

test("a restore into an empty folder killed three times, then run to the end, equals the snapshot", async () => {
  const out = path.join(ws.base, "out-empty");
  let kills = 0;
  let seen = 0;
  for (const wait of [50, 400, 900]) {
    if (await killedRestore(out, wait)) kills++;
    if ((await leftovers(out)).length > 0) seen++;
  }
  const r = await run(["restore", `latest:${src}`, "--target", out, "--json"], { env });
  assert.equal(r.code, 0, show(r));
  assert.deepEqual(await leftovers(out), []);
  await assertTreesEqual(src, out);
  console.log(`# empty target: ${kills} kill(s), ${seen} with leftovers`);
});

test("a restore in place killed three times, then run to the end, removes its temporary files", async () => {
  const out = path.join(ws.base, "out-inplace");
  await runOk(["restore", `latest:${src}`, "--target", out], { env });
  let kills = 0;
  let seen = 0;
  for (const wait of [300, 900, 2000]) {
    // The large files are missing again: the restore rewrites them through temporary files.
    for (const b of BIG) await fs.rm(path.join(out, b), { force: true });
    if (await killedRestore(out, wait)) kills++;
    if ((await leftovers(out)).length > 0) seen++;
  }
  const r = await run(["restore", `latest:${src}`, "--target", out, "--json"], { env });
  assert.equal(r.code, 0, show(r));
  assert.deepEqual(await leftovers(out), []);
  await assertTreesEqual(src, out);
  console.log(`# in place: ${kills} kill(s), ${seen} with leftovers`);
});
