import type { BlobLocation, BlobTypeValue } from "../../repo/blob.js";
import type { IndexedBlob } from "../../repo/master-index.js";

/** type, compression, id (32), offset, length, raw length: as a pack header lists a blob. */
const ENTRY = 46;

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
      buf[o] = b.type;
      buf[o + 1] = b.compression;
      buf.set(b.id, o + 2);
      buf.writeUInt32LE(b.offset, o + 34);
      buf.writeUInt32LE(b.length, o + 38);
      buf.writeUInt32LE(b.rawLength, o + 42);
      o += ENTRY;
    }
    this.packs.set(packId, buf);
  }

  /** The pack's blobs, in the order the index listed them; [] for a pack it does not list. */
  get(packId: string): IndexedBlob[] {
    const buf = this.packs.get(packId);
    const out: IndexedBlob[] = [];
    if (!buf) return out;
    for (let o = 0; o < buf.length; o += ENTRY)
      out.push({
        type: buf[o]! as BlobTypeValue,
        compression: buf[o + 1]!,
        id: Buffer.from(buf.subarray(o + 2, o + 34)),
        offset: buf.readUInt32LE(o + 34),
        length: buf.readUInt32LE(o + 38),
        rawLength: buf.readUInt32LE(o + 42),
        packId,
      });
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
