import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statfsSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { log } from "./log.js";

/**
 * Trees the bench is done with (restored copies, a pair's repositories) are moved aside, not
 * deleted, while steps are being measured. On ext4 without a journal (this machine's root), the
 * kernel skips every inode freed in the last 60 s (300 s while its block is dirty) when it creates
 * a file, looking each one up: deleting one tool's restored mail store of 30,000 files made the
 * next tool's restore spend 10–20 s more in the kernel (perf: `recently_deleted` and
 * `find_get_block_common` under `ext4_create`), which told which tool came after a deletion
 * rather than which was faster. Creating files dirties the inode table blocks the freed inodes
 * share, so in practice the cost lasts minutes: restores measured 1 to 4 minutes after a mass
 * deletion took 2-3.5 times as long, falling with every pair (2026-12-07). The trash is emptied
 * when the run ends (the time is noted, and the next run waits until SETTLE_S have passed), or
 * when the disk runs short, then the bench waits SETTLE_S before it measures again.
 */
const SETTLE_S = 400;
export class Trash {
  private count = 0;

  constructor(private readonly dir: string) {
    if (existsSync(dir) && readdirSync(dir).length > 0) this.empty(true);
    else this.settle(this.lastEmptied());
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
    spawnSync("sync");
    writeFileSync(this.stampFile(), String(Date.now()));
    if (settle) this.settle(Date.now());
  }

  /** Waits until SETTLE_S seconds have passed since `since` (ms). */
  private settle(since: number | undefined): void {
    if (since === undefined) return;
    const left = Math.ceil(SETTLE_S - (Date.now() - since) / 1000);
    if (left <= 0) return;
    log(
      `the bench's trash was emptied recently; waiting ${left} s so that no freed inode slows a step (see bench/trash.ts)`,
    );
    spawnSync("sleep", [String(left)]);
  }

  /** Beside the trash: when it was last emptied (ms), so that the next run knows. */
  private stampFile(): string {
    return `${this.dir}.emptied-at`;
  }

  private lastEmptied(): number | undefined {
    try {
      const t = Number(readFileSync(this.stampFile(), "utf8"));
      return Number.isFinite(t) ? t : undefined;
    } catch {
      return undefined;
    }
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
