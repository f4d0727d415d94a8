/**
 * Hand-built zstd frames for the decompression fuzz tests: RLE blocks turn 4 bytes into up to
 * 128 KiB, so a frame of a few KiB inflates to gigabytes (RFC 8878, sections 3.1.1 and 3.1.1.2).
 */
const MAGIC = 0xfd2fb528;
export const RLE_BLOCK_MAX = 128 * 1024;

/**
 * A frame of `blocks` RLE blocks of `blockSize` bytes each. `declared` writes an 8-byte
 * Frame_Content_Size (true or false: a lie is the point); undefined omits it.
 */
export function rleBomb(blocks: number, blockSize = RLE_BLOCK_MAX, declared?: number): Buffer {
  const head: number[] = [];
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(MAGIC, 0);
  head.push(...magic);
  if (declared === undefined) {
    head.push(0x00); // no content size, not single-segment: a Window_Descriptor follows
    head.push((17 - 10) << 3); // window 128 KiB
  } else {
    head.push(0xc0); // Frame_Content_Size_flag 3 (8 bytes), not single-segment
    head.push((17 - 10) << 3);
    const fcs = Buffer.alloc(8);
    fcs.writeBigUInt64LE(BigInt(declared), 0);
    head.push(...fcs);
  }
  const body = Buffer.alloc(blocks * 4);
  for (let i = 0; i < blocks; i++) {
    const last = i === blocks - 1 ? 1 : 0;
    const h = last | (1 << 1) | (blockSize << 3); // Block_Type 1 = RLE
    body.writeUIntLE(h, i * 4, 3);
    body[i * 4 + 3] = 0x61;
  }
  return Buffer.concat([Buffer.from(head), body]);
}
