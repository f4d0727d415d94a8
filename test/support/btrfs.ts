/**
 * A btrfs file system in a loop file, for the tests of `--fs-snapshot btrfs`: a sparse image in a
 * temporary folder, formatted and mounted as root (btrfs-progs installed with apt when missing).
 * Where that cannot be done (not root, no loop devices, no btrfs in the kernel) `loopBtrfs`
 * returns why, and the suite skips with that message.
 *
 * Nothing outlives the tests, even when they fail: `close()` unmounts (lazily if a straggler
 * still holds a file, which frees the loop device once it lets go: `mount -o loop` sets
 * autoclear) before it removes the folder, and a run killed before `close()` (a test runner's
 * timeout) is cleaned up by the next `loopBtrfs()`: each folder carries its test process's pid.
 */
import { execFileSync } from "node:child_process";
import { existsSync, promises as fs, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ensurePackages } from "./apt.js";
import { removeTempDir, tempDir } from "./cli.js";

export interface LoopBtrfs {
  /** Where it is mounted (the top-level subvolume). */
  mnt: string;
  /** A temporary folder beside it (not on btrfs): repositories, state, scripts. */
  dir: string;
  /** `btrfs ARGS`, its stdout. */
  btrfs(...args: string[]): string;
  /** Paths of every subvolume (relative to the top), from `btrfs subvolume list`. */
  subvolumes(): string[];
  close(): Promise<void>;
}

const PREFIX = "lifeboat-btrfs-";

/** Mount points in /proc/self/mounts (octal escapes decoded). */
function mountPoints(): string[] {
  return readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1])
    .filter((m): m is string => m !== undefined)
    .map((m) => m.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))));
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
};

/** Unmounts `mnt`, waiting up to `ms` for whatever still holds a file there, then lazily. */
async function unmount(mnt: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (mountPoints().includes(mnt)) {
    try {
      execFileSync("umount", [mnt], { stdio: ["ignore", "ignore", "pipe"] });
    } catch {
      if (Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      else execFileSync("umount", ["-l", mnt], { stdio: ["ignore", "ignore", "pipe"] });
    }
  }
}

/** Unmounts and removes the folders of test runs that died before their `close()`. */
async function sweepDead(): Promise<void> {
  const tmp = os.tmpdir();
  for (const name of await fs.readdir(tmp).catch(() => [] as string[])) {
    const pid = Number(new RegExp(`^${PREFIX}(\\d+)-`).exec(name)?.[1]);
    if (!pid || pid === process.pid || alive(pid)) continue;
    const dir = path.join(tmp, name);
    await unmount(path.join(dir, "mnt"), 0).catch(() => {});
    if (!mountPoints().some((m) => m === dir || m.startsWith(`${dir}/`))) await removeTempDir(dir);
  }
}

/** Mounts a new btrfs of `mib` MiB, or says why it cannot. */
export async function loopBtrfs(mib = 1024): Promise<LoopBtrfs | string> {
  if (process.getuid?.() !== 0) return "needs root (to mount a loop device)";
  if (!existsSync("/dev/loop-control")) return "no loop devices here (/dev/loop-control is missing)";
  ensurePackages({ "/usr/bin/btrfs": "btrfs-progs", "/usr/sbin/mkfs.btrfs": "btrfs-progs" });
  await sweepDead();
  const dir = await tempDir(`${PREFIX}${process.pid}-`);
  const img = path.join(dir, "btrfs.img");
  const mnt = path.join(dir, "mnt");
  try {
    await fs.mkdir(mnt);
    await fs.writeFile(img, "");
    await fs.truncate(img, mib * 1024 * 1024);
    execFileSync("mkfs.btrfs", ["-q", img], { stdio: ["ignore", "ignore", "pipe"] });
    execFileSync("mount", ["-o", "loop", img, mnt], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    await removeTempDir(dir);
    const err = (e as { stderr?: Buffer }).stderr?.toString().trim();
    return `cannot mount a btrfs loop device here: ${err || (e as Error).message}`;
  }
  const btrfs = (...args: string[]) => execFileSync("btrfs", args, { encoding: "utf8" });
  return {
    mnt,
    dir,
    btrfs,
    subvolumes: () =>
      btrfs("subvolume", "list", mnt)
        .split("\n")
        .map((l) => / path (.+)$/.exec(l)?.[1])
        .filter((p): p is string => p !== undefined)
        .sort(),
    async close() {
      await unmount(mnt);
      // Never into a file system still mounted there: rm would empty it.
      if (!mountPoints().some((m) => m === mnt || m.startsWith(`${mnt}/`))) await removeTempDir(dir);
    },
  };
}
