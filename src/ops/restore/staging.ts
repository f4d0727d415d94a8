import { createHash } from "node:crypto";
import fsSync from "node:fs";
import path from "node:path";
import { type ItemError, itemError } from "../../core/errors.js";
import { fsPath, nameFromBytes } from "../../core/names.js";
import { isTempName } from "../../fsio/file-write.js";
import type { ExistingEntry } from "./types.js";

/*
 * A restore into an empty folder is staged: everything is written into a hidden folder inside
 * the target (`.lifeboat-restore-<tag>`), files directly under their final names (O_EXCL),
 * and once the tree is complete the staging folder's entries are renamed into the target (one
 * rename per entry of the restored root, usually one). A crash (kill -9, power cut) leaves only
 * that hidden folder: nothing under the target's own names is ever half-written, without a
 * temporary name and a rename per file (measured: docs/benchmarks.md, "Restore"). The next run
 * of the same restore resumes inside it (files already right are kept); other restores'
 * leftovers are removed. A stopped restore (AbortSignal, Ctrl-C) publishes what it finished:
 * every file there is whole.
 *
 * While publishing, the folder is first renamed to `.lifeboat-publish-<tag>`: a crash then
 * leaves a folder whose contents are complete, and the next run finishes moving them.
 */

const STAGING = ".lifeboat-restore-";
const PUBLISHING = ".lifeboat-publish-";
const TAG = /^[0-9a-f]{16}$/;

export const isStagingName = (n: string) =>
  (n.startsWith(STAGING) && TAG.test(n.slice(STAGING.length))) ||
  (n.startsWith(PUBLISHING) && TAG.test(n.slice(PUBLISHING.length)));

/** The staging folder's name for one restore (snapshot and path inside it). */
export function stagingName(snapshotId: string, subpath: string): string {
  return STAGING + createHash("sha256").update(`${snapshotId}\0${subpath}`).digest("hex").slice(0, 16);
}

/** Where a restore writes: into `dir` (the target, or the staging folder inside it). */
export interface Stage {
  dir: string;
  /** `dir` holds nothing: nothing needs looking up. */
  fresh: boolean;
  /** The staging folder (published by `publish`), or undefined for a restore in place. */
  staging: string | undefined;
}

/**
 * Decides where a restore of a tree into `target` writes: an empty target is staged; a target
 * that holds only this restore's staging folder (a run that was killed) resumes in it; anything
 * else is restored in place. Other staging folders are leftovers of killed restores: those
 * still being published are finished first, the others removed.
 */
export function prepareStage(target: string, name: string, errors: ItemError[]): Stage {
  let entries = listNames(target);
  for (const n of entries) {
    if (!n.startsWith(PUBLISHING) || !isStagingName(n)) continue;
    moveEntries(path.join(target, n), target, errors);
  }
  entries = listNames(target);
  for (const n of entries) {
    if (n === name || !isStagingName(n)) continue;
    fsSync.rmSync(fsPath(path.join(target, n)), { recursive: true, force: true });
  }
  entries = listNames(target).filter((n) => !isStagingName(n) || n === name);
  const staging = path.join(target, name);
  if (entries.length === 0) {
    fsSync.mkdirSync(fsPath(staging), { mode: 0o700 });
    return { dir: staging, fresh: true, staging };
  }
  if (entries.length === 1 && entries[0] === name) return { dir: staging, fresh: false, staging };
  // Something else is there: restore in place (files replaced through temporary names).
  if (entries.includes(name)) fsSync.rmSync(fsPath(staging), { recursive: true, force: true });
  return { dir: target, fresh: false, staging: undefined };
}

/** Moves a finished (or stopped) staging folder's entries into the target. */
export function publish(stage: Stage, target: string, errors: ItemError[]): void {
  if (!stage.staging) return;
  const publishing = path.join(target, PUBLISHING + path.basename(stage.staging).slice(STAGING.length));
  fsSync.renameSync(fsPath(stage.staging), fsPath(publishing));
  moveEntries(publishing, target, errors);
}

/** Renames every entry of `from` into `to`, then removes `from` (if it is then empty). An
 * entry whose name is already taken in `to` stays, with an error that says where it is. */
function moveEntries(from: string, to: string, errors: ItemError[]): void {
  let left = 0;
  for (const n of listNames(from)) {
    const dest = path.join(to, n);
    if (fsSync.lstatSync(fsPath(dest), { throwIfNoEntry: false })) {
      left++;
      errors.push({
        path: n,
        code: "UNWRITABLE",
        message: `already exists in the target; the restored copy is in ${path.basename(from)}`,
      });
      continue;
    }
    try {
      fsSync.renameSync(fsPath(path.join(from, n)), fsPath(dest));
    } catch (e) {
      left++;
      errors.push(itemError(n, e, "UNWRITABLE"));
    }
  }
  if (left === 0) fsSync.rmdirSync(fsPath(from));
}

function listNames(dir: string): string[] {
  return fsSync.readdirSync(fsPath(dir), { encoding: "buffer" }).map((b) => nameFromBytes(b));
}

/**
 * What a folder that was not empty holds, by name, from one listing; temporary files of killed
 * restores (by their names, see fsio/file-write.ts) are removed on the way, unless the snapshot
 * itself holds that name (`keep`).
 */
export function listExisting(dir: string, keep: Set<string>): Map<string, ExistingEntry> {
  const out = new Map<string, ExistingEntry>();
  for (const d of fsSync.readdirSync(fsPath(dir), { withFileTypes: true, encoding: "buffer" })) {
    const name = nameFromBytes(d.name);
    if (!keep.has(name) && isTempName(name)) {
      fsSync.rmSync(fsPath(path.join(dir, name)), { force: true, recursive: d.isDirectory() });
      continue;
    }
    out.set(name, d.isFile() ? "file" : d.isDirectory() ? "dir" : "other");
  }
  return out;
}
