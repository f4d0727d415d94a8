import { LifeboatError } from "../../core/errors.js";
import { findSnapshot, matchesFilter, type SnapshotFilter } from "../../repo/find-snapshot.js";
import type { Repository } from "../../repo/repository.js";
import type { Snapshot, SnapshotWithId } from "../../repo/snapshot.js";
import { type Resolved, resolveSubpath } from "../../snapshot/subpath.js";

/**
 * The snapshots a read-only command works on: those named (ids, prefixes or `latest`, each once,
 * oldest first), or with none named every snapshot; either way only those matching `filter`.
 */
export async function selectSnapshots(
  repo: Repository,
  refs: string[],
  filter: SnapshotFilter = {},
): Promise<SnapshotWithId[]> {
  if (refs.length === 0) return (await repo.listSnapshots()).filter((s) => matchesFilter(s, filter));
  const byId = new Map<string, SnapshotWithId>();
  for (const ref of refs) {
    const s = await findSnapshot(repo, ref, filter);
    byId.set(s.id, s);
  }
  const out = [...byId.values()].filter((s) => matchesFilter(s, filter));
  if (out.length === 0) {
    throw new LifeboatError(
      "SNAPSHOT_NOT_FOUND",
      "none of the given snapshots matches --host/--tag",
      "run `lifeboat snapshots` to see hosts and tags",
    );
  }
  return out.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
}

/** Like `resolveSubpath`, but a path that is not there says which paths the snapshot holds. */
export async function resolveInSnapshot(
  repo: Repository,
  snapshot: Snapshot & { id: string },
  subpath: string,
): Promise<Resolved> {
  try {
    return await resolveSubpath(repo, snapshot, subpath);
  } catch (e) {
    if (e instanceof LifeboatError && e.code === "NOT_FOUND") {
      const short = snapshot.id.slice(0, 8);
      throw new LifeboatError(
        "NOT_FOUND",
        `${e.message.replace("the snapshot", `snapshot ${short}`)}`,
        `snapshot ${short} holds ${snapshot.paths.join(", ") || "nothing"}; list it with \`lifeboat ls ${short} PATH\``,
      );
    }
    throw e;
  }
}
