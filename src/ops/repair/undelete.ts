import type { Backend, ObjectVersion, VersionedStorage } from "../../backend/backend.js";
import { LifeboatError } from "../../core/errors.js";

/** An object a delete marker hides: its newest real version, and the markers above it. */
export interface HiddenObject {
  name: string;
  size: number;
  versionId: string;
  /** When the hidden version was written, and when the (first) marker hid it (ISO). */
  written: string;
  deletedAt: string;
  /** Version ids of the markers removed (or to remove) to bring it back. */
  markers: string[];
}

export interface UndeleteOptions {
  /** Only markers written at or after this time (the moment of the attack); default all. */
  since?: Date;
  dryRun?: boolean;
  onObject?: (o: HiddenObject) => void;
}

export interface UndeleteResult {
  /** Objects brought back (or, in a dry run, that would be). */
  hidden: HiddenObject[];
  /** Delete markers with no version behind them (nothing to bring back), removed too. */
  emptyMarkers: { name: string; versionId: string; deletedAt: string }[];
  /** Bytes of the objects brought back. */
  bytes: number;
}

/** The storage's versions, or a one-line refusal naming what is needed. */
export function versionsOf(backend: Backend): VersionedStorage {
  if (!backend.versions)
    throw new LifeboatError(
      "USAGE",
      `${backend.location} keeps no object versions, so there is nothing a delete could have left behind`,
      "undelete works on S3 buckets with versioning (every Object Lock bucket has it)",
    );
  return backend.versions;
}

/**
 * Brings back objects someone deleted on storage that keeps versions (an S3 bucket with
 * versioning, as Object Lock requires): a plain delete there only adds a *delete marker* that
 * hides the object, whose bytes stay. For every name whose newest version is a marker (written
 * at or after `since`), the markers above its newest real version are removed, which makes
 * that version current again; markers with nothing behind them are removed as well. Lifeboat
 * itself never leaves markers (it deletes versions), so every marker is someone else's: an
 * attacker with the storage credentials, a lifecycle rule with an Expiration, or an older
 * lifeboat (whose prune deleted without naming versions). Works without the repository's password (the config may be hidden too).
 */
export async function undelete(backend: Backend, options: UndeleteOptions = {}): Promise<UndeleteResult> {
  const versions = versionsOf(backend);
  const state = await versions.state();
  if (!state.versioning)
    throw new LifeboatError(
      "USAGE",
      `the bucket of ${backend.location} does not keep versions: a delete there removed the object for good`,
      "turn on bucket versioning (Object Lock does) so that a later delete can be undone; restore from a copy (`lifeboat copy`) meanwhile",
    );
  const since = options.since?.toISOString() ?? "";
  const result: UndeleteResult = { hidden: [], emptyMarkers: [], bytes: 0 };
  const handle = async (name: string, all: ObjectVersion[]) => {
    const newest = all[0];
    if (!newest?.deleteMarker || newest.modified < since) return;
    const real = all.find((v) => !v.deleteMarker);
    const markers = all.filter(
      (v) => v.deleteMarker && (!real || v.modified >= real.modified) && v.modified >= since,
    );
    if (!real) {
      for (const m of markers) {
        if (!options.dryRun) await versions.deleteVersion(name, m.versionId);
        result.emptyMarkers.push({ name, versionId: m.versionId, deletedAt: m.modified });
      }
      return;
    }
    // Markers older than `since` above the version would keep hiding it: then it stays hidden.
    if (all.some((v) => v.deleteMarker && v.modified >= real.modified && v.modified < since)) return;
    const o: HiddenObject = {
      name,
      size: real.size,
      versionId: real.versionId,
      written: real.modified,
      deletedAt: markers.map((m) => m.modified).sort()[0] ?? newest.modified,
      markers: markers.map((m) => m.versionId),
    };
    if (!options.dryRun) for (const m of markers) await versions.deleteVersion(name, m.versionId);
    result.hidden.push(o);
    result.bytes += o.size;
    options.onObject?.(o);
  };
  let name: string | undefined;
  let group: ObjectVersion[] = [];
  for await (const v of versions.list("")) {
    if (v.name !== name) {
      if (name !== undefined) await handle(name, group);
      name = v.name;
      group = [];
    }
    group.push(v);
  }
  if (name !== undefined) await handle(name, group);
  return result;
}
