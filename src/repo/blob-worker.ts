import { createHash, type Hash } from "node:crypto";
import fs from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { asBuffer, ownCopy, ownsMemory, release } from "../core/buffers.js";
import { Chunker, constantByte } from "../core/chunker.js";
import { type CompressionType, maybeCompress } from "../core/compress.js";
import { blobId } from "../core/crypto.js";
import { fsPath } from "../core/names.js";
import { fileStat, openToRead, readWholeFd, type WholeRead } from "../fsio/file-read.js";
import { seekSparse, trimMemory, willNeed } from "../fsio/native.js";
import type { FileRead, WorkerFailure, WorkerReply, WorkerRequest } from "./blob-pool.js";
import { BatchWriter } from "./file-batch.js";
import { decodeBlob } from "./pack.js";
import { failure, restoreRange } from "./range-restore.js";

/**
 * Worker side of BlobPool: hashing (the keyed blob id) and zstd for backups; decryption,
 * decompression and the id check for restores and checks (for restores also the write into the
 * restored file, so plaintext never travels back). These are the costliest steps after
 * reading and chunking, so they run here while the main thread reads, chunks and writes.
 */
const idKey = Buffer.from(workerData.idKey as Uint8Array);

function handle(m: WorkerRequest): [WorkerReply, ArrayBuffer[]] {
  if (m.op === "encode") {
    const plain = asBuffer(m.buf);
    const bid = blobId(idKey, plain);
    const r = maybeCompress(plain);
    // Either `plain` itself (stored as is) or zstd output, which owns its memory: moved, not cloned.
    const transfer = ownsMemory(r.data) ? [r.data.buffer as ArrayBuffer] : [];
    return [{ id: m.id, op: "encoded", blobId: bid, data: r.data, compression: r.compression }, transfer];
  }
  if (m.op === "encodeFiles") return encodeFiles(m);
  if (m.op === "chunkFile") return [{ id: m.id, op: "fileChunked", read: chunkFile(m) }, []];
  if (m.op === "verifyWindow") return verifyWindow(m);
  if (m.op === "restoreRange") {
    const files = restoreRange(m, idKey);
    release(m.sealed); // the range read for this job, written out
    return [{ id: m.id, op: "rangeRestored", files }, []];
  }
  const plain = decodeOne(m);
  // Decompressed output owns its memory; a stored (uncompressed) blob is a view: copy it once.
  const own = ownsMemory(plain) ? plain : ownCopy(plain);
  release(m.sealed); // decrypted into memory of its own: done with
  return [{ id: m.id, op: "decoded", plain: own }, [own.buffer as ArrayBuffer]];
}

/** The running SHA-256 of each pack being checked in windows (see BlobPool.verifyWindow). */
const packHashes = new Map<number, Hash>();

/**
 * One window of a pack being checked: hashed into the pack's running SHA-256 (windows come in
 * pack order, all to this worker), and every blob inside it decrypted, decompressed (into the
 * scratch buffer) and matched with its id. The last window compares the hash with the name.
 */
function verifyWindow(m: Extract<WorkerRequest, { op: "verifyWindow" }>): [WorkerReply, ArrayBuffer[]] {
  let hash = packHashes.get(m.stream);
  if (!hash) {
    if (!m.first)
      throw new Error("blob worker: a pack check lost its running hash (the worker was restarted)");
    hash = createHash("sha256");
    packHashes.set(m.stream, hash);
  }
  const bytes = asBuffer(m.bytes);
  hash.update(bytes);
  const key = asBuffer(m.key);
  const damaged: number[] = [];
  m.blobs.forEach((b, i) => {
    const sealed = bytes.subarray(b.offset, b.offset + b.length);
    try {
      if (sealed.length !== b.length) throw new Error("pack is shorter than the index says");
      const loc = {
        type: b.type,
        compression: b.compression,
        id: asBuffer(b.blob),
        offset: b.offset,
        length: b.length,
        rawLength: b.rawLength,
      };
      const out = scratchFor(b.rawLength);
      const plain = decodeBlob(sealed, loc, key, idKey, m.what, out);
      // Stored uncompressed, a blob decrypts into memory of its own: freed now (the collector
      // let tens of MiB of them pile up in a check of large incompressible files).
      if (plain.buffer !== out.buffer) release(plain);
    } catch {
      damaged.push(i);
    }
  });
  release(m.bytes); // handed over by the main thread for this check alone
  let nameMatches = false;
  if (m.last) {
    packHashes.delete(m.stream);
    nameMatches = hash.digest("hex") === m.packId;
    trimMemory();
  }
  return [{ id: m.id, op: "verified", damaged, nameMatches }, []];
}

