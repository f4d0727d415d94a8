import { asBuffer, release } from "../core/buffers.js";
import { CorruptionError, errnoCode } from "../core/errors.js";
import {
  createNewFile,
  discardNewFile,
  finishNewFile,
  type NewFile,
  writeOrHole,
} from "../fsio/file-write.js";
import type { RangeJob, RangeOutcome, WorkerFailure } from "./blob-pool.js";
import { decodeBlob } from "./pack.js";

/** One buffer per thread for plaintext that is written and then dropped. */
let scratch = Buffer.alloc(0);
function scratchFor(length: number): Buffer {
  if (scratch.length < length) scratch = Buffer.allocUnsafeSlow(Math.max(length, 1024 * 1024));
  return scratch;
}

/**
 * See BlobPool.restoreRange (run on a worker, or on the main thread by the restorer): decodes each blob of the job (a range, or a slice of one) once (into the scratch buffer) and
 * writes it at every place it goes. A new file is created on its first write and finished on
 * its last; a file whose blob fails to decode or whose write fails is failed (a new one is
 * removed), and the others go on.
 */
export function restoreRange(m: RangeJob, idKey: Buffer): RangeOutcome[] {
  const sealed = asBuffer(m.sealed);
  const key = asBuffer(m.key);
  const out: RangeOutcome[] = m.files.map(() => ({ holes: false }));
  // Writes still to come into each new file: it is finished after the last.
  const left = new Int32Array(m.files.length);
  for (const b of m.blobs) for (let i = 0; i < b.to.length; i += 2) left[b.to[i]!]!++;
  const made: (NewFile | undefined)[] = [];
  const fail = (f: number, e: unknown) => {
    if (out[f]!.failure) return;
    out[f]!.failure = failure(e);
    const nf = made[f];
    if (nf) discardNewFile(nf);
    made[f] = undefined;
  };
  for (const b of m.blobs) {
    let plain: Buffer;
    try {
      const loc = {
        type: b.type,
        compression: b.compression,
        id: asBuffer(b.blob),
        rawLength: b.rawLength,
        offset: 0,
        length: b.length,
      };
      if (b.at + b.length > sealed.length)
        throw new CorruptionError(m.what, "pack is shorter than the index says", [loc.id.toString("hex")]);
      plain = decodeBlob(
        sealed.subarray(b.at, b.at + b.length),
        loc,
        key,
        idKey,
        m.what,
        scratchFor(b.rawLength),
      );
    } catch (e) {
      for (let i = 0; i < b.to.length; i += 2) fail(b.to[i]!, e);
      continue;
    }
    for (let i = 0; i < b.to.length; i += 2) {
      const f = b.to[i]!;
      const o = out[f]!;
      if (o.failure) continue;
      const spec = m.files[f]!;
      try {
        if (spec.kind === "open") {
          if (writeOrHole(spec.fd, plain, b.to[i + 1]!)) o.holes = true;
          continue;
        }
        let nf = made[f];
        if (!nf) {
          nf = createNewFile(spec.dest, spec.direct, spec.meta);
          made[f] = nf;
        }
        if (writeOrHole(nf.fd, plain, b.to[i + 1]!)) o.holes = true;
        if (--left[f]! === 0) {
          made[f] = undefined;
          o.notes = finishNewFile(nf, spec.dest, spec.size, o.holes, spec.meta);
        }
      } catch (e) {
        fail(f, e);
      }
    }
    // A blob stored uncompressed decrypts into memory of its own (not the scratch): written
    // everywhere it goes, it is freed now rather than when the collector gets to it.
    if (plain.buffer !== scratch.buffer) release(plain);
  }
  // Every write of a new file is in this job, so none is still open unless it failed.
  made.forEach((nf, f) => {
    if (nf) fail(f, new Error("internal error: a restored file was not finished"));
  });
  return out;
}

/** An error as it crosses to the main thread (see rebuildError in blob-pool.ts). */
export function failure(e: unknown): WorkerFailure {
  const c = e instanceof CorruptionError ? e : undefined;
  const code = errnoCode(e);
  return {
    message: (e as Error).message,
    ...(c ? { object: c.object, blobs: c.blobs } : {}),
    ...(code ? { code } : {}),
  };
}
