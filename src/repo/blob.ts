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
