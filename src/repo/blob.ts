/** Blobs are the unit of deduplication: a file chunk (data) or an encoded directory (tree). */
export const BlobType = { data: 0, tree: 1 } as const;
export type BlobTypeValue = (typeof BlobType)[keyof typeof BlobType];

/** Where a blob lives: one entry of a pack header and of an index file. */
export interface BlobLocation {
  type: BlobTypeValue;
  /** 0 = stored as is, 1 = zstd. */
  compression: number;
  id: Buffer;
  /** Offset of the encrypted blob inside the pack. */
  offset: number;
  /** Encrypted length: nonce + ciphertext + tag. */
  length: number;
  /** Length of the plaintext. */
  rawLength: number;
}

export const blobTypeName = (t: number): string => (t === BlobType.tree ? "tree" : "data");

/** A blob location as pack headers and index files store it: type u8 | compression u8 |
 * id[32] | offset u32 | length u32 | raw length u32 (little-endian). */
export const BLOB_ENTRY = 46;

export function writeBlobEntry(buf: Buffer, o: number, e: BlobLocation): void {
  buf[o] = e.type;
  buf[o + 1] = e.compression;
  buf.set(e.id, o + 2);
  buf.writeUInt32LE(e.offset, o + 34);
  buf.writeUInt32LE(e.length, o + 38);
  buf.writeUInt32LE(e.rawLength, o + 42);
}

/** The entry at `o` (its id copied out of `buf`); not checked (see pack.ts entryProblem). */
export function readBlobEntry(buf: Buffer, o: number): BlobLocation {
  return {
    type: buf[o]! as BlobTypeValue,
    compression: buf[o + 1]!,
    id: Buffer.from(buf.subarray(o + 2, o + 34)),
    offset: buf.readUInt32LE(o + 34),
    length: buf.readUInt32LE(o + 38),
    rawLength: buf.readUInt32LE(o + 42),
  };
}
