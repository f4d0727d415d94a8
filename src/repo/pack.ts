import { createHash, randomBytes } from "node:crypto";
import { release } from "../core/buffers.js";
import { Compression, decompressBlob } from "../core/compress.js";
import { blobId, deriveKey, NONCE_SIZE, open, seal, sealParts, TAG_SIZE } from "../core/crypto.js";
import { CorruptionError } from "../core/errors.js";
import { sealedKey, type X25519Secret, x25519Ephemeral } from "./asymmetric.js";
import {
  BLOB_ENTRY,
  type BlobLocation,
  BlobType,
  type BlobTypeValue,
  readBlobEntry,
  writeBlobEntry,
} from "./blob.js";

/**
 * Pack file layout (all integers little-endian):
 *   prefix[40] = "LBP1" | version u8 (1) | pack type u8 (0 data, 1 tree) | key mode u8 | 0 u8 | salt[32]
 *   blob_0 ... blob_n-1        each = nonce[12] | AES-256-GCM(ciphertext) | tag[16]
 *   header                     = nonce[12] | AES-256-GCM(entries) | tag[16]
 *   header length u32          length of the encrypted header
 * entries = count u32, then per blob: type u8 | compression u8 | id[32] | offset u32 | length u32 | raw u32
 *
 * Key mode 0: the pack key is HKDF-SHA-256(root, salt, "lifeboat pack v1"), root being the data
 * key for data packs and the metadata key for tree packs. A fresh salt per pack gives every pack
 * its own key, so random 96-bit nonces stay far from collision however many blobs a repository
 * holds. Key mode 1 (write-only keys): the salt field holds a fresh X25519 public key, and the
 * pack key is HKDF-SHA-256(X25519(ephemeral, owner), ephemeral | owner public key, "lifeboat
 * pack x25519 v1"): the writer forgets the ephemeral secret, so only the owner's private key (a
 * full key) opens the pack again.
 * Blob AAD = type u8 | id[32]: a blob cannot be passed off as another. Header AAD = "LBP1 header".
 */
export const PACK_PREFIX = 40;
const MAGIC = Buffer.from("LBP1", "latin1");
const HEADER_AAD = Buffer.from("LBP1 header", "latin1");
const ENTRY = BLOB_ENTRY;
export const KEY_MODE_DERIVED = 0;
export const KEY_MODE_SEALED = 1;
const INFO_SEALED = "lifeboat pack x25519 v1";

/** Key mode 0: the key of a pack from its root (data or metadata key) and salt. */
export function packKey(root: Buffer, salt: Uint8Array): Buffer {
  return deriveKey(root, salt, "lifeboat pack v1");
}

/** What a new pack's prefix records, and its key. */
export interface NewPackKey {
  keyMode: number;
  salt: Buffer;
  key: Buffer;
}

/**
 * Writing: the key of a new pack — the one place a writer picks it. Full keys derive it from a
 * root (key mode 0); write-only keys seal a fresh one to the owner's public key (key mode 1).
 */
export function newPackKey(from: { root: Buffer } | { owner: Buffer }): NewPackKey {
  if ("root" in from) {
    const salt = randomBytes(32);
    return { keyMode: KEY_MODE_DERIVED, salt, key: packKey(from.root, salt) };
  }
  const { ephemeral, shared } = x25519Ephemeral(from.owner);
  return {
    keyMode: KEY_MODE_SEALED,
    salt: ephemeral,
    key: sealedKey(shared, new Uint8Array(0), ephemeral, from.owner, INFO_SEALED),
  };
}

/** The secrets that open packs: the roots, and the owner's private key for key mode 1. */
export interface PackRoots {
  data: Buffer;
  meta: Buffer;
  owner?: X25519Secret;
}