/** Small files are read here, one after the other (the largest small file is 128 KiB). */
let readScratch = Buffer.alloc(0);

/**
 * See BlobPool.encodeFile: each file read whole, hashed and stored into one batch buffer. The
 * batch's files are all opened and advised first (willNeed), then read: with a cold page cache
 * their reads are then in flight together instead of one disk wait after another.
 */
function encodeFiles(m: Extract<WorkerRequest, { op: "encodeFiles" }>): [WorkerReply, ArrayBuffer[]] {
  const out = new BatchWriter(m.sizes);
  const failures: [number, WorkerFailure][] = [];
  const opened: (number | { error: unknown })[] = m.paths.map((path) => {
    try {
      const fd = openToRead(path);
      willNeed(fd);
      return fd;
    } catch (error) {
      return { error };
    }
  });
  // opened[0, handed) were handed to readWholeFd, which closes them.
  let handed = 0;
  try {
    for (let i = 0; i < opened.length; i++) {
      const fd = opened[i]!;
      const size = m.sizes[i]!;
      if (readScratch.length < size + 1)
        readScratch = Buffer.allocUnsafeSlow(Math.max(size + 1, 128 * 1024 + 1));
      let read: WholeRead;
      try {
        if (typeof fd !== "number") throw fd.error;
        handed = i + 1;
        read = readWholeFd(fd, size, readScratch);
      } catch (e) {
        failures.push([i, failure(e)]);
        out.addOther("failed");
        continue;
      }
      if (read.kind !== "read") out.addOther(read.kind);
      else out.addRead(read.data, blobId(idKey, read.data), read.after);
    }
  } finally {
    for (let i = handed; i < opened.length; i++) {
      const fd = opened[i];
      if (typeof fd === "number") fs.closeSync(fd);
    }
  }
  const bytes = out.buffer.buffer as ArrayBuffer;
  return [{ id: m.id, op: "filesEncoded", bytes, failures }, [bytes]];
}

type SealedBlob = Extract<WorkerRequest, { op: "decode" }>;

/** One buffer per worker for plaintext that is written or checked and then dropped. */
let scratch = Buffer.alloc(0);
function scratchFor(length: number): Buffer {
  if (scratch.length < length) scratch = Buffer.allocUnsafeSlow(Math.max(length, 1024 * 1024));
  return scratch;
}

/** `transient`: the caller is done with the plaintext before the next decode (scratch use). */
function decodeOne(m: Omit<SealedBlob, "id" | "op">, transient = false): Buffer {
  const loc = {
    type: m.type,
    compression: m.compression,
    id: asBuffer(m.blob),
    rawLength: m.rawLength,
    offset: 0,
    length: m.sealed.length,
  };
  const out = transient ? scratchFor(m.rawLength) : undefined;
  return decodeBlob(asBuffer(m.sealed), loc, asBuffer(m.key), idKey, m.what, out);
}

/** Read size for large files (the chunker copies what it is given, so one buffer serves all
 * the files this worker reads: kept, not made per file and left for the collector). */
const READ_SIZE = 1024 * 1024;
let readBuffer: Buffer | undefined;
/** Files from this size up are followed by a trim of the worker's free memory (their chunker
 * arena and chunks reach tens of MiB); a trim costs about 0.65 ms with the pages faulted in
 * again, too much after every file of a few MiB (a folder of photos). */
const TRIM_AFTER = 16 * 1024 * 1024;

/** Stored forms of chunks that hold one byte value throughout (zeroes, mostly), by value and
 * length: a preallocated or sparse file's chunks of zeroes are hashed and compressed once. */
const constantChunks = new Map<string, { bid: Buffer; data: Buffer; compression: CompressionType }>();
const CONSTANT_CHUNKS_KEPT = 16;

