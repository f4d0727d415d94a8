import path from "node:path";
import { deleteSubvolumes, isSubvolumeRoot } from "./btrfs.js";
import { runCleanup } from "./hook.js";
import { isKeptName, ownerAlive, ownerOfName } from "./owner.js";
import { type FreezeRecord, listRecords, removeRecord, writeRecord } from "./registry.js";

/**
 * Removes what earlier runs left: the snapshots of every recorded freeze whose lifeboat is no
 * longer running (killed, or its machine stopped), unless kept for a guard's rollback. Only
 * lifeboat's own are touched: a btrfs snapshot only where the record says, with a name of
 * lifeboat's form, and only if it is a subvolume; a command's snapshot through the recorded
 * cleanup command. Returns what it did (or could not do), as warnings: a failure here never
 * stops the backup that swept.
 */
export async function sweepFsSnapshots(stateDir: string, cleanup?: string): Promise<string[]> {
  const out: string[] = [];
  for (const r of await listRecords(stateDir)) {
    if (r.kept || ownerAlive(r.owner)) continue;
    out.push(...(await removeSnapshots(stateDir, r, (name) => ownerOfName(name) !== undefined, cleanup)));
  }
  return out;
}

/**
 * Removes the snapshots kept for the guard whose before or after snapshot is `snapshotId` (a
 * full id): `lifeboat ack` calls it. Returns what it removed (or could not), as messages.
 */
export async function releaseKept(stateDir: string, snapshotId: string): Promise<string[]> {
  const out: string[] = [];
  for (const r of await listRecords(stateDir)) {
    if (!r.kept?.snapshotIds.includes(snapshotId)) continue;
    out.push(...(await removeSnapshots(stateDir, r, isKeptName)));
  }
  return out;
}

/** `fallback`: a cleanup command to try when the recorded one fails (the user fixed it since). */
async function removeSnapshots(
  stateDir: string,
  r: FreezeRecord,
  ours: (name: string) => boolean,
  fallback?: string,
): Promise<string[]> {
  const out: string[] = [];
  if (r.kind === "btrfs") {
    const paths = r.snapshots
      .map((s) => s.path)
      .filter((p): p is string => p !== undefined && ours(path.basename(p)) && isSubvolumeRoot(p));
    try {
      await deleteSubvolumes(paths);
    } catch (e) {
      return [`could not remove the btrfs snapshot(s) ${paths.join(", ")}: ${(e as Error).message}`];
    }
    removeRecord(stateDir, r.name);
    return paths.map(
      (p) => `removed the btrfs snapshot ${p}${r.kept ? "" : " left behind by a lifeboat that stopped"}`,
    );
  }
  const left: FreezeRecord["snapshots"] = [];
  for (const s of r.snapshots) {
    const target = { source: s.of, name: s.name, ...(s.path ? { path: s.path } : {}) };
    try {
      await runCleanup(r.cleanup ?? "false", target).catch((e: unknown) => {
        if (!fallback || fallback === r.cleanup) throw e;
        return runCleanup(fallback, target);
      });
      out.push(
        `removed snapshot ${s.name} of ${s.of} (--fs-snapshot-cleanup)${r.kept ? "" : ", left behind by a lifeboat that stopped"}`,
      );
    } catch (e) {
      left.push(s);
      out.push((e as Error).message);
    }
  }
  if (left.length === 0) removeRecord(stateDir, r.name);
  else writeRecord(stateDir, { ...r, snapshots: left });
  return out;
}