/** Reading: the key of a stored pack from its prefix — the one place a reader finds it. */
export function openPackKey(prefix: PackPrefix, roots: PackRoots, what: string): Buffer {
  if (prefix.keyMode === KEY_MODE_DERIVED)
    return packKey(prefix.type === BlobType.tree ? roots.meta : roots.data, prefix.salt);
  if (!roots.owner) throw new CorruptionError(what, "sealed to a public key this repository does not have");
  const shared = roots.owner.agree(prefix.salt, what);
  return sealedKey(shared, new Uint8Array(0), prefix.salt, roots.owner.publicKey, INFO_SEALED);
}

export function blobAad(type: number, id: Uint8Array): Buffer {
  const aad = Buffer.alloc(33);
  aad[0] = type;
  aad.set(id, 1);
  return aad;
}

/**
 * Accumulates encrypted blobs of one type; `finish` returns the pack's bytes and entries.
 * A pack can also be streamed (see PackWriter): `take` hands out the bytes built so far and
 * goes on in other memory, so only the part not yet written to storage is held.
 */
export class PackBuilder {
  readonly type: BlobTypeValue;
  private readonly key: Buffer;
  /** The pack (or, once `take` has been called, its part after `base`) as it grows: blobs are
   * copied in as they are sealed, so a finished pack is this one buffer (no list of pieces, no
   * final copy of the whole pack). */
  private buf: Buffer;
  private readonly entries: BlobLocation[] = [];
  private size = 0;
  /** Bytes handed out by `take`, hashed as they went: the pack's id is `storageId` of all its
   * bytes, computed as they go. */
  private base = 0;
  private readonly hash = createHash("sha256");

  /** `key`: from `newPackKey` (a bare root means key mode 0 with that root). `capacity`: bytes
   * to reserve at once (memory the pack never reaches is never touched, so it costs no RSS).
   * `memory`: a buffer to build in instead (see `memory`), used when it is large enough. */
  constructor(type: BlobTypeValue, key: Buffer | NewPackKey, capacity = 0, memory?: Buffer) {
    this.type = type;
    const k = Buffer.isBuffer(key) ? newPackKey({ root: key }) : key;
    const prefix = Buffer.alloc(PACK_PREFIX);
    MAGIC.copy(prefix, 0);
    prefix[4] = 1;
    prefix[5] = type;
    prefix[6] = k.keyMode;
    k.salt.copy(prefix, 8);
    this.key = k.key;
    const room = Math.max(PACK_PREFIX, capacity);
    this.buf = memory && memory.length >= room ? memory : Buffer.allocUnsafeSlow(room);
    this.append(prefix);
  }

  /** The buffer the pack is built in (`finish`'s bytes are a view of it): once those bytes are
   * stored, the next builder can take it instead of faulting in fresh pages. */
  get memory(): Buffer {
    return this.buf;
  }

  /** Bytes of the pack so far (including any handed out by `take`). */
  get byteSize(): number {
    return this.base + this.size;
  }

  /** Bytes built and not yet handed out by `take`. */
  get held(): number {
    return this.size;
  }

  /** Room left in the current buffer before `add` has to allocate. */
  get room(): number {
    return this.buf.length - this.size;
  }

  get count(): number {
    return this.entries.length;
  }

  private append(b: Uint8Array): void {
    if (this.size + b.length > this.buf.length) {
      const next = Buffer.allocUnsafeSlow(Math.max(this.size + b.length, this.buf.length * 2));
      this.buf.copy(next, 0, 0, this.size);
      this.buf = next;
    }
    this.buf.set(b, this.size);
    this.size += b.length;
  }

  /** `stored` is the (maybe compressed) plaintext; it is encrypted here. */
  add(id: Buffer, stored: Buffer, compression: number, rawLength: number): void {
    const offset = this.byteSize;
    const parts = sealParts(this.key, stored, blobAad(this.type, id));
    for (const p of parts) this.append(p);
    release(parts[1]!); // the ciphertext, copied in
    this.entries.push({
      type: this.type,
      compression,
      id,
      offset,
      length: this.byteSize - offset,
      rawLength,
    });
  }

  /** Streaming: the bytes built since the last `take` (the caller writes them next, in order);
   * the pack goes on in `next` (grown when a blob does not fit). */
  take(next: Buffer): Buffer {
    const out = this.buf.subarray(0, this.size);
    this.hash.update(out);
    this.base += this.size;
    this.buf = next;
    this.size = 0;
    return out;
  }

