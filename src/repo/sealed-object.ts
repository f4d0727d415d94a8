import { randomBytes } from "node:crypto";
import { Compression, decompressBlob, maybeCompress } from "../core/compress.js";
import { deriveKey, open, seal } from "../core/crypto.js";
import { CorruptionError } from "../core/errors.js";
import { ed25519Verify, sealedKey, type X25519Secret, x25519Ephemeral } from "./asymmetric.js";

/**
 * Small encrypted documents (config, index files, snapshots, records) share one envelope:
 *   "LBO1" | kind u8 | compression u8 | key mode u8 | 0 u8 | salt[16] | ... | nonce[12] | ciphertext | tag[16]
 * Key mode 0 (format version 1): the key is HKDF-SHA-256(metadata key, salt, "lifeboat object
 * v1"); the 24-byte header is the AEAD's associated data, so kind and compression cannot be swapped.
 * Key modes 1 and 2 (write-only keys, docs/format.md) end in the writer's Ed25519 public key and
 * signature over everything before it:
 *   mode 1, sealed to the owner: header | ephemeral X25519 public key[32] | nonce | ct | tag | signer[32] | sig[64]
 *   mode 2, with the index key:  header | nonce | ct | tag | signer[32] | sig[64]
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
  /** A replication segment in levels with its pages inline (docs/replication.md, "Levels"). */
  sqliteSegment: 11,
  /** A replication segment in levels whose pages are data blobs. */
  sqliteSegmentRef: 12,
  /** The catalog of a replication generation's segments. */
  sqliteCatalog: 13,
  /** The config as write-only keys read it (sealed with the index key, signed by the owner). */
  writeOnlyConfig: 14,
} as const;
export type ObjectKindValue = (typeof ObjectKind)[keyof typeof ObjectKind];

/** How an object's key is found (byte 6 of the envelope). */
export const SealMode = {
  /** HKDF of the metadata key: full keys only, read and write (format version 1). */
  derived: 0,
  /** Sealed to the owner's X25519 public key: any key writes, full keys read. */
  toOwner: 1,
  /** HKDF of the index key: full and write-only keys read and write. */
  indexKey: 2,
} as const;

/** Who signs what a key seals in modes 1 and 2. */
export interface ObjectSigner {
  readonly publicKey: Buffer;
  sign(message: Buffer): Buffer;
}

const MAGIC = Buffer.from("LBO1", "latin1");
const HEADER = 24;
const EPHEMERAL = 32;
const SIGNED_TRAILER = 32 + 64;
const SIGNATURE_CONTEXT = Buffer.from("LBO1 signature\0", "latin1");
const INFO_DERIVED = "lifeboat object v1";
const INFO_OWNER = "lifeboat object x25519 v2";
const INFO_INDEX = "lifeboat object index v2";

function header(kind: ObjectKindValue, compression: number, mode: number): Buffer {
  const h = Buffer.alloc(HEADER);
  MAGIC.copy(h, 0);
  h[4] = kind;
  h[5] = compression;
  h[6] = mode;
  randomBytes(16).copy(h, 8);
  return h;
}

function compressed(plain: Buffer, compress: boolean) {
  return compress ? maybeCompress(plain) : { data: plain, compression: Compression.none };
}

export function sealObject(metaKey: Buffer, kind: ObjectKindValue, plain: Buffer, compress = true): Buffer {
  const { data, compression } = compressed(plain, compress);
  const h = header(kind, compression, SealMode.derived);
  const key = deriveKey(metaKey, h.subarray(8, 24), INFO_DERIVED);
  return Buffer.concat([h, seal(key, data, h)]);
}

function signed(body: Buffer, signer: ObjectSigner): Buffer {
  const withSigner = Buffer.concat([body, signer.publicKey]);
  return Buffer.concat([withSigner, signer.sign(Buffer.concat([SIGNATURE_CONTEXT, withSigner]))]);
}

/** Key mode 1: only a holder of the owner's X25519 private key (a full key) can open it. */
export function sealToOwner(
  owner: Buffer,
  signer: ObjectSigner,
  kind: ObjectKindValue,
  plain: Buffer,
  compress = true,
): Buffer {
  const { data, compression } = compressed(plain, compress);
  const h = header(kind, compression, SealMode.toOwner);
  const { ephemeral, shared } = x25519Ephemeral(owner);
  const key = sealedKey(shared, h.subarray(8, 24), ephemeral, owner, INFO_OWNER);
  const aad = Buffer.concat([h, ephemeral]);
  return signed(Buffer.concat([aad, seal(key, data, aad)]), signer);
}

