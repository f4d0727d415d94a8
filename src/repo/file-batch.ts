import { type CompressionType, compressInto, compressRoom } from "../core/compress.js";
import type { FileStat, WholeRead } from "../fsio/file-read.js";

/*
 * A batch of small files read, hashed and compressed by a blob worker comes back as one
 * buffer, transferred (not copied) to the main thread: one message and one allocation per
 * batch instead of several per file. Layout for n files (offsets keep the 8-byte alignment
 * the BigInt64Array needs):
 *
 *   at 0       per file 4 × u32: kind (FileKind), raw length, stored length, compression
 *   at 16·n    per file 9 × i64: the metadata after the read (STAT_FIELDS order)
 *   at 88·n    per file 32 bytes: the blob id
 *   at 120·n   the stored (compressed or not) bytes of each file, one after the other
 */

const STAT_FIELDS = ["mode", "uid", "gid", "size", "nlink", "ino", "dev", "mtimeNs", "ctimeNs"] as const;
const WORDS = 4;
const HEAD = 4 * WORDS;
const STAT = 8 * STAT_FIELDS.length;
const ID = 32;

/** How a file of the batch went (a failed one's error travels beside the buffer). */
export const FileKind = { read: 0, grew: 1, notFile: 2, failed: 3 } as const;

/** One file of a batch, as the main thread gets it (views into the batch's buffer). */
export type BatchFile =
  | {
      kind: "read";
      after: FileStat;
      length: number;
      /** Absent for an empty file (no blob). */
      blob?: { id: Buffer; data: Buffer; compression: CompressionType };
    }
  | { kind: "grew" }
  | { kind: "notFile" }
  | { kind: "failed" };

/** Builds a batch's buffer on the worker; `add` takes each file's outcome in order. */
export class BatchWriter {
  readonly buffer: Buffer;
  private readonly words: Uint32Array;
  private readonly stats: BigInt64Array;
  private at: number;
  private i = 0;

  /** `sizes`: what each file's lstat said (stored bytes never need more than zstd's bound). */
  constructor(private readonly sizes: readonly number[]) {
    const n = sizes.length;
    let room = 0;
    for (const s of sizes) room += compressRoom(s);
    this.buffer = Buffer.allocUnsafeSlow((HEAD + STAT + ID) * n + room);
    this.words = new Uint32Array(this.buffer.buffer, 0, WORDS * n);
    this.stats = new BigInt64Array(this.buffer.buffer, HEAD * n, STAT_FIELDS.length * n);
    this.at = (HEAD + STAT + ID) * n;
  }

  /** A file read whole (`data` at most its lstat size): stored with its id and metadata. */
  addRead(data: Buffer, id: Buffer, after: FileStat): void {
    const i = this.i++;
    const n = this.sizes.length;
    let stored = 0;
    let compression: CompressionType = 0;
    if (data.length > 0) {
      const r = compressInto(data, this.buffer.subarray(this.at, this.at + compressRoom(data.length)));
      stored = r.length;
      compression = r.compression;
      id.copy(this.buffer, (HEAD + STAT) * n + ID * i);
    }
    this.words.set([FileKind.read, data.length, stored, compression], WORDS * i);
    STAT_FIELDS.forEach((f, k) => {
      this.stats[STAT_FIELDS.length * i + k] = after[f];
    });
    this.at += stored;
  }

  /** A file not read (it grew, is not a file any more, or failed). */
  addOther(kind: Exclude<WholeRead["kind"], "read"> | "failed"): void {
    const i = this.i++;
    this.words.set([FileKind[kind], 0, 0, 0], WORDS * i);
  }
}

/** The files of a batch, on the main thread: the stored bytes are views into `buffer`. */
export function readBatch(buffer: Uint8Array, n: number): BatchFile[] {
  const buf = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const words = new Uint32Array(buf.buffer, buf.byteOffset, WORDS * n);
  const stats = new BigInt64Array(buf.buffer, buf.byteOffset + HEAD * n, STAT_FIELDS.length * n);
  const out: BatchFile[] = [];
  let at = (HEAD + STAT + ID) * n;
  for (let i = 0; i < n; i++) {
    const [kind, length, stored, compression] = words.subarray(WORDS * i, WORDS * i + WORDS) as unknown as [
      number,
      number,
      number,
      number,
    ];
    if (kind !== FileKind.read) {
      out.push({ kind: kind === FileKind.grew ? "grew" : kind === FileKind.notFile ? "notFile" : "failed" });
      continue;
    }
    const s = STAT_FIELDS.length * i;
    const after = {} as FileStat;
    STAT_FIELDS.forEach((f, k) => {
      after[f] = stats[s + k]!;
    });
    const file: BatchFile = { kind: "read", after, length };
    if (length > 0) {
      const idAt = (HEAD + STAT) * n + ID * i;
      file.blob = {
        // A copy: ids outlive the batch (the index keeps them), the data does not.
        id: Buffer.from(buf.subarray(idAt, idAt + ID)),
        data: buf.subarray(at, at + stored),
        compression: compression as CompressionType,
      };
      at += stored;
    }
    out.push(file);
  }
  return out;
}