  /** Ends the pack: its id and entries, and its bytes — all of them, or when streamed, those
   * after the last `take`. */
  finish(): { id: string; bytes: Buffer; entries: BlobLocation[] } {
    const plain = encodeEntries(this.entries);
    const header = seal(this.key, plain, HEADER_AAD);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(header.length, 0);
    this.append(header);
    this.append(len);
    const bytes = this.buf.subarray(0, this.size);
    return { id: this.hash.update(bytes).digest("hex"), bytes, entries: this.entries };
  }
}

function encodeEntries(entries: BlobLocation[]): Buffer {
  const buf = Buffer.alloc(4 + entries.length * ENTRY);
  buf.writeUInt32LE(entries.length, 0);
  let o = 4;
  for (const e of entries) {
    writeBlobEntry(buf, o, e);
    o += ENTRY;
  }
  return buf;
}

/** zstd's densest block (RLE) turns 4 bytes into 128 KiB: no stored blob inflates more. */
const ZSTD_MAX_RATIO = 32768;

/**
 * Why an entry of a pack header or index file cannot describe a stored blob, or undefined:
 * it needs a known type and compression, room for nonce and tag, and a raw length its stored
 * bytes can produce (equal to them uncompressed). Readers size buffers by the raw length (a
 * worker's scratch), so a damaged length field must stop here, not at an allocation.
 */
export function entryProblem(e: BlobLocation): string | undefined {
  const problem = fieldsProblem(e.type, e.compression, e.length, e.rawLength);
  return problem && `blob ${e.id.toString("hex")} ${problem}`;
}

/** entryProblem of the entry at `o` of `buf` (BLOB_ENTRY bytes, see blob.ts), making nothing
 * unless it has one: an index of millions of blobs is checked as it is loaded. */
export function rawEntryProblem(buf: Buffer, o: number): string | undefined {
  const problem = fieldsProblem(buf[o]!, buf[o + 1]!, buf.readUInt32LE(o + 38), buf.readUInt32LE(o + 42));
  return problem && `blob ${buf.toString("hex", o + 2, o + 34)} ${problem}`;
}

function fieldsProblem(
  type: number,
  compression: number,
  length: number,
  rawLength: number,
): string | undefined {
  if (type !== BlobType.data && type !== BlobType.tree) return `has unknown type ${type}`;
  if (length < NONCE_SIZE + TAG_SIZE) return `is ${length} bytes, too short to be encrypted`;
  const stored = length - NONCE_SIZE - TAG_SIZE;
  if (compression === Compression.none) {
    if (rawLength !== stored) return `is stored as is in ${stored} bytes but claims ${rawLength}`;
  } else if (compression === Compression.zstd) {
    if (rawLength > stored * ZSTD_MAX_RATIO)
      return `claims ${rawLength} bytes, more than ${stored} compressed bytes can hold`;
  } else return `has unknown compression ${compression}`;
  return undefined;
}

/** No data blob lifeboat writes is near this: chunks are at most the chunker's maximum, SQLite
 * files and replication pages are stored in 64 KiB pieces, small files are below the minimum. */
const DATA_BLOB_FLOOR = 64 * 1024 * 1024;

/**
 * Why a data blob cannot be one lifeboat wrote, or undefined: above the larger of the chunker's
 * maximum and 64 MiB (DATA_BLOB_FLOOR, so fixed-size pieces and repositories with small chunks
 * are never refused). Readers size their buffers by the raw length, so a crafted index claiming
 * up to 4 GiB for a zstd bomb must stop here, not at an allocation.
 */
export function oversizedData(
  loc: { type: number; rawLength: number },
  maxChunk: number,
): string | undefined {
  const limit = Math.max(maxChunk, DATA_BLOB_FLOOR);
  if (loc.type !== BlobType.data || loc.rawLength <= limit) return undefined;
  return `claims ${loc.rawLength} bytes, more than any data blob lifeboat writes (${limit})`;
}

