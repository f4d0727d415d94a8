import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, statfsSync } from "node:fs";
import path from "node:path";
import { log } from "./log.js";

/**
 * Trees the bench is done with (restored copies, a pair's repositories) are moved aside, not
 * deleted, while steps are being measured. On ext4 without a journal (this machine's root), the
 * kernel skips every inode freed in the last 60 s (300 s while its block is dirty) when it creates
 * a file, looking each one up: deleting one tool's restored mail store of 30,000 files made the
 * next tool's restore spend 10–20 s more in the kernel (perf: `recently_deleted` and
 * `find_get_block_common` under `ext4_create`), which told which tool came after a deletion
 * rather than which was faster. The trash is emptied when the run ends, or when the disk runs
 * short, then the bench waits out that minute before it measures again.
 */
export class Trash {
  private count = 0;

  constructor(private readonly dir: string) {
    if (existsSync(dir) && readdirSync(dir).length > 0) this.empty(true);
    mkdirSync(dir, { recursive: true });
  }

  /** Moves `p` (on the same filesystem) into the trash; nothing when it does not exist. */
  discard(p: string): void {
    if (!existsSync(p)) return;
    if (this.short()) this.empty(true);
    renameSync(p, path.join(this.dir, String(this.count++)));
  }

  /** Deletes what the trash holds; with `settle`, then waits until no freed inode is recent. */
  empty(settle: boolean): void {
    spawnSync("rm", ["-rf", this.dir]);
    mkdirSync(this.dir, { recursive: true });
    if (!settle) return;
    log(
      "emptied the bench's trash; waiting 61 s so that no freed inode slows the next step (see bench/trash.ts)",
    );
    spawnSync("sync");
    spawnSync("sleep", ["61"]);
  }

  /** Whether the filesystem is near full: under 10 GiB (or 5%) of space or 10% of its inodes
   * left. (A fifth of the space, the first rule, made a run on a half-full 250 GB disk wait a
   * minute before every step: more than the largest pair's 15 GB of trash needs.) */
  private short(): boolean {
    const s = statfsSync(this.dir);
    const free = s.bavail * s.bsize;
    return s.ffree < s.files / 10 || free < 10 * 1024 ** 3 || s.bavail < s.blocks / 20;
  }
}
