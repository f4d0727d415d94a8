/**
 * `--fs-snapshot-command`/`--fs-snapshot-cleanup` with the ZFS recipe shipped in
 * docs/fs-snapshot-recipes/zfs-clone.sh, for real, on Debian's zfs-fuse (a ZFS in user space,
 * in a pool of one file): the backup reads a read-only clone of a ZFS snapshot, records the
 * original path, the next backup reads no file again, and nothing is left behind — also after
 * SIGKILL, once the next backup started. Skipped with the reason where zfs-fuse cannot run.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ensurePackages } from "../support/apt.js";
import {
  baseEnv,
  jsonLines,
  prng,
  removeTempDir,
  run,
  runOk,
  show,
  startCli,
  summaryOf,
  tempDir,
  writeRandomFile,
} from "../support/cli.js";

const RECIPE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "..",
  "docs",
  "fs-snapshot-recipes",
  "zfs-clone.sh",
);

const zfsOk = (...args: string[]) => {
  try {
    return execFileSync(args[0]!, args.slice(1), { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch {
    return undefined;
  }
};

let dir: string;
let pool: string;
let mnt: string;
let daemon: ChildProcess | undefined;
let why: string | undefined;
/** A backup the test started: killed before the pool goes, whatever the test did. */
let slowChild: ChildProcess | undefined;

before(async () => {
  if (process.getuid?.() !== 0) {
    why = "needs root";
    return;
  }
  ensurePackages({ "/usr/sbin/zfs-fuse": "zfs-fuse" });
  dir = await tempDir("lifeboat-zfs-");
  // A daemon that already runs is used as it is; otherwise one is started for these tests.
  if (zfsOk("zpool", "list") === undefined) {
    daemon = spawn("zfs-fuse", ["--no-daemon", "--pidfile", path.join(dir, "zfs-fuse.pid")], {
      stdio: "ignore",
    });
    for (let i = 0; i < 100 && zfsOk("zpool", "list") === undefined; i++)
      await new Promise((r) => setTimeout(r, 100));
    if (zfsOk("zpool", "list") === undefined) {
      why = "zfs-fuse does not start here (FUSE unavailable?)";
      return;
    }
  }
  pool = `lbtest${process.pid}`;
  mnt = path.join(dir, "pool");
  const disk = path.join(dir, "disk");
  await fs.writeFile(disk, "");
  await fs.truncate(disk, 256 * 1024 * 1024);
  try {
    execFileSync("zpool", ["create", "-m", mnt, pool, disk], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    why = `cannot make a zfs-fuse pool here: ${(e as { stderr?: Buffer }).stderr?.toString().trim()}`;
  }
});

after(async () => {
  if (slowChild && slowChild.exitCode === null && slowChild.signalCode === null) {
    const gone = new Promise((r) => slowChild!.once("exit", r));
    slowChild.kill("SIGKILL");
    await gone;
  }
  if (pool && zfsOk("zpool", "list", pool) !== undefined) {
    for (let i = 0; i < 20 && zfsOk("zpool", "destroy", "-f", pool) === undefined; i++)
      await new Promise((r) => setTimeout(r, 250));
  }
  if (daemon) {
    daemon.kill("SIGTERM");
    await new Promise((r) => daemon!.once("exit", r));
  }
  // Never into a pool still mounted there (rm would empty it; it stays for a look instead).
  if (dir && !(pool && zfsOk("zpool", "list", pool) !== undefined)) await removeTempDir(dir);
});

test("the ZFS recipe (zfs-clone.sh): read from a clone, original path recorded, incremental, nothing left after SIGKILL and the next start", async (t) => {
  if (why) return t.skip(why);
  const src = path.join(mnt, "app");
  await fs.mkdir(path.join(src, "docs"), { recursive: true });
  for (let i = 0; i < 20; i++)
    await fs.writeFile(path.join(src, "docs", `d${i}.txt`), prng(3000 + i, `zfs-${i}`));
  const clones = path.join(dir, "clones");
  const env = baseEnv({
    LIFEBOAT_REPOSITORY: path.join(dir, "repo"),
    LIFEBOAT_PASSWORD: "pw",
    XDG_STATE_HOME: path.join(dir, "state"),
    LIFEBOAT_ZFS_CLONES: clones,
  });
  await runOk(["init"], { env });
  const hook = ["--fs-snapshot-command", RECIPE, "--fs-snapshot-cleanup", RECIPE];
  const left = () =>
    (zfsOk("zfs", "list", "-H", "-o", "name", "-t", "all", "-r", pool) ?? "")
      .split("\n")
      .filter((l) => l.includes("lifeboat-"));

  const first = await runOk(["backup", src, "--json", ...hook], { env });
  const f = summaryOf(first).fs_snapshot as { kind: string; snapshots: { of: string; path: string }[] };
  assert.equal(f.kind, "command");
  assert.equal(f.snapshots[0]!.of, src);
  assert.ok(f.snapshots[0]!.path.startsWith(`${clones}/lifeboat-fs-`), f.snapshots[0]!.path);
  assert.equal(summaryOf(first).files_new, 20);
  const again = summaryOf(await runOk(["backup", src, "--json", ...hook], { env }));
  assert.equal(again.files_unmodified, 20, JSON.stringify(again));
  assert.equal(again.files_new, 0);
  assert.equal(again.files_changed, 0);
  const snaps = JSON.parse((await runOk(["snapshots", "--json"], { env })).stdout) as { paths: string[] }[];
  assert.deepEqual(snaps.at(-1)!.paths, [src]);
  const ls = jsonLines((await runOk(["ls", "latest", "--json"], { env })).stdout).map((m) => m.path);
  assert.ok(ls.includes(path.join(src, "docs", "d7.txt")), ls.join("\n"));
  assert.deepEqual(left(), []);

  // Killed while reading: the clone and the snapshot stay until the next start.
  await writeRandomFile(path.join(src, "big"), 8, 5);
  const slow = startCli(["--limit-upload", "512", "backup", src, ...hook], { env });
  slowChild = slow.child;
  for (let i = 0; i < 1200 && left().length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(left().length, 2, `a snapshot and its clone while the backup runs: ${left().join(" ")}`);
  slow.child.kill("SIGKILL");
  await slow.done;
  assert.equal(left().length, 2);
  const next = await run(["backup", src, "--json", ...hook], { env });
  assert.equal(next.code, 0, `${show(next)}\n${next.stderr}`);
  assert.ok(
    (summaryOf(next).warnings as string[]).some((w) => w.includes("left behind")),
    show(next),
  );
  assert.deepEqual(left(), []);
  assert.deepEqual(await fs.readdir(path.join(dir, "state", "lifeboat", "fs-snapshots")), []);
});
