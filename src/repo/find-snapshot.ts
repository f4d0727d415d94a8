import { LifeboatError } from "../core/errors.js";
import type { Repository } from "./repository.js";
import type { SnapshotWithId } from "./snapshot.js";

export interface SnapshotFilter {
  host?: string | undefined;
  paths?: string[] | undefined;
  tags?: string[] | undefined;
}

export function matchesFilter(s: SnapshotWithId, f: SnapshotFilter): boolean {
  if (f.host && s.hostname !== f.host) return false;
  if (f.paths && f.paths.length > 0) {
    const a = [...s.paths].sort().join("\0");
    const b = [...f.paths].sort().join("\0");
    if (a !== b) return false;
  }
  if (f.tags && f.tags.length > 0 && !f.tags.every((t) => s.tags.includes(t))) return false;
  return true;
}

/**
 * Resolves what a user typed: `latest` (newest snapshot matching the filter) or a unique prefix
 * of a snapshot id. Zero or several matches are errors that list what to type instead.
 */
export async function findSnapshot(
  repo: Repository,
  ref: string,
  filter: SnapshotFilter = {},
): Promise<SnapshotWithId> {
  if (ref === "latest") {
    const all = (await repo.listSnapshots()).filter((s) => matchesFilter(s, filter));
    const last = all.at(-1);
    if (!last) {
      throw new LifeboatError(
        "SNAPSHOT_NOT_FOUND",
        "the repository has no snapshot yet" +
          (Object.values(filter).some(Boolean) ? " matching --host/--path/--tag" : ""),
        "run `lifeboat snapshots` to see what is there",
      );
    }
    return last;
  }
  if (!/^[0-9a-f]{1,64}$/.test(ref)) {
    throw new LifeboatError(
      "SNAPSHOT_NOT_FOUND",
      `${JSON.stringify(ref)} is not a snapshot id`,
      "give `latest` or an id (or a unique prefix of one) from `lifeboat snapshots`",
    );
  }
  const ids = (await repo.snapshotIds()).filter((id) => id.startsWith(ref));
  if (ids.length === 0) {
    throw new LifeboatError(
      "SNAPSHOT_NOT_FOUND",
      `no snapshot id starts with ${ref}`,
      "run `lifeboat snapshots` to list them",
    );
  }
  if (ids.length > 1) {
    throw new LifeboatError(
      "SNAPSHOT_AMBIGUOUS",
      `${ref} matches ${ids.length} snapshots (${ids
        .slice(0, 4)
        .map((i) => i.slice(0, 12))
        .join(", ")}${ids.length > 4 ? ", ..." : ""})`,
      "type more characters of the id",
    );
  }
  return repo.loadSnapshot(ids[0]!);
}
