/**
 * A real folder of many tiny and empty files (1,000,000 in the full profile, 2,000 in the quick
 * one) backed up and restored through the CLI, every file compared, with the peak RSS of the
 * backup and of the restore measured by GNU time (docs/reliability.md).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { baseEnv, CLI, useWorkspace } from "../support/cli.js";
import { figure, sized } from "./support.js";

/** LIFEBOAT_MANY_FILES sets another count (a part of the full size when time is short). */
const FILES = Number(process.env.LIFEBOAT_MANY_FILES ?? sized(2_000, 1_000_000));
const PER_DIR = 1000;
const ws = useWorkspace({ password: "many files" });

/** Every 10th file is empty; the others hold their own number. */
const content = (i: number) => (i % 10 === 0 ? "" : `${i}\n`);
const where = (root: string, i: number) => path.join(root, `d${Math.floor(i / PER_DIR)}`, `f${i % PER_DIR}`);

async function measured(
  args: string[],
): Promise<{ code: number | null; stderr: string; maxRssKiB: number; seconds: number }> {
  const child = spawn("/usr/bin/time", ["-f", "LIFEBOAT_MAX_RSS_KIB=%M", process.execPath, CLI, ...args], {
    env: { ...baseEnv(), ...ws.env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const err: Buffer[] = [];
  child.stderr.on("data", (d: Buffer) => err.push(d));
  const t0 = Date.now();
  const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  const stderr = Buffer.concat(err).toString("utf8");
  const m = /LIFEBOAT_MAX_RSS_KIB=(\d+)\n?$/.exec(stderr);
  return { code, stderr, maxRssKiB: m ? Number(m[1]) : Number.NaN, seconds: (Date.now() - t0) / 1000 };
}

test(`${FILES} tiny and empty files back up and restore exactly`, async () => {
  const src = path.join(ws.base, "many");
  for (let d = 0; d * PER_DIR < FILES; d++) await fs.mkdir(path.join(src, `d${d}`), { recursive: true });
  for (let i = 0; i < FILES; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, FILES - i) }, (_, k) =>
        fs.writeFile(where(src, i + k), content(i + k)),
      ),
    );
  }
  const backup = await measured(["backup", src]);
  assert.equal(backup.code, 0, backup.stderr);
  const target = path.join(ws.base, "restored");
  const restore = await measured(["restore", "latest", "--target", target]);
  assert.equal(restore.code, 0, restore.stderr);
  const inside = path.join(target, path.relative("/", src));
  const root = (await fs.stat(inside).catch(() => undefined)) ? inside : target;
  let dirs = 0;
  for (const d of await fs.readdir(root)) dirs += (await fs.readdir(path.join(root, d))).length;
  assert.equal(dirs, FILES, "file count differs");
  for (let i = 0; i < FILES; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, FILES - i) }, async (_, k) =>
        assert.equal(await fs.readFile(where(root, i + k), "utf8"), content(i + k), `file ${i + k}`),
      ),
    );
  }
  const row = {
    files: FILES,
    backupSeconds: backup.seconds,
    backupMaxRssMiB: Math.round(backup.maxRssKiB / 1024),
    restoreSeconds: restore.seconds,
    restoreMaxRssMiB: Math.round(restore.maxRssKiB / 1024),
  };
  console.log(JSON.stringify(row));
  await figure("many-files", row);
});
