import { mapLimit } from "../../core/concurrency.js";
import { CorruptionError, isLifeboatError } from "../../core/errors.js";
import { checkStorageId, names } from "../../repo/config.js";
import { parseKeyFile } from "../../repo/keys.js";
import type { RecordKind } from "../../repo/record-kind.js";
import { RECORD_KINDS } from "../../repo/record-store.js";
import type { SegmentRecord } from "../../repo/records-segment.js";
import type { WalRecord } from "../../repo/records-wal.js";
import { listStorageIds, type Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";

/**
 * The objects of a repository besides packs and trees, each read and checked against its name
 * (SHA-256 of its bytes) and its schema: key files, index files (found damaged when the index
 * was loaded), snapshots and every record. A damaged one is named with what it means for the
 * user; records that need data blobs (archived WAL, replication segments) say which.
 */
export interface ObjectProblem {
  kind: "damaged-key" | "damaged-index" | "damaged-snapshot" | "damaged-record" | "missing-record";
  object: string;
  message: string;
  /** What is lost or held back while it is damaged. */
  neededBy: string[];
}

/** What a damaged record of each family means (docs/repair.md). */
const MEANING: Record<string, string> = {
  "gc/":
    "a prune plan: the packs it named are no longer kept out of new backups, and stay until a later prune plans them again (nothing is lost)",
  "sessions/":
    "a session: prune cannot tell whether the backup it announces still runs, so it waits for it; once no backup runs, delete this object",
  "drills/": "a drill record: the proof that a snapshot restored is lost (status shows no drill)",
  "acks/": "an acknowledgement or pin: the snapshot it named counts as flagged again (retention keeps it)",
  "wal/": "an archived WAL file: point-in-time recovery cannot pass it (pg wal-fetch fails)",
  "sqlite-wal/": "a replication segment: restores of that database stop before it",
};

const READS = 16;

function detail(e: CorruptionError): string {
  return e.message.startsWith(`${e.object}: `) ? e.message.slice(e.object.length + 2) : e.message;
}

/** Key files: each must match its name and parse (its password is not known here). */
export async function checkKeys(repo: Repository): Promise<ObjectProblem[]> {
  const out: ObjectProblem[] = [];
  for (const id of await listStorageIds(repo.backend, "keys/")) {
    const what = names.key(id);
    try {
      const bytes = await repo.backend.get(what);
      checkStorageId(bytes, id, what);
      parseKeyFile(bytes, what);
    } catch (e) {
      if (isLifeboatError(e) && e.code === "NOT_FOUND") continue;
      if (!(e instanceof CorruptionError)) throw e;
      out.push({
        kind: "damaged-key",
        object: what,
        message: detail(e),
        neededBy: ["the password of this key file (the other passwords still open the repository)"],
      });
    }
  }
  return out;
}

export function damagedIndexFiles(repo: Repository): ObjectProblem[] {
  return repo.damagedIndexFiles().map((f) => ({
    kind: "damaged-index",
    object: names.index(f.id),
    message: `${f.message}; left out, so the blobs it lists look absent until \`lifeboat repair index\` rebuilds the index from the packs`,
    neededBy: [],
  }));
}

/** Every snapshot that can be read (oldest first), and the ones that cannot. */
export async function readSnapshots(
  repo: Repository,
): Promise<{ snapshots: SnapshotWithId[]; problems: ObjectProblem[] }> {
  const problems: ObjectProblem[] = [];
  const read = await mapLimit(await repo.snapshotIds(), READS, async (id) => {
    try {
      return await repo.loadSnapshot(id);
    } catch (e) {
      if (isLifeboatError(e) && e.code === "NOT_FOUND") return undefined; // forgotten meanwhile
      if (!(e instanceof CorruptionError)) throw e;
      problems.push({
        kind: "damaged-snapshot",
        object: names.snapshot(id),
        message: detail(e),
        neededBy: [
          "the snapshot itself: it cannot be listed or restored (its data may still be in other snapshots)",
        ],
      });
      return undefined;
    }
  });
  const snapshots = read.filter((s): s is SnapshotWithId => s !== undefined);
  snapshots.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
  return { snapshots, problems };
}

/** Records that need data blobs, by blob: what to call them when a blob is lost. */
export type Pins = Map<string, string[]>;

function describe(kind: RecordKind<unknown>, object: string, record: unknown): string {
  if (kind.prefix === "wal/") {
    const r = record as WalRecord;
    return `archived WAL file ${r.name} (cluster ${r.cluster})`;
  }
  if (kind.prefix === "sqlite-wal/") {
    const r = record as SegmentRecord;
    return `replication segment ${r.index} of ${r.source} (generation ${r.generation.slice(0, 8)})`;
  }
  return `${kind.title} ${object}`;
}

/** Every record of every family, read and checked; returns the damaged ones and what pins what. */
export async function checkRecords(repo: Repository): Promise<{ problems: ObjectProblem[]; pins: Pins }> {
  const problems: ObjectProblem[] = [];
  const pins: Pins = new Map();
  /** Replication segments by database and generation: their indexes have no gaps. */
  const generations = new Map<string, { source: string; generation: string; indexes: number[] }>();
  for (const kind of RECORD_KINDS) {
    await mapLimit(await repo.records.objects(kind), READS, async (object) => {
      let record: unknown;
      try {
        record = await repo.records.read(kind, object);
      } catch (e) {
        if (isLifeboatError(e) && e.code === "NOT_FOUND") return; // deleted meanwhile
        if (!(e instanceof CorruptionError)) throw e;
        problems.push({
          kind: "damaged-record",
          object,
          message: `${kind.title}: ${detail(e)}`,
          neededBy: [MEANING[kind.prefix] ?? kind.title],
        });
        return;
      }
      if (kind.prefix === "sqlite-wal/") {
        const r = record as SegmentRecord;
        const key = `${r.source}\0${r.generation}`;
        const g = generations.get(key) ?? { source: r.source, generation: r.generation, indexes: [] };
        g.indexes.push(r.index);
        generations.set(key, g);
      }
      if (!kind.pins) return;
      const name = describe(kind, object, record);
      for (const id of kind.pins(record)) {
        const l = pins.get(id);
        if (l) l.push(name);
        else pins.set(id, [name]);
      }
    });
  }
  // A segment missing between two that are there (retention removes whole generations, and
  // only from the oldest): restores of that database cannot pass it. The newest segments of a
  // generation cannot be told missing from not shipped (docs/reliability.md).
  for (const g of generations.values()) {
    const have = new Set(g.indexes);
    const max = Math.max(...g.indexes);
    for (let i = Math.min(...g.indexes) + 1; i < max; i++)
      if (!have.has(i))
        problems.push({
          kind: "missing-record",
          object: `sqlite-wal/ (segment ${i} of ${g.source}, generation ${g.generation.slice(0, 8)})`,
          message: `replication segment ${i} is missing between ${i - 1} and ${i + 1}`,
          neededBy: [`restores of ${g.source} after the time of segment ${i - 1}: they stop before it`],
        });
  }
  return { problems, pins };
}
