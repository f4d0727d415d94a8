import { LifeboatError } from "../core/errors.js";

/**
 * Format features: what a repository uses beyond format version 1, recorded in its config so
 * that a lifeboat that does not know a feature refuses what it cannot do safely.
 *
 * - A **read** feature changes what readers must understand (a tree field, a record kind): a
 *   version that does not know it refuses to open the repository at all, rather than show or
 *   restore something wrong (mangled names, files without their attributes).
 * - A **write** feature changes what writers must do (lock every object, a new record layout):
 *   a version that does not know it may read, but refuses to write anything.
 *
 * The config lists the features in use under `features.read` and `features.write`, so a later
 * version judges features it has never heard of by where they are listed. A config with any
 * feature says `version: 2`; lifeboat 0.1 (which knows only version 1) refuses such a config
 * entirely. Features are only ever added (docs/format.md, "Features").
 */
export const FEATURES = {
  /** config.retention: every writer locks what it writes (an unaware one would write unlocked). */
  retention: {
    gates: "write",
    what: "every object but sessions and prune plans is written under the Object Lock retention in config.retention",
  },
  "byte-names": {
    gates: "read",
    what: "names and symlink targets that are not UTF-8, kept as bytes (nameBytes, targetBytes)",
  },
  xattrs: { gates: "read", what: "extended attributes of files, folders and links (xattrs)" },
  "special-files": { gates: "read", what: "FIFOs and device nodes (types fifo, chardev, blockdev)" },
  /** Snapshots of a fleet's accounts (`account`, `fleet` fields) and the per-account catalogue
   * (`accounts/`): an older writer would group and forget them by host and paths alone and
   * leave the catalogue stale. */
  "fleet-accounts": {
    gates: "write",
    what: "fleet account snapshots and the per-account catalogue (docs/fleet.md)",
  },
  /** Key mode 1 packs and objects, index files and plans sealed with the index key, config.wo. */
  "write-only": {
    gates: "read",
    what: "write-only keys: packs and documents sealed to the owner's public key, index files and prune plans sealed with the index key",
  },
  /**
   * SQLite replication segments in levels (records-segment-levels.ts): a lifeboat that does not
   * know them would find no segments for the generations that use them and restore their bare
   * snapshots as "the latest" state, silently losing up to a generation of transactions; so it
   * must not read such a repository at all.
   */
  "sqlite-segment-levels": {
    gates: "read",
    what: "SQLite replication segments compacted in levels, found per generation (sqlite-seg/, sqlite-segref/, sqlite-gen/)",
  },
} as const satisfies Record<string, { gates: "read" | "write"; what: string }>;

/** What a new repository starts with: everything a backup may need, so that no config is
 * replaced later (storage that refuses overwrites could not add them). */
export const NEW_REPOSITORY_FEATURES: FeatureSet = {
  read: ["byte-names", "special-files", "xattrs"],
  write: [],
};

export type FeatureName = keyof typeof FEATURES;

export interface FeatureSet {
  read: string[];
  write: string[];
}

/** Why this version cannot read (or write) a repository with these features; undefined when it can. */
export function unknownFeatures(set: FeatureSet | undefined): { read: string[]; write: string[] } {
  const known = new Set(Object.keys(FEATURES));
  return {
    read: (set?.read ?? []).filter((f) => !known.has(f)),
    write: (set?.write ?? []).filter((f) => !known.has(f)),
  };
}

export function hasFeature(set: FeatureSet | undefined, name: FeatureName): boolean {
  return set !== undefined && (set.read.includes(name) || set.write.includes(name));
}

/** The set with `name` added where its gate puts it (sorted, each once). */
export function withFeature(set: FeatureSet | undefined, name: FeatureName): FeatureSet {
  const gate = (FEATURES as Record<string, { gates: "read" | "write" }>)[name]!.gates;
  const read = new Set(set?.read ?? []);
  const write = new Set(set?.write ?? []);
  (gate === "read" ? read : write).add(name);
  return { read: [...read].sort(), write: [...write].sort() };
}

export function newerFormat(location: string, features: string[], what: "read" | "write"): LifeboatError {
  return new LifeboatError(
    "NEWER_FORMAT",
    `the repository at ${location} uses ${features.length === 1 ? "a feature" : "features"} this version of lifeboat does not know (${features.join(", ")}), so it cannot ${what} it safely`,
    "upgrade lifeboat (nothing was changed)",
  );
}
