import { randomBytes } from "node:crypto";
import fsSync, { promises as fs } from "node:fs";
import path from "node:path";
import type { Owner } from "./owner.js";

/**
 * What lifeboat remembers of each file-system snapshot it makes, one small JSON file per freeze
 * in its state folder (`$XDG_STATE_HOME/lifeboat/fs-snapshots/`, mode 0700). The record is
 * written before the first snapshot is made and removed after the last one is gone, so a
 * lifeboat killed at any moment leaves a record naming everything it may have left behind; the
 * next start removes it (sweep.ts). Written and removed synchronously too, from an exit hook.
 */

export interface RecordedSnapshot {
  /** What it is a snapshot of: a btrfs subvolume's path, or a backed-up path (command). */
  of: string;
  /** The snapshot's name (btrfs: its folder's name; command: LIFEBOAT_FS_SNAPSHOT_NAME). */
  name: string;
  /** btrfs: where the snapshot is (or will be); command: the path the command printed. */
  path?: string;
}

export interface FreezeRecord {
  version: 1;
  /** The freeze's name (owner.ts); also the record's file name. */
  name: string;
  kind: "btrfs" | "command";
  owner: Owner;
  created: string;
  snapshots: RecordedSnapshot[];
  /** command: the cleanup command, run with the same environment as for the snapshot. */
  cleanup?: string;
  /** Kept for a guard's rollback until one of these snapshots is acknowledged. */
  kept?: { snapshotIds: string[]; since: string; sources: string[] };
}

const fileOf = (dir: string, name: string) => path.join(dir, `${name}.json`);

export function writeRecord(dir: string, r: FreezeRecord): void {
  fsSync.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${fileOf(dir, r.name)}.tmp-${randomBytes(4).toString("hex")}`;
  fsSync.writeFileSync(tmp, `${JSON.stringify(r, null, 2)}\n`, { mode: 0o600 });
  fsSync.renameSync(tmp, fileOf(dir, r.name));
}

export function removeRecord(dir: string, name: string): void {
  fsSync.rmSync(fileOf(dir, name), { force: true });
}

function isRecord(x: unknown): x is FreezeRecord {
  const r = x as FreezeRecord;
  return (
    typeof r === "object" &&
    r !== null &&
    r.version === 1 &&
    typeof r.name === "string" &&
    (r.kind === "btrfs" || r.kind === "command") &&
    typeof r.owner?.pid === "number" &&
    typeof r.owner?.start === "string" &&
    Array.isArray(r.snapshots)
  );
}

/** Every record in `dir` (none when it does not exist); files that are not records are left alone. */
export async function listRecords(dir: string): Promise<FreezeRecord[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
  const out: FreezeRecord[] = [];
  for (const n of names.filter((x) => x.endsWith(".json")).sort()) {
    try {
      const r: unknown = JSON.parse(await fs.readFile(path.join(dir, n), "utf8"));
      if (isRecord(r) && `${r.name}.json` === n) out.push(r);
    } catch {
      // being written (a temporary name) or removed meanwhile
    }
  }
  return out;
}
