import {
  BLOB_ENTRY,
  type BlobLocation,
  type BlobTypeValue,
  readBlobEntry,
  writeBlobEntry,
} from "../../repo/blob.js";
import type { IndexedBlob } from "../../repo/master-index.js";

const ENTRY = BLOB_ENTRY;

/**
 * What the index files say each pack holds, kept as one buffer of 46 bytes a blob per pack and
 * made into objects only for the pack being read: `check` holds every blob of the repository
 * at once, and as objects (with their ids as Buffers) 100,000 blobs took about 30 MiB.
 */
export class PackBlobs {
  private readonly packs = new Map<string, Buffer>();

  has(packId: string): boolean {
    return this.packs.has(packId);
  }

  set(packId: string, blobs: readonly BlobLocation[]): void {
    const buf = Buffer.allocUnsafe(blobs.length * ENTRY);
    let o = 0;
    for (const b of blobs) {
      writeBlobEntry(buf, o, b);
      o += ENTRY;
    }
    this.packs.set(packId, buf);
  }

  /** The pack's blobs, in the order the index listed them; [] for a pack it does not list. */
  get(packId: string): IndexedBlob[] {
    const buf = this.packs.get(packId);
    const out: IndexedBlob[] = [];
    if (!buf) return out;
    for (let o = 0; o < buf.length; o += ENTRY) {
      // Field by field, not spread: V8 gives spread copies a hidden class each once a call site
      // has seen many (docs/benchmarks.md, "Memory").
      const e = readBlobEntry(buf, o);
      out.push({
        type: e.type,
        compression: e.compression,
        id: e.id,
        offset: e.offset,
        length: e.length,
        rawLength: e.rawLength,
        packId,
      });
    }
    return out;
  }

  /** Each blob id of a pack, without making objects of the rest. */
  *ids(packId: string): IterableIterator<{ id: Buffer; type: BlobTypeValue }> {
    const buf = this.packs.get(packId);
    if (!buf) return;
    for (let o = 0; o < buf.length; o += ENTRY)
      yield { id: buf.subarray(o + 2, o + 34), type: buf[o]! as BlobTypeValue };
  }

  keys(): IterableIterator<string> {
    return this.packs.keys();
  }
}
