import { Compressor, decompress } from "zstd-napi";
import binding from "zstd-napi/binding.js";

export const Compression = { none: 0, zstd: 1 } as const;
export type CompressionType = (typeof Compression)[keyof typeof Compression];

const LEVEL = 3;

let cctx: Compressor | undefined;
/** One compressor per thread, its level set once (the simple API resets it on every call). */
function compressor(): Compressor {
  if (!cctx) {
    cctx = new Compressor();
    cctx.setParameters({ compressionLevel: LEVEL });
  }
  return cctx;
}

/** zstd at level 3; returns the input untouched when compression would not shrink it. */
export function maybeCompress(plain: Buffer): { data: Buffer; compression: CompressionType } {
  if (plain.length < 64) return { data: plain, compression: Compression.none };
  const z = compressor().compress(plain);
  if (z.length >= plain.length) return { data: plain, compression: Compression.none };
  return { data: z, compression: Compression.zstd };
}

let dctx: InstanceType<typeof binding.DCtx> | undefined;

/**
 * `rawLength` < 0 skips the length check (objects whose size is not recorded elsewhere). With
 * `scratch` (at least `rawLength` bytes) the output is written there and a view of it returned:
 * for callers that use the plaintext at once and drop it (restore, check), no allocation per blob.
 */
export function decompressBlob(
  data: Buffer,
  compression: number,
  rawLength: number,
  scratch?: Buffer,
): Buffer {
  if (compression === Compression.none) return data;
  if (compression !== Compression.zstd) throw new Error(`unknown compression type ${compression}`);
  if (scratch && rawLength >= 0 && scratch.length >= rawLength) {
    dctx ??= new binding.DCtx();
    let n: number;
    try {
      n = dctx.decompress(scratch.subarray(0, rawLength), data);
    } catch (e) {
      throw new Error(`cannot decompress: ${(e as Error).message}`);
    }
    // Output longer than `rawLength` does not fit (zstd fails above); shorter is damage too.
    if (n !== rawLength) throw new Error(`decompressed ${n} bytes, expected ${rawLength}`);
    return scratch.subarray(0, rawLength);
  }
  const out = decompress(data);
  if (rawLength >= 0 && out.length !== rawLength)
    throw new Error(`decompressed ${out.length} bytes, expected ${rawLength}`);
  return out;
}
