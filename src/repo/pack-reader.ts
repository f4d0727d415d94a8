import type { Backend } from "../backend/backend.js";
import { names } from "./config.js";

interface Window {
  packId: string;
  offset: number;
  buf: Buffer;
}

const WINDOW = 4 * 1024 * 1024;
const WINDOWS = 8;
const DIRECT = 128 * 1024;

/**
 * Reads blobs out of packs with read-ahead: a request for a small blob fetches a 4 MiB window
 * from its offset, and later blobs inside that window are served from memory. Backups write
 * blobs in file order, so a restore reads each pack about once instead of once per blob.
 * Concurrent requests for the same window share one read. Trees are written after the trees
 * below them, so a walk from the root reads a tree pack backwards: for those (`backwards`) the
 * window ends at the blob instead of starting there (else a tree 10,000 folders deep costs
 * 10,000 reads of 4 MiB each).
 */
export class PackReader {
  private windows: Window[] = [];
  private readonly inflight = new Map<string, Promise<Window | undefined>>();

  constructor(private readonly backend: Backend) {}

  async read(packId: string, offset: number, length: number, backwards = false): Promise<Buffer> {
    const hit = this.find(packId, offset, length);
    if (hit) return hit;
    // Large blobs are read exactly, into memory of their own: a worker can take that over
    // without a copy (a view into a shared window would have to be copied).
    if (length >= DIRECT) return this.backend.get(names.pack(packId), { offset, length });
    for (const p of this.inflight.values()) {
      const w = await p;
      if (w && w.packId === packId && offset >= w.offset && offset + length <= w.offset + w.buf.length) {
        return w.buf.subarray(offset - w.offset, offset - w.offset + length);
      }
    }
    const start = backwards ? Math.max(0, offset + length - WINDOW) : offset;
    const key = `${packId}:${start}`;
    const p = this.backend
      .get(names.pack(packId), { offset: start, length: WINDOW })
      .then((buf) => ({ packId, offset: start, buf }))
      .catch(() => undefined); // e.g. a backend that refuses ranges past the end: read exactly
    this.inflight.set(key, p);
    const w = await p.finally(() => this.inflight.delete(key));
    if (w && w.buf.length >= offset - start + length) {
      this.windows.push(w);
      if (this.windows.length > WINDOWS) this.windows.shift();
      return w.buf.subarray(offset - start, offset - start + length);
    }
    return this.backend.get(names.pack(packId), { offset, length });
  }

  private find(packId: string, offset: number, length: number): Buffer | undefined {
    for (const w of this.windows) {
      if (w.packId === packId && offset >= w.offset && offset + length <= w.offset + w.buf.length) {
        return w.buf.subarray(offset - w.offset, offset - w.offset + length);
      }
    }
    return undefined;
  }
}