/** The id and stored form of a chunk (`view`: the chunker's arena, valid during the call). */
function encodeChunk(view: Buffer): { bid: Buffer; data: Buffer; compression: CompressionType } {
  const c = constantByte(view);
  if (c >= 0) {
    const key = `${c}:${view.length}`;
    let known = constantChunks.get(key);
    if (!known) {
      const z = maybeCompress(view);
      known = { bid: blobId(idKey, view), data: ownCopy(z.data), compression: z.compression };
      if (constantChunks.size >= CONSTANT_CHUNKS_KEPT) constantChunks.clear();
      constantChunks.set(key, known);
    }
    return { ...known, data: ownCopy(known.data) };
  }
  const bid = blobId(idKey, view);
  const z = maybeCompress(view);
  // Compressed output owns its memory; `view` is the arena's: stored as is, it is copied.
  return { bid, data: z.data === view ? ownCopy(view) : z.data, compression: z.compression };
}

/** See BlobPool.chunkFile: reads, chunks, hashes and compresses, sending each chunk when the
 * main thread has room for it (control[0] credits; control[1] set = stop). */
function chunkFile(m: Extract<WorkerRequest, { op: "chunkFile" }>): FileRead {
  const control = new Int32Array(m.control);
  const chunker = new Chunker(m.params, m.gear);
  const send = (view: Buffer) => {
    const c = encodeChunk(view);
    for (;;) {
      if (Atomics.load(control, 1) !== 0) throw new Error("stopped: storing an earlier chunk failed");
      const have = Atomics.load(control, 0);
      if (have > 0) {
        if (Atomics.compareExchange(control, 0, have, have - 1) === have) break;
      } else Atomics.wait(control, 0, have, 1000);
    }
    parentPort!.postMessage(
      {
        id: m.id,
        op: "chunk",
        blobId: c.bid,
        data: c.data,
        compression: c.compression,
        rawLength: view.length,
      },
      [c.data.buffer as ArrayBuffer],
    );
  };
  // O_NONBLOCK: a FIFO swapped in since lstat must not block this worker (fstat rejects it).
  const fd = fs.openSync(
    fsPath(m.path),
    fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK,
  );
  let pos = 0;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return { kind: "notFile" };
    readBuffer ??= Buffer.allocUnsafeSlow(READ_SIZE);
    const buf = readBuffer;
    // Zeroes read or skipped but not yet given to the chunker: a run of them makes chunks
    // without being copied or scanned (Chunker.pushZeroes).
    let zeroes = 0;
    /** Reads [pos, end) (to the end of the file for Infinity); false at the end of the file. */
    const readTo = (end: number): boolean => {
      while (pos < end) {
        const n = fs.readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
        if (n === 0) return false;
        pos += n;
        const piece = buf.subarray(0, n);
        if (constantByte(piece) === 0) zeroes += n;
        else {
          if (zeroes > 0) chunker.pushZeroes(zeroes, send);
          zeroes = 0;
          chunker.pushEach(piece, send);
        }
      }
      return true;
    };
    // A file with fewer blocks than its length has holes: they are skipped, not read (lseek
    // SEEK_DATA / SEEK_HOLE), and chunked as the zeroes they read as.
    const size = st.size;
    if (st.blocks * 512 < size) {
      while (pos < size) {
        const data = seekSparse(fd, pos, false);
        if (data === undefined) break;
        const dataAt = data < 0 ? size : Math.min(data, size);
        zeroes += dataAt - pos;
        pos = dataAt;
        if (pos >= size) break;
        const hole = seekSparse(fd, pos, true);
        if (hole === undefined || !readTo(Math.min(hole < 0 ? size : hole, size))) break;
      }
    }
    // The rest (all of a file without holes), and whatever was added since the fstat.
    readTo(Number.POSITIVE_INFINITY);
    if (zeroes > 0) chunker.pushZeroes(zeroes, send);
    chunker.finishEach(send);
    const after = fs.fstatSync(fd, { bigint: true });
    if (!after.isFile()) return { kind: "notFile" };
    return { kind: "read", after: fileStat(after), length: pos };
  } finally {
    chunker.dispose();
    if (pos >= TRIM_AFTER) trimMemory();
    fs.closeSync(fd);
  }
}

parentPort!.on("message", (m: WorkerRequest) => {
  let out: [WorkerReply, ArrayBuffer[]];
  try {
    out = handle(m);
  } catch (e) {
    out = [{ id: m.id, op: "failed", ...failure(e) }, []];
  }
  parentPort!.postMessage(out[0], out[1]);
});
