/** Edges found in review: long non-Latin names on restore, a reader that closes stdout early. */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { runOk, show, startCli, useWorkspace } from "../support/cli.js";

const ws = useWorkspace({ password: "edges" });

test("a file whose name is 80 CJK characters (240 bytes) restores (temporary names are cut in bytes)", async () => {
  const src = path.join(ws.base, "cjk");
  await fs.mkdir(src);
  const name = "文".repeat(80);
  await fs.writeFile(path.join(src, name), "content of a long name\n");
  await fs.writeFile(path.join(src, `${"長".repeat(80)}.bin`), Buffer.alloc(3 * 1024 * 1024, 7));
  await runOk(["backup", src], { env: ws.env });
  const out = path.join(ws.base, "cjk-out");
  const r = await runOk(["restore", "latest", "--target", out, "--verify"], { env: ws.env });
  const restored = path.join(out, src.replace(/^\//, ""));
  assert.equal(await fs.readFile(path.join(restored, name), "utf8"), "content of a long name\n", show(r));
  assert.equal((await fs.stat(path.join(restored, `${"長".repeat(80)}.bin`))).size, 3 * 1024 * 1024);
  assert.deepEqual(
    (await fs.readdir(restored)).filter((n) => n.includes(".lifeboat-")),
    [],
    "temporary files left behind",
  );
});

test("backup --json whose reader closes stdout at once still saves its snapshot and exits 0", async () => {
  const src = path.join(ws.base, "piped");
  await fs.mkdir(src);
  for (let i = 0; i < 50; i++) await fs.writeFile(path.join(src, `f${i}.txt`), `file ${i}\n`.repeat(100));
  const count = async () =>
    (JSON.parse((await runOk(["snapshots", "--json"], { env: ws.env })).stdout) as unknown[]).length;
  const before = await count();
  const { child, done } = startCli(["backup", src, "--json"], { env: ws.env });
  child.stdout!.destroy(); // like `| head -0`: the pipe is gone before anything is written
  const r = await done;
  assert.equal(r.code, 0, show(r));
  assert.equal(await count(), before + 1, "the backup did not save a snapshot");
});
