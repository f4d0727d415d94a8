import { mapLimit } from "../../core/concurrency.js";
import { CorruptionError, isLifeboatError } from "../../core/errors.js";
import { checkStorageId, names } from "../../repo/config.js";
import { parseKeyFile } from "../../repo/keys.js";
import type { RecordKind } from "../../repo/record-kind.js";
import { RECORD_KINDS } from "../../repo/record-store.js";
import type { SegmentRecord } from "../../repo/records-segment.js";
import {
  type CatalogRecord,
  catalogKind,
  type SegmentHeader,
  type SegmentRefRecord,
  segmentPagesKind,
  segmentRefKind,
} from "../../repo/records-segment-levels.js";
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
  "sqlite-seg/": "a replication segment: restores of that database that apply it fail (exit 14)",
  "sqlite-segref/": "a replication segment: restores of that database that apply it fail (exit 14)",
  "sqlite-gen/": "a replication catalog: restores of that database from its generation fail (exit 14)",
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
  if (kind.prefix === segmentRefKind.prefix) {
    const r = record as SegmentRefRecord;
    return `replication segment ${r.first}..${r.last} (level ${r.level}) of ${r.source} (generation ${r.generation.slice(0, 8)})`;
  }
  return `${kind.title} ${object}`;
}

/** Every record of every family, read and checked; returns the damaged ones and what pins what. */
export async function checkRecords(
  repo: Repository,
  /** Generations in levels that have a snapshot (their catalog was written before it). */
  snapshotted: ReadonlySet<string> = new Set(),
): Promise<{ problems: ObjectProblem[]; pins: Pins }> {
  const problems: ObjectProblem[] = [];
  const pins: Pins = new Map();
  /** Replication segments by database and generation: their indexes have no gaps. */
  const generations = new Map<string, { source: string; generation: string; indexes: number[] }>();
  /** Generations in levels, by the label folder their three families share. */
  const levels = new Map<string, LevelledFolder>();
  const folderOf = (object: string) => {
    const k = object.split("/")[1]!;
    let f = levels.get(k);
    if (!f) {
      f = { segments: new Map(), damagedSegments: new Set(), catalogs: [], catalogObjects: 0 };
      levels.set(k, f);
    }
    return f;
  };
  for (const kind of RECORD_KINDS) {
    await mapLimit(await repo.records.objects(kind), READS, async (object) => {
      let record: unknown;
      const segment = kind === segmentPagesKind || kind === segmentRefKind;
      if (kind === catalogKind) folderOf(object).catalogObjects++;
      try {
        record = await repo.records.read(kind, object);
      } catch (e) {
        if (isLifeboatError(e) && e.code === "NOT_FOUND") return; // deleted meanwhile
        if (!(e instanceof CorruptionError)) throw e;
        if (segment) folderOf(object).damagedSegments.add(object);
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
      if (segment) folderOf(object).segments.set(object, record as SegmentHeader);
      if (kind === catalogKind) folderOf(object).catalogs.push(record as CatalogRecord);
      if (!kind.pins) return;
      const name = describe(kind, object, record);
      for (const id of kind.pins(record)) {
        const l = pins.get(id);
        if (l) l.push(name);
        else pins.set(id, [name]);
      }
    });
  }
  // A segment missing before one that is there: a generation's segments start at 0 (retention
  // removes whole generations, the oldest first, and a generation's segments newest first), and
  // restores of that database cannot pass the gap. The newest segments of a generation cannot be
  // told missing from not shipped (docs/reliability.md).
  for (const g of generations.values()) {
    const have = new Set(g.indexes);
    const max = Math.max(...g.indexes);
    for (let i = 0; i < max; i++)
      if (!have.has(i))
        problems.push({
          kind: "missing-record",
          object: `sqlite-wal/ (segment ${i} of ${g.source}, generation ${g.generation.slice(0, 8)})`,
          message:
            i === 0
              ? "replication segment 0, the first of its generation, is missing"
              : `replication segment ${i} is missing between ${i - 1} and ${i + 1}`,
          neededBy: [
            i === 0
              ? `restores of ${g.source} from this generation: they cannot pass it`
              : `restores of ${g.source} after the time of segment ${i - 1}: they stop before it`,
          ],
        });
  }
  for (const [k, f] of levels) problems.push(...(await levelProblemsSettled(repo, k, f, snapshotted)));
  return { problems, pins };
}

interface LevelledFolder {
  /** Segments read, by object name. */
  segments: Map<string, SegmentHeader>;
  /** Segments stored but unreadable (named already). */
  damagedSegments: Set<string>;
  catalogs: CatalogRecord[];
  /** Catalog objects stored (readable or not). */
  catalogObjects: number;
}

const LEVEL_PASSES = 3;

/**
 * A live replicate (or copy) compacts while check reads: a merged segment written after the
 * listing, and the segments it replaced deleted before they were read, look like a gap; a catalog
 * read after the listing lists segments the listing missed. So a generation that looks damaged
 * is read again (one listing, then its catalogs, then its segments), and its damage reported
 * only if every pass finds some.
 */
async function levelProblemsSettled(
  repo: Repository,
  folder: string,
  first: LevelledFolder,
  snapshotted: ReadonlySet<string>,
): Promise<ObjectProblem[]> {
  let f = first;
  for (let pass = 1; ; pass++) {
    const generation = ([...f.segments.values()][0] ?? f.catalogs[0])?.generation;
    const found = levelProblems(folder, f, generation !== undefined && snapshotted.has(generation));
    if (found.length === 0 || pass === LEVEL_PASSES || generation === undefined) return found;
    f = await readLevelled(repo, generation);
  }
}

async function readLevelled(repo: Repository, generation: string): Promise<LevelledFolder> {
  const f: LevelledFolder = {
    segments: new Map(),
    damagedSegments: new Set(),
    catalogs: [],
    catalogObjects: 0,
  };
  const [pages, refs] = await Promise.all([
    repo.records.objects(segmentPagesKind, generation),
    repo.records.objects(segmentRefKind, generation),
  ]);
  const catalogs = await repo.records.objects(catalogKind, generation);
  f.catalogObjects = catalogs.length;
  const read = async <T>(kind: RecordKind<T>, object: string, ok: (r: T) => void) => {
    try {
      ok(await repo.records.read(kind, object));
    } catch (e) {
      if (isLifeboatError(e) && e.code === "NOT_FOUND") return;
      if (!(e instanceof CorruptionError)) throw e;
      if (!object.startsWith(catalogKind.prefix)) f.damagedSegments.add(object);
    }
  };
  await mapLimit(catalogs, READS, (o) => read(catalogKind, o, (r) => f.catalogs.push(r)));
  await mapLimit(pages, READS, (o) => read(segmentPagesKind, o, (r) => f.segments.set(o, r)));
  await mapLimit(refs, READS, (o) => read(segmentRefKind, o, (r) => f.segments.set(o, r)));
  return f;
}

/**
 * A generation in levels (docs/replication.md "Levels") has a catalog from before its snapshot
 * (replicate and copy write it first) until after its last segment is deleted; every segment its
 * newest catalog lists is stored (or listed as replaced); and its segments hold every interval
 * from 0 to the newest without a hole (a segment is deleted only once a coarser one covers it).
 * The newest segments no catalog lists cannot be told missing from not shipped yet
 * (docs/reliability.md).
 */
function levelProblems(folder: string, f: LevelledFolder, snapshotted: boolean): ObjectProblem[] {
  const out: ObjectProblem[] = [];
  const any = [...f.segments.values()][0] ?? f.catalogs[0];
  const source = any?.source ?? "a replicated database";
  const gen = any ? `generation ${any.generation.slice(0, 8)}` : `generation folder ${folder.slice(0, 8)}`;
  const stored = f.segments.size + f.damagedSegments.size;
  if (f.catalogObjects === 0 && snapshotted)
    out.push({
      kind: "missing-record",
      object: `${catalogKind.prefix}${folder}/`,
      message: `the catalog of ${gen} of ${source} is missing (${stored} segment(s) of it are stored)`,
      neededBy: [
        `restores of ${source} from ${gen} read every segment of it; whether its newest segments are all there cannot be told`,
      ],
    });
  const newest = f.catalogs.reduce<CatalogRecord | undefined>(
    (a, c) => (a === undefined || c.seq > a.seq ? c : a),
    undefined,
  );
  const have = (o: string) => f.segments.has(o) || f.damagedSegments.has(o);
  const replaced = new Set(f.catalogs.flatMap((c) => c.replaced));
  const ranges: [number, number][] = [...f.segments.values()].map((h) => [h.first, h.last]);
  for (const e of newest?.segments ?? []) {
    if (have(e.object)) {
      if (f.damagedSegments.has(e.object)) ranges.push([e.first, e.last]); // named already
    } else if (!replaced.has(e.object))
      out.push({
        kind: "missing-record",
        object: e.object,
        message: `replication segment ${e.first}..${e.last} (level ${e.level}) of ${gen} of ${source} is missing (its catalog lists it)`,
        neededBy: [`restores of ${source} from ${gen}: they fail (exit 14)`],
      });
  }
  // Intervals 0..newest that no stored segment holds.
  const last = Math.max(-1, ...ranges.map((r) => r[1]));
  ranges.sort((a, b) => a[0] - b[0]);
  let reached = -1;
  for (const [first, end] of ranges) {
    if (first > reached + 1)
      out.push({
        kind: "missing-record",
        object: `${segmentPagesKind.prefix}${folder}/ (intervals ${reached + 1}..${first - 1} of ${source}, ${gen})`,
        message: `replication intervals ${reached + 1}..${first - 1} of ${gen} are in no stored segment (${gen} has segments up to interval ${last})`,
        neededBy: [
          `restores of ${source} from ${gen} at a time after interval ${reached}: they stop before the gap or fail`,
        ],
      });
    reached = Math.max(reached, end);
  }
  return out;
}
