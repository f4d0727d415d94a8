import os from "node:os";
import { Worker } from "node:worker_threads";
import type { CompressionType } from "../core/compress.js";

export interface PooledBlob {
  id: Buffer;
  data: Buffer;
  compression: CompressionType;
}

interface Job {
  resolve: (r: PooledBlob) => void;
  reject: (e: unknown) => void;
}

/**
 * Worker threads that hash and compress blobs. With N cores, N-1 workers (at least one); jobs go
 * round-robin and the caller bounds how many are in flight, so memory stays flat. Chunk buffers
 * are transferred, not copied, when they own their memory.
 */
export class BlobPool {
  private readonly workers: Worker[] = [];
  private readonly jobs = new Map<number, Job>();
  private next = 0;
  private rr = 0;

  constructor(idKey: Buffer, size = Math.max(1, (os.availableParallelism?.() ?? os.cpus().length) - 1)) {
    for (let i = 0; i < size; i++) {
      const w = new Worker(new URL("./compress-worker.js", import.meta.url), { workerData: { idKey } });
      w.on(
        "message",
        (m: { id: number; blobId: Uint8Array; data: Uint8Array; compression: CompressionType }) => {
          const job = this.jobs.get(m.id);
          if (!job) return;
          this.jobs.delete(m.id);
          if (this.jobs.size === 0) for (const x of this.workers) x.unref();
          job.resolve({
            id: Buffer.from(m.blobId.buffer, m.blobId.byteOffset, m.blobId.byteLength),
            data: Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength),
            compression: m.compression,
          });
        },
      );
      w.on("error", (e) => {
        for (const j of this.jobs.values()) j.reject(e);
        this.jobs.clear();
      });
      w.unref();
      this.workers.push(w);
    }
  }

  /** Hashes and compresses `buf`; `buf` must not be used by the caller afterwards. */
  process(buf: Buffer): Promise<PooledBlob> {
    const id = this.next++;
    const w = this.workers[this.rr++ % this.workers.length]!;
    // Workers keep the process alive only while they have work (an idle pool must not).
    if (this.jobs.size === 0) for (const x of this.workers) x.ref();
    const owns = buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength;
    return new Promise((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      w.postMessage({ id, buf }, owns ? [buf.buffer as ArrayBuffer] : []);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
