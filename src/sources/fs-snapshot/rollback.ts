import path from "node:path";
import { displayName } from "../../core/names.js";
import { SNAPSHOT_DIR } from "./freeze.js";
import { isBelow } from "./mounts.js";

/** Quotes a word for a POSIX shell when it needs it (the printed command is meant to be pasted). */
export const shellWord = (w: string): string =>
  /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;

export interface RollbackInput {
  /** The backed-up paths. */
  sources: string[];
  /** Where each recorded path is read in the kept snapshots (Frozen.keep). */
  kept: Map<string, string>;
  /** Which of the backed-up paths are folders. */
  isDir: (p: string) => boolean;
  /** Nested subvolumes frozen with their own snapshots. */
  nested: string[];
  /** Roots of the subvolumes snapshotted (their snapshot folder is never touched). */
  subvolumeRoots: string[];
  /** Other file systems mounted below the paths. */
  mounts: string[];
}

/**
 * The shell command that puts the guarded paths back as the kept btrfs snapshot holds them, by
 * reflinks: `cp --reflink=always` shares the snapshot's extents, so no file data is copied and
 * the time goes into metadata (docs/benchmarks.md). For each path (and each nested subvolume
 * below it, after it): remove what is there now, without crossing into another subvolume or
 * file system, then copy the snapshot's entries back and the folder's own owner, mode and mtime.
 * Undefined, with the reason, when it cannot be done so (another file system mounted below a
 * path: it was never frozen).
 */
export function btrfsRollback(r: RollbackInput): { command?: string; reason?: string } {
  const blocked = r.sources.filter((p) => r.mounts.some((m) => isBelow(m, p)));
  if (blocked.length > 0)
    return {
      reason: `another file system is mounted below ${blocked.map(displayName).join(", ")}: it was not in the snapshot`,
    };
  const lines: string[] = [];
  const targets = [...r.sources, ...r.nested.filter((c) => r.sources.some((p) => isBelow(c, p)))].sort();
  for (const q of targets) {
    const from = r.kept.get(q);
    if (!from) continue;
    const q_ = shellWord(q);
    const from_ = shellWord(from);
    if (!r.isDir(q)) {
      lines.push(`cp -a --reflink=always -- ${from_} ${q_}`);
      continue;
    }
    // Names at this level that another line handles, or that hold lifeboat's snapshots.
    const keepOut = [
      ...(r.subvolumeRoots.includes(q) ? [SNAPSHOT_DIR] : []),
      ...r.nested.filter((c) => path.dirname(c) === q).map((c) => path.basename(c)),
    ];
    const not = keepOut.map((n) => `! -name ${shellWord(n)} `).join("");
    lines.push(
      `( p=${q_} s=${from_}; ` +
        `find "$p" -mindepth 1 -maxdepth 1 ${not}-exec rm -rf --one-file-system -- {} + ; ` +
        `find "$s" -mindepth 1 -maxdepth 1 ${not}-exec cp -a --reflink=always -t "$p" -- {} + && ` +
        `chown --reference="$s" "$p" && chmod --reference="$s" "$p" && touch -r "$s" "$p" )`,
    );
  }
  return lines.length > 0 ? { command: lines.join(" && ") } : { reason: "nothing to roll back" };
}
