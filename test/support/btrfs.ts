/**
 * A btrfs file system in a loop file, for the tests of `--fs-snapshot btrfs`: a sparse image in a
 * temporary folder, formatted and mounted as root (btrfs-progs installed with apt when missing).
 * Where that cannot be done (not root, no loop devices, no btrfs in the kernel) `loopBtrfs`
 * returns why, and the suite skips with that message.
 */
import { execFileSync } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
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

/** Mounts a new btrfs of `mib` MiB, or says why it cannot. */
export async function loopBtrfs(mib = 1024): Promise<LoopBtrfs | string> {
  if (process.getuid?.() !== 0) return "needs root (to mount a loop device)";
  if (!existsSync("/dev/loop-control")) return "no loop devices here (/dev/loop-control is missing)";
  ensurePackages({ "/usr/bin/btrfs": "btrfs-progs", "/usr/sbin/mkfs.btrfs": "btrfs-progs" });
  const dir = await tempDir("lifeboat-btrfs-");
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
      for (let i = 0; ; i++) {
        try {
          execFileSync("umount", [mnt], { stdio: ["ignore", "ignore", "pipe"] });
          break;
        } catch (e) {
          if (i >= 20) throw e;
          await new Promise((r) => setTimeout(r, 250)); // a child still has a file open
        }
      }
      await removeTempDir(dir);
    },
  };
}
