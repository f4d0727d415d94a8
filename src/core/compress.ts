import { compress, decompress } from "zstd-napi";

export const Compression = { none: 0, zstd: 1 } as const;
export type CompressionType = (typeof Compression)[keyof typeof Compression];

const LEVEL = 3;

/** zstd at level 3; returns the input untouched when compression would not shrink it. */
export function maybeCompress(plain: Buffer): { data: Buffer; compression: CompressionType } {
  if (plain.length < 64) return { data: plain, compression: Compression.none };
  const z = compress(plain, { compressionLevel: LEVEL });
  if (z.length >= plain.length) return { data: plain, compression: Compression.none };
  return { data: z, compression: Compression.zstd };
}

/** `rawLength` < 0 skips the length check (objects whose size is not recorded elsewhere). */
export function decompressBlob(data: Buffer, compression: number, rawLength: number): Buffer {
  if (compression === Compression.none) return data;
  if (compression !== Compression.zstd) throw new Error(`unknown compression type ${compression}`);
  const out = decompress(data);
  if (rawLength >= 0 && out.length !== rawLength)
    throw new Error(`decompressed ${out.length} bytes, expected ${rawLength}`);
  return out;
}
