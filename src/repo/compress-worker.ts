import { parentPort, workerData } from "node:worker_threads";
import { maybeCompress } from "../core/compress.js";
import { blobId } from "../core/crypto.js";

/**
 * Worker side of BlobPool: hashing (the keyed blob id) and zstd are the costliest steps of a
 * backup after chunking, so they run here while the main thread reads, chunks and encrypts.
 */
const idKey = Buffer.from(workerData.idKey as Uint8Array);

parentPort!.on("message", (m: { id: number; buf: Uint8Array }) => {
  const plain = Buffer.from(m.buf.buffer, m.buf.byteOffset, m.buf.byteLength);
  const bid = blobId(idKey, plain);
  const r = maybeCompress(plain);
  const transfer = r.data === plain && plain.byteOffset === 0 && plain.byteLength === plain.buffer.byteLength;
  parentPort!.postMessage(
    { id: m.id, blobId: bid, data: r.data, compression: r.compression },
    transfer ? [plain.buffer as ArrayBuffer] : [],
  );
});
