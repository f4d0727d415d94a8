import binding from "zstd-napi/binding.js";
import { LifeboatError } from "./errors.js";

export const Compression = { none: 0, zstd: 1 } as const;
export type CompressionType = (typeof Compression)[keyof typeof Compression];

const LEVEL = 3;
/** Below this, zstd's frame overhead outweighs any gain: stored as is. */
const MIN_COMPRESS = 64;

let cctx: InstanceType<typeof binding.CCtx> | undefined;
/** One compression context per thread, its level set once (ZSTD_compress2 keeps it; the
 * context's tables are reused from call to call instead of allocated per blob). */
function compressor(): InstanceType<typeof binding.CCtx> {
  if (!cctx) {
    cctx = new binding.CCtx();
    cctx.setParameter(binding.CParameter.compressionLevel, LEVEL);
  }
  return cctx;
}

/** Room `compressInto` needs for a plaintext of `n` bytes (zstd's bound: never less than `n`). */
export const compressRoom = (n: number): number => binding.compressBound(n);

/**
 * The stored form of `plain` written into `dest` (at least `compressRoom(plain.length)` bytes):
 * zstd at level 3, or `plain` itself copied when compression would not shrink it. The same
 * bytes `maybeCompress` gives, without allocating: for callers that gather many blobs into one
 * buffer (a worker's batch of small files).
 */
export function compressInto(
  plain: Uint8Array,
  dest: Uint8Array,
): { length: number; compression: CompressionType } {
  if (plain.length >= MIN_COMPRESS) {
    const n = compressor().compress2(dest, plain);
    if (n < plain.length) return { length: n, compression: Compression.zstd };
  }
  dest.set(plain);
  return { length: plain.length, compression: Compression.none };
}

/** Per thread: compressed output lands here first, then is copied out at its exact size (no
 * fresh pages to fault in per chunk). Kept up to a default-size chunk; larger blobs (a huge
 * folder's tree) get a buffer of their own. */
let zOut = Buffer.alloc(0);
const Z_OUT_KEPT = 9 * 1024 * 1024;

/** zstd at level 3; returns the input untouched when compression would not shrink it. The
 * compressed bytes own their memory (never Node's shared pool), so they can be transferred. */
export function maybeCompress(plain: Buffer): { data: Buffer; compression: CompressionType } {
  if (plain.length < MIN_COMPRESS) return { data: plain, compression: Compression.none };
  const room = compressRoom(plain.length);
  let out = zOut;
  if (out.length < room) {
    out = Buffer.allocUnsafeSlow(Math.max(room, 64 * 1024));
    if (room <= Z_OUT_KEPT) zOut = out;
  }
  const n = compressor().compress2(out.subarray(0, room), plain);
  if (n >= plain.length) return { data: plain, compression: Compression.none };
  const z = Buffer.allocUnsafeSlow(n);
  out.copy(z, 0, 0, n);
  return { data: z, compression: Compression.zstd };
}

let dctx: InstanceType<typeof binding.DCtx> | undefined;
let sctx: InstanceType<typeof binding.DCtx> | undefined;

/**
 * The most a sealed object (whose size is recorded nowhere) may inflate to. Objects are JSON
 * documents read as one string, and V8 strings end near 2^29 characters: nothing larger could be
 * parsed, so a frame that inflates past this is refused instead of filling memory.
 */
export const MAX_UNSIZED = 512 * 1024 * 1024;

/** Callers wrap this into a CorruptionError naming the blob or object. */
const damaged = (detail: string) =>
  new LifeboatError("CORRUPTION", detail, "run `lifeboat check --read-data` to see everything affected");

/**
 * Decompresses a blob or an object. `rawLength` >= 0 is the length the plaintext must have
 * (the index records it): output stops there, so a corrupt frame or a lying length costs at
 * most that much memory. `rawLength` < 0 (objects whose size is not recorded elsewhere) stops
 * at `limit`. With `scratch` (at least `rawLength` bytes) the output is written there and a
 * view of it returned: for callers that use the plaintext at once and drop it (restore,
 * check), no allocation per blob. Damage throws a LifeboatError (code CORRUPTION).
 */
export function decompressBlob(
  data: Buffer,
  compression: number,
  rawLength: number,
  scratch?: Buffer,
  limit = MAX_UNSIZED,
): Buffer {
  if (compression === Compression.none) return data;
  if (compression !== Compression.zstd) throw damaged(`unknown compression type ${compression}`);
  if (scratch && rawLength >= 0 && scratch.length >= rawLength) {
    dctx ??= new binding.DCtx();
    let n: number;
    try {
      n = dctx.decompress(scratch.subarray(0, rawLength), data);
    } catch (e) {
      throw damaged(`cannot decompress: ${(e as Error).message}`);
    }
    // Output longer than `rawLength` does not fit (zstd fails above); shorter is damage too.
    if (n !== rawLength) throw damaged(`decompressed ${n} bytes, expected ${rawLength}`);
    return scratch.subarray(0, rawLength);
  }
  const out = rawLength >= 0 ? inflate(data, rawLength, true) : inflate(data, limit, false);
  if (rawLength >= 0 && out.length !== rawLength)
    throw damaged(`decompressed ${out.length} bytes, expected ${rawLength}`);
  return out;
}

/**
 * Streams `data` through zstd into a buffer that grows with the output (from 8 times the
 * input, doubling) and never beyond `max`: memory follows what the frame really produces, not
 * what its header or an index claims. Output past `max` is refused. When `max` is the known
 * raw length and the frame's header says the same, the buffer is that size from the start.
 */
function inflate(data: Buffer, max: number, exact: boolean): Buffer {
  let declared: number | null = null;
  try {
    declared = binding.getFrameContentSize(data);
  } catch {
    // Not a frame header: the decompressor below says what is wrong.
  }
  if (declared !== null && declared > max)
    throw damaged(`the frame says it holds ${declared} bytes, more than the ${max} expected`);
  sctx ??= new binding.DCtx();
  sctx.reset(binding.ResetDirective.sessionOnly);
  const start = exact && declared === max ? max : Math.min(max, Math.max(64 * 1024, 8 * data.length));
  let out = Buffer.allocUnsafe(start);
  let n = 0;
  let src = data;
  const probe = Buffer.allocUnsafe(1);
  for (;;) {
    if (n === out.length && n < max) {
      const next = Buffer.allocUnsafe(Math.min(max, 2 * out.length));
      out.copy(next, 0, 0, n);
      out = next;
    }
    // Once `max` bytes are out, any further byte is one too many: decode into a 1-byte probe.
    const dst = n < out.length ? out.subarray(n) : probe;
    let ret: number;
    let produced: number;
    let consumed: number;
    try {
      [ret, produced, consumed] = sctx.decompressStream(dst, src);
    } catch (e) {
      throw damaged(`cannot decompress: ${(e as Error).message}`);
    }
    if (dst === probe && produced > 0) throw damaged(`decompresses to more than the ${max} bytes expected`);
    n += produced;
    src = src.subarray(consumed);
    // 0: a frame ended and is flushed; more input may hold another frame.
    if (ret === 0 && src.length === 0) return out.subarray(0, n);
    if (produced === 0 && consumed === 0) throw damaged("the compressed data is truncated");
  }
}