/** Key mode 2: every holder of the index key (full and write-only keys) can open it. */
export function sealWithIndexKey(
  indexKey: Buffer,
  signer: ObjectSigner,
  kind: ObjectKindValue,
  plain: Buffer,
  compress = true,
): Buffer {
  const { data, compression } = compressed(plain, compress);
  const h = header(kind, compression, SealMode.indexKey);
  const key = deriveKey(indexKey, h.subarray(8, 24), INFO_INDEX);
  return signed(Buffer.concat([h, seal(key, data, h)]), signer);
}

/** The key mode of a stored object, after checking its magic and kind. */
export function sealModeOf(stored: Buffer, kind: ObjectKindValue, what: string): number {
  if (stored.length < HEADER || !stored.subarray(0, 4).equals(MAGIC)) {
    throw new CorruptionError(what, "not a lifeboat object (bad magic)");
  }
  if (stored[4] !== kind) throw new CorruptionError(what, `object kind ${stored[4]}, expected ${kind}`);
  const mode = stored[6]!;
  if (mode > SealMode.indexKey) throw new CorruptionError(what, `unknown key mode ${mode}`);
  return mode;
}

function decompressed(stored: Buffer, data: Buffer, what: string): Buffer {
  const compression = stored[5]!;
  if (compression === Compression.none) return data;
  try {
    // Bounded: nothing records an object's size, so decompressBlob stops at MAX_UNSIZED.
    return decompressBlob(data, compression, -1);
  } catch (e) {
    throw new CorruptionError(what, (e as Error).message);
  }
}

export function openObject(metaKey: Buffer, kind: ObjectKindValue, stored: Buffer, what: string): Buffer {
  const mode = sealModeOf(stored, kind, what);
  if (mode !== SealMode.derived) throw new CorruptionError(what, `key mode ${mode}, expected 0`);
  const h = stored.subarray(0, HEADER);
  const key = deriveKey(metaKey, h.subarray(8, 24), INFO_DERIVED);
  return decompressed(stored, open(key, stored.subarray(HEADER), h, what), what);
}

/** Checks the trailing signature of a mode 1 or 2 object; returns the signer and the body. */
function checkSignature(stored: Buffer, min: number, what: string): { signer: Buffer; body: Buffer } {
  if (stored.length < min + SIGNED_TRAILER)
    throw new CorruptionError(what, "too short to be a signed object");
  const sigAt = stored.length - 64;
  const signer = stored.subarray(sigAt - 32, sigAt);
  const message = Buffer.concat([SIGNATURE_CONTEXT, stored.subarray(0, sigAt)]);
  if (!ed25519Verify(signer, message, stored.subarray(sigAt)))
    throw new CorruptionError(what, "its signature does not verify (data was modified or forged)");
  return { signer: Buffer.from(signer), body: stored.subarray(0, sigAt - 32) };
}

/** Opens a mode 1 object with the owner's private key; returns the plaintext and its signer. */
export function openToOwner(
  owner: X25519Secret,
  kind: ObjectKindValue,
  stored: Buffer,
  what: string,
): { plain: Buffer; signer: Buffer } {
  if (sealModeOf(stored, kind, what) !== SealMode.toOwner)
    throw new CorruptionError(what, `key mode ${stored[6]}, expected 1`);
  const { signer, body } = checkSignature(stored, HEADER + EPHEMERAL, what);
  const aad = body.subarray(0, HEADER + EPHEMERAL);
  const ephemeral = aad.subarray(HEADER);
  const key = sealedKey(
    owner.agree(ephemeral, what),
    aad.subarray(8, 24),
    ephemeral,
    owner.publicKey,
    INFO_OWNER,
  );
  return { plain: decompressed(stored, open(key, body.subarray(aad.length), aad, what), what), signer };
}

/** Opens a mode 2 object with the index key; returns the plaintext and its signer. */
export function openWithIndexKey(
  indexKey: Buffer,
  kind: ObjectKindValue,
  stored: Buffer,
  what: string,
): { plain: Buffer; signer: Buffer } {
  if (sealModeOf(stored, kind, what) !== SealMode.indexKey)
    throw new CorruptionError(what, `key mode ${stored[6]}, expected 2`);
  const { signer, body } = checkSignature(stored, HEADER, what);
  const h = body.subarray(0, HEADER);
  const key = deriveKey(indexKey, h.subarray(8, 24), INFO_INDEX);
  return { plain: decompressed(stored, open(key, body.subarray(HEADER), h, what), what), signer };
}