function decodeEntries(buf: Buffer, what: string): BlobLocation[] {
  if (buf.length < 4) throw new CorruptionError(what, "pack header too short");
  const n = buf.readUInt32LE(0);
  if (buf.length !== 4 + n * ENTRY) throw new CorruptionError(what, "pack header has the wrong length");
  const out: BlobLocation[] = [];
  for (let i = 0, o = 4; i < n; i++, o += ENTRY) {
    const loc = readBlobEntry(buf, o);
    const problem = entryProblem(loc);
    if (problem) throw new CorruptionError(what, problem, [loc.id.toString("hex")]);
    out.push(loc);
  }
  return out;
}

export interface PackPrefix {
  type: BlobTypeValue;
  keyMode: number;
  salt: Buffer;
}

export function parsePrefix(prefix: Buffer, what: string): PackPrefix {
  if (prefix.length < PACK_PREFIX || !prefix.subarray(0, 4).equals(MAGIC)) {
    throw new CorruptionError(what, "not a lifeboat pack (bad magic)");
  }
  if (prefix[4] !== 1) throw new CorruptionError(what, `unsupported pack version ${prefix[4]}`);
  const type = prefix[5]!;
  if (type !== BlobType.data && type !== BlobType.tree)
    throw new CorruptionError(what, `unknown pack type ${type}`);
  const keyMode = prefix[6]!;
  if (keyMode !== KEY_MODE_DERIVED && keyMode !== KEY_MODE_SEALED)
    throw new CorruptionError(what, `unsupported key mode ${keyMode}`);
  return { type, keyMode, salt: Buffer.from(prefix.subarray(8, 40)) };
}

/**
 * Reads the entries of a whole pack from its bytes (used by `repair index` and `check`).
 * `roots` gives the data and metadata keys (the pack type picks one) and, for packs written by
 * write-only keys, the owner's private key.
 */
export function readPackHeader(bytes: Buffer, roots: PackRoots, what: string): BlobLocation[] {
  const prefix = parsePrefix(bytes, what);
  if (bytes.length < PACK_PREFIX + 4) throw new CorruptionError(what, "pack too short");
  const hlen = bytes.readUInt32LE(bytes.length - 4);
  if (hlen > bytes.length - PACK_PREFIX - 4)
    throw new CorruptionError(what, "pack header length out of range");
  const key = openPackKey(prefix, roots, what);
  const header = open(
    key,
    bytes.subarray(bytes.length - 4 - hlen, bytes.length - 4),
    HEADER_AAD,
    `${what} header`,
  );
  return decodeEntries(header, what);
}

/**
 * Decrypts, decompresses and verifies one blob. The id is recomputed from the plaintext, so a
 * blob that decrypts but is not the one asked for is still caught.
 */
export function decodeBlob(
  sealed: Buffer,
  loc: BlobLocation,
  key: Buffer,
  idKey: Buffer,
  what: string,
  /** Where to decompress (see decompressBlob); the result is then a view of it. */
  scratch?: Buffer,
): Buffer {
  const stored = open(key, sealed, blobAad(loc.type, loc.id), what);
  let plain: Buffer;
  try {
    plain = decompressBlob(stored, loc.compression, loc.rawLength, scratch);
    if (plain !== stored) release(stored); // decrypted, then decompressed elsewhere: done with
  } catch (e) {
    throw new CorruptionError(what, `blob ${loc.id.toString("hex")}: ${(e as Error).message}`, [
      loc.id.toString("hex"),
    ]);
  }
  if (plain.length !== loc.rawLength) {
    throw new CorruptionError(
      what,
      `blob ${loc.id.toString("hex")} is ${plain.length} bytes, the index says ${loc.rawLength}`,
      [loc.id.toString("hex")],
    );
  }
  if (!blobId(idKey, plain).equals(loc.id)) {
    throw new CorruptionError(what, `blob ${loc.id.toString("hex")} does not match its id`, [
      loc.id.toString("hex"),
    ]);
  }
  return plain;
}
