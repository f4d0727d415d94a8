import type { Backend } from "../backend/backend.js";
import { mapLimit } from "../core/concurrency.js";
import { storageId } from "../core/crypto.js";
import { CorruptionError, isLifeboatError, schemaProblem } from "../core/errors.js";
import { isStorageId } from "./config.js";
import type { KeyRing } from "./key-ring.js";
import type { RecordKind } from "./record-kind.js";
import { accountEntryKind } from "./records-account.js";
import { ackKind } from "./records-ack.js";
import { drillKind } from "./records-drill.js";
import { planKind, sessionKind } from "./records-gc.js";
import { segmentKind } from "./records-segment.js";
import { catalogKind, segmentPagesKind, segmentRefKind } from "./records-segment-levels.js";
import { walKind } from "./records-wal.js";
import { getVerified } from "./verified-get.js";
import { putWhole } from "./whole-put.js";

/** Every record family of the format (docs/format.md); prune asks each for the blobs it pins. */
export const RECORD_KINDS: readonly RecordKind<unknown>[] = [
  planKind,
  sessionKind,
  drillKind,
  ackKind,
  walKind,
  segmentKind,
  segmentPagesKind,
  segmentRefKind,
  catalogKind,
  accountEntryKind,
] as RecordKind<unknown>[];

/** A record with where it is stored: `id` is the SHA-256 of its stored bytes. */
export interface StoredRecord<T> {
  id: string;
  /** Object name, e.g. `gc/<id>` or `wal/<K>/<id>`. */
  object: string;
  record: T;
  /** The write-only key that wrote it (its key id); absent when a full key did. */
  writer?: string;
}

export interface ListOptions {
  /** Only the records of this label (families with a labelTag). */
  label?: string;
  /** A record that cannot be read or does not match its schema: skip it (default) or fail. */
  unreadable?: "skip" | "throw";
}

/** How many records are read at once when a family is listed. */
const READS_IN_FLIGHT = 16;

/**
 * One typed store for every family of small records. Records are sealed with the metadata key,
 * named by the SHA-256 of their stored bytes, written atomically and never changed; a record is
 * replaced by writing a new one and deleting the old. A record that pins blobs is written only
 * after every blob this process queued is durable (the store flushes the writer first).
 */
export class RecordStore {
  constructor(
    private readonly backend: Backend,
    private readonly keys: KeyRing,
    /** Makes every blob this process has queued durable and indexed. */
    private readonly flushBlobs: () => Promise<void>,
    /** Throws when this version must not write to the repository (features.ts). */
    private readonly requireWritable: () => void,
  ) {}

  private folder(kind: RecordKind<unknown>, label: string | undefined): string {
    if (label === undefined) return kind.prefix;
    if (!kind.labelTag) throw new Error(`internal error: ${kind.title} records have no labels`);
    return `${kind.prefix}${this.keys.labelKey(`lifeboat ${kind.labelTag} ${label}`)}/`;
  }

  async write<T>(kind: RecordKind<T>, record: T, options: { label?: string } = {}): Promise<StoredRecord<T>> {
    const label = options.label ?? kind.labelOf?.(record);
    if (kind.labelTag && label === undefined)
      throw new Error(`internal error: ${kind.title} records need a label`);
    this.requireWritable();
    // Write order: a record that pins blobs is stored only after they are durable and indexed.
    if (kind.pins) await this.flushBlobs();
    const plain = kind.codec ? kind.codec.encode(record) : Buffer.from(JSON.stringify(record));
    const stored = this.keys.seal(kind.objectKind, plain);
    const id = storageId(stored);
    const object = `${this.folder(kind as RecordKind<unknown>, label)}${id}`;
    await putWhole(this.backend, object, stored);
    return { id, object, record };
  }

  /** Reads one record by its object name (as listed) and checks it against its family's schema. */
  async read<T>(kind: RecordKind<T>, object: string): Promise<T> {
    return (await this.readAttributed(kind, object)).record;
  }

  private async readAttributed<T>(
    kind: RecordKind<T>,
    object: string,
  ): Promise<{ record: T; writer?: string }> {
    const stored = await getVerified(this.backend, object, object.split("/").at(-1)!);
    const { plain, writer } = await this.keys.openLatest(kind.objectKind, stored, object);
    let json: unknown;
    try {
      json = kind.codec ? kind.codec.decode(plain) : JSON.parse(plain.toString("utf8"));
    } catch {
      throw new CorruptionError(
        object,
        `${kind.title} ${kind.codec ? "cannot be decoded" : "is not valid JSON"}`,
      );
    }
    const r = kind.schema.safeParse(json);
    if (!r.success) throw new CorruptionError(object, `malformed ${kind.title}: ${schemaProblem(r.error)}`);
    return writer === undefined ? { record: r.data } : { record: r.data, writer };
  }

  /** Object names of a family's records (of one label, or all), ignoring stray names. */
  async objects(kind: RecordKind<unknown>, label?: string): Promise<string[]> {
    const prefix = this.folder(kind, label);
    const out: string[] = [];
    for await (const o of this.backend.list(prefix)) {
      const rest = o.name.slice(prefix.length).split("/");
      const ok =
        kind.labelTag && label === undefined
          ? rest.length === 2 && isStorageId(rest[0]!) && isStorageId(rest[1]!)
          : rest.length === 1 && isStorageId(rest[0]!);
      if (ok) out.push(o.name);
    }
    return out;
  }

  /**
   * Every record of a family (or of one label), in no particular order. A record deleted
   * between the listing and its read is left out; other unreadable ones follow `unreadable`,
   * except that a write-only key never skips what it cannot open for want of a full key (a
   * prune plan it did not see could make it deduplicate against data about to be deleted).
   */
  async list<T>(kind: RecordKind<T>, options: ListOptions = {}): Promise<StoredRecord<T>[]> {
    const objects = await this.objects(kind as RecordKind<unknown>, options.label);
    const read = await mapLimit(
      objects,
      READS_IN_FLIGHT,
      async (object): Promise<StoredRecord<T> | undefined> => {
        try {
          const { record, writer } = await this.readAttributed(kind, object);
          const id = object.split("/").at(-1)!;
          return writer === undefined ? { id, object, record } : { id, object, record, writer };
        } catch (e) {
          if (isLifeboatError(e) && e.code === "NOT_FOUND") return undefined;
          if (isLifeboatError(e) && e.code === "NEEDS_FULL_KEY") throw e;
          if ((options.unreadable ?? "skip") === "throw") throw e;
          return undefined;
        }
      },
    );
    return read.filter((r): r is StoredRecord<T> => r !== undefined);
  }

  async delete(object: string): Promise<void> {
    await this.backend.delete(object);
  }

  /**
   * The data blobs (hex ids) that records pin: archived WAL, replication segments, ... A record
   * that cannot be read makes this fail: deleting data on incomplete knowledge could destroy
   * what it references.
   */
  async pinnedBlobs(): Promise<Set<string>> {
    const out = new Set<string>();
    for (const kind of RECORD_KINDS) {
      if (!kind.pins) continue;
      for (const r of await this.list(kind, { unreadable: "throw" }))
        for (const id of kind.pins(r.record)) out.add(id);
    }
    return out;
  }
}
