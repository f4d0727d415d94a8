import type { z } from "zod";
import type { ObjectKindValue } from "./sealed-object.js";

/**
 * One family of small sealed JSON records (prune plans, sessions, drills, acks, archived WAL,
 * SQLite replication segments, ...). Each family says where it lives, how a record is checked
 * when read, and which data blobs its records keep alive, so that prune asks the record store
 * what is pinned instead of knowing every family.
 */
export interface RecordKind<T> {
  /** What a record is called in messages: "prune plan", "drill record". */
  readonly title: string;
  /** Folder in storage, with its slash: `gc/`. */
  readonly prefix: string;
  /** Sealed-object kind (docs/format.md): a record of one family cannot pass for another's. */
  readonly objectKind: ObjectKindValue;
  /** Checks a record read from storage; a record that does not match is damage. */
  readonly schema: z.ZodType<T>;
  /**
   * Records found by a label without listing the whole family live at
   * `<prefix><K>/<id>`, where K = hex HMAC-SHA-256(id key, `lifeboat <labelTag> <label>`): the
   * storage never learns the label, and one listing finds a label's records.
   */
  readonly labelTag?: string;
  /** The label a record is stored under, from its content (families with a labelTag): a copy of
   * the record in another repository is stored under the same label, keyed there. */
  labelOf?(record: T): string;
  /** Data blobs (hex ids) a record needs: prune never deletes them while the record exists. */
  pins?(record: T): Iterable<string>;
  /**
   * How a record is turned into the sealed plaintext and back, for families that carry binary
   * data (default: JSON). `decode` returns what the schema then checks; it throws on bad input.
   */
  readonly codec?: { encode(record: T): Buffer; decode(plain: Buffer): unknown };
}

export function defineRecordKind<T>(kind: RecordKind<T>): RecordKind<T> {
  return kind;
}
