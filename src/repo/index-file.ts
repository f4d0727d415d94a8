import { CorruptionError } from "../core/errors.js";
import { BLOB_ENTRY, type BlobLocation, readBlobEntry, writeBlobEntry } from "./blob.js";
import { rawEntryProblem } from "./pack.js";

/**
 * Index file plaintext (inside a sealed object of kind "index"), little-endian:
 *   "LBIX" | version u8 (1) | 0[3]
 *   supersedes count u32 | supersedes ids[32] each   (index files this one replaces)
 *   pack count u32
 *   per pack: pack id[32] | blob count u32 | entries (46 bytes each, the pack header's layout)
 * Entries: type u8 | compression u8 | id[32] | offset u32 | length u32 | raw length u32
 * Version 2 (only written when a pack needs it): per pack, a flags byte after the pack id;
 * bit 0 = the pack was written by a write-only key (a *claim*: see docs/format.md).
 */
const MAGIC = Buffer.from("LBIX", "latin1");
const ENTRY = BLOB_ENTRY;

export interface IndexPack {
  id: string;
  blobs: BlobLocation[];
  /** Written by a write-only key (key mode 1): what it says is not taken for deduplication by
   * full keys, since whoever holds a write-only key could have written it. */
  claim?: boolean;
}

const FLAG_CLAIM = 1;

export interface IndexFile {
  supersedes: string[];
  packs: IndexPack[];
}

export function encodeIndex(file: IndexFile): Buffer {
  const v2 = file.packs.some((p) => p.claim);
  let size = 8 + 4 + 32 * file.supersedes.length + 4;
  for (const p of file.packs) size += 36 + (v2 ? 1 : 0) + ENTRY * p.blobs.length;
  const buf = Buffer.alloc(size);
  MAGIC.copy(buf, 0);
  buf[4] = v2 ? 2 : 1;
  let o = 8;
  buf.writeUInt32LE(file.supersedes.length, o);
  o += 4;
  for (const s of file.supersedes) {
    Buffer.from(s, "hex").copy(buf, o);
    o += 32;
  }
  buf.writeUInt32LE(file.packs.length, o);
  o += 4;
  for (const p of file.packs) {
    Buffer.from(p.id, "hex").copy(buf, o);
    o += 32;
    if (v2) buf[o++] = p.claim ? FLAG_CLAIM : 0;
    buf.writeUInt32LE(p.blobs.length, o);
    o += 4;
    for (const e of p.blobs) {
      writeBlobEntry(buf, o, e);
      o += ENTRY;
    }
  }
  return buf;
}

/** An index file's pack as stored: its entries left undecoded (BLOB_ENTRY bytes each, checked),
 * so loading millions of blobs into the in-memory index makes no object per blob. */
export interface RawIndexPack {
  id: string;
  /** `count` entries in the pack header's layout (see blob.ts readBlobEntry). */
  entries: Buffer;
  count: number;
  claim?: boolean;
}

export interface RawIndexFile {
  supersedes: string[];
  packs: RawIndexPack[];
}

/** An index file's packs with their blob locations decoded (see decodeIndexRaw). */
export function decodeIndex(buf: Buffer, what: string): IndexFile {
  const raw = decodeIndexRaw(buf, what);
  return { supersedes: raw.supersedes, packs: raw.packs.map(decodedPack) };
}

/** A raw pack with its blob locations decoded. */
export function decodedPack(p: RawIndexPack): IndexPack {
  const blobs: BlobLocation[] = new Array(p.count);
  for (let j = 0; j < p.count; j++) blobs[j] = readBlobEntry(p.entries, j * ENTRY);
  return p.claim ? { id: p.id, blobs, claim: true } : { id: p.id, blobs };
}

/** Parses and checks an index file, every entry included, leaving entries as bytes. */
export function decodeIndexRaw(buf: Buffer, what: string): RawIndexFile {
  const fail = (d: string) =>
    new CorruptionError(what, d, [], "run `lifeboat repair index` to rebuild the index from the packs");
  if (buf.length < 16 || !buf.subarray(0, 4).equals(MAGIC)) throw fail("not an index file");
  const version = buf[4]!;
  if (version !== 1 && version !== 2) throw fail(`unsupported index version ${version}`);
  let o = 8;
  const need = (n: number) => {
    if (o + n > buf.length) throw fail("index file truncated");
  };
  need(4);
  const ns = buf.readUInt32LE(o);
  o += 4;
  const supersedes: string[] = [];
  for (let i = 0; i < ns; i++) {
    need(32);
    supersedes.push(buf.toString("hex", o, o + 32));
    o += 32;
  }
  need(4);
  const np = buf.readUInt32LE(o);
  o += 4;
  const packs: RawIndexPack[] = [];
  for (let i = 0; i < np; i++) {
    need(version === 2 ? 37 : 36);
    const id = buf.toString("hex", o, o + 32);
    o += 32;
    const flags = version === 2 ? buf[o++]! : 0;
    if (flags & ~FLAG_CLAIM) throw fail(`pack ${id} has unknown flags ${flags}`);
    const nb = buf.readUInt32LE(o);
    o += 4;
    need(nb * ENTRY);
    const entries = buf.subarray(o, o + nb * ENTRY);
    for (let j = 0; j < nb; j++, o += ENTRY) {
      const problem = rawEntryProblem(buf, o);
      if (problem) throw fail(problem);
    }
    packs.push(flags & FLAG_CLAIM ? { id, entries, count: nb, claim: true } : { id, entries, count: nb });
  }
  if (o !== buf.length) throw fail("trailing bytes after the index");
  return { supersedes, packs };
}
