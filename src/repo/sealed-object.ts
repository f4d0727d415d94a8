import { randomBytes } from "node:crypto";
import { Compression, decompressBlob, maybeCompress } from "../core/compress.js";
import { deriveKey, open, seal } from "../core/crypto.js";
import { CorruptionError } from "../core/errors.js";

/**
 * Small encrypted documents (config, index files, snapshots) share one envelope:
 *   "LBO1" | kind u8 | compression u8 | 0x0000 | salt[16] | nonce[12] | ciphertext | tag[16]
 * The key is HKDF-SHA-256(metadata key, salt, "lifeboat object v1"); the 24-byte header up to
 * and including the salt is the AEAD's associated data, so kind and compression cannot be swapped.
 */
export const ObjectKind = {
  config: 1,
  index: 2,
  snapshot: 3,
  drill: 4,
  gcPlan: 5,
  session: 6,
  ack: 7,
  wal: 8,
  sqliteWal: 9,
  accountEntry: 10,
} as const;
export type ObjectKindValue = (typeof ObjectKind)[keyof typeof ObjectKind];

const MAGIC = Buffer.from("LBO1", "latin1");
const HEADER = 24;

export function sealObject(metaKey: Buffer, kind: ObjectKindValue, plain: Buffer, compress = true): Buffer {
  const { data, compression } = compress
    ? maybeCompress(plain)
    : { data: plain, compression: Compression.none };
  const header = Buffer.alloc(HEADER);
  MAGIC.copy(header, 0);
  header[4] = kind;
  header[5] = compression;
  const salt = randomBytes(16);
  salt.copy(header, 8);
  const key = deriveKey(metaKey, salt, "lifeboat object v1");
  return Buffer.concat([header, seal(key, data, header)]);
}

export function openObject(metaKey: Buffer, kind: ObjectKindValue, stored: Buffer, what: string): Buffer {
  if (stored.length < HEADER || !stored.subarray(0, 4).equals(MAGIC)) {
    throw new CorruptionError(what, "not a lifeboat object (bad magic)");
  }
  if (stored[4] !== kind) throw new CorruptionError(what, `object kind ${stored[4]}, expected ${kind}`);
  const header = stored.subarray(0, HEADER);
  const key = deriveKey(metaKey, header.subarray(8, 24), "lifeboat object v1");
  const data = open(key, stored.subarray(HEADER), header, what);
  const compression = stored[5]!;
  if (compression === Compression.none) return data;
  try {
    // Bounded: nothing records an object's size, so decompressBlob stops at MAX_UNSIZED.
    return decompressBlob(data, compression, -1);
  } catch (e) {
    throw new CorruptionError(what, (e as Error).message);
  }
}
