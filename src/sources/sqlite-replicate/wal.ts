import type { FileHandle } from "node:fs/promises";

/**
 * Reading SQLite's write-ahead log (https://www.sqlite.org/fileformat.html#the_write_ahead_log).
 *
 * WAL header, 32 bytes, big-endian: magic (0x377f0682: checksums over little-endian words,
 * 0x377f0683: big-endian words) | format version 3007000 | page size | checkpoint sequence |
 * salt-1 | salt-2 | checksum-1 | checksum-2 (over the first 24 bytes).
 * Frame = 24-byte header + one page: page number | database size in pages after a commit
 * (non-zero only in a transaction's last frame, the commit frame) | salt-1 | salt-2 |
 * checksum-1 | checksum-2. The checksums are cumulative: each frame's covers its first 8 header
 * bytes and its page, starting from the previous frame's (the header's for the first frame).
 * A frame belongs to the log only if its salts equal the header's and its checksum matches, so
 * stale frames of an earlier log cycle and half-written frames end the valid log.
 */

export const WAL_HEADER = 32;
export const FRAME_HEADER = 24;
const MAGIC_LE = 0x377f0682;
const MAGIC_BE = 0x377f0683;

export interface WalHeader {
  bigEndian: boolean;
  pageSize: number;
  checkpointSeq: number;
  salt1: number;
  salt2: number;
  /** The running checksum after the header: the seed of the first frame's. */
  checksum: [number, number];
}

/**
 * SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from `s`.
 * Words are read in the byte order the magic number selects.
 */
export function walChecksum(bigEndian: boolean, data: Buffer, s: [number, number]): [number, number] {
  let s0 = s[0];
  let s1 = s[1];
  const n = data.length;
  if (bigEndian) {
    for (let i = 0; i < n; i += 8) {
      s0 = (s0 + data.readUInt32BE(i) + s1) >>> 0;
      s1 = (s1 + data.readUInt32BE(i + 4) + s0) >>> 0;
    }
  } else {
    for (let i = 0; i < n; i += 8) {
      s0 = (s0 + data.readUInt32LE(i) + s1) >>> 0;
      s1 = (s1 + data.readUInt32LE(i + 4) + s0) >>> 0;
    }
  }
  return [s0, s1];
}

/** The header of a WAL file, or undefined when it is absent, short or fails its checksum. */
export function parseWalHeader(buf: Buffer): WalHeader | undefined {
  if (buf.length < WAL_HEADER) return undefined;
  const magic = buf.readUInt32BE(0);
  if (magic !== MAGIC_LE && magic !== MAGIC_BE) return undefined;
  const bigEndian = magic === MAGIC_BE;
  const pageSize = buf.readUInt32BE(8);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) return undefined;
  const checksum = walChecksum(bigEndian, buf.subarray(0, 24), [0, 0]);
  if (checksum[0] !== buf.readUInt32BE(24) || checksum[1] !== buf.readUInt32BE(28)) return undefined;
  return {
    bigEndian,
    pageSize,
    checkpointSeq: buf.readUInt32BE(12),
    salt1: buf.readUInt32BE(16),
    salt2: buf.readUInt32BE(20),
    checksum,
  };
}

export async function readWalHeader(fh: FileHandle): Promise<WalHeader | undefined> {
  const buf = Buffer.alloc(WAL_HEADER);
  const { bytesRead } = await fh.read(buf, 0, WAL_HEADER, 0);
  return parseWalHeader(buf.subarray(0, bytesRead));
}

/** What a scan found: the committed frames after `from`, up to the last commit frame. */
export interface WalScan {
  /** Byte offset just after the last valid commit frame (= `from` when there is none). */
  end: number;
  /** Running checksum at `end` (to continue the next scan from there). */
  checksum: [number, number];
  /** Every page written by the committed frames, each in its last committed version. */
  pages: Map<number, Buffer>;
  /** Database size in pages after the last commit (0 when there was no commit). */
  dbPages: number;
  /** Smallest database size after any commit of the scan: pages above it that were not written
   * again afterwards are not in `pages` (a restore cuts the file to it first). */
  minDbPages: number;
  frames: number;
  commits: number;
}

/** Frames per read; about 4 MiB at 4 KiB pages. */
const READ_FRAMES = 1000;

/**
 * Reads the valid frames of the log from byte offset `from` (a frame boundary, whose running
 * checksum is `checksum`) up to the last commit frame. Frames of an uncommitted (or half-written)
 * transaction at the end are left for the next scan.
 */
export async function scanWal(
  fh: FileHandle,
  hdr: WalHeader,
  from: number,
  checksum: [number, number],
): Promise<WalScan> {
  const frameSize = FRAME_HEADER + hdr.pageSize;
  const committed = new Map<number, Buffer>();
  let pending = new Map<number, Buffer>();
  let pos = from;
  let sum = checksum;
  let result: WalScan = {
    end: from,
    checksum,
    pages: committed,
    dbPages: 0,
    minDbPages: 0,
    frames: 0,
    commits: 0,
  };
  let minDb = Number.POSITIVE_INFINITY;
  let frames = 0;
  let commits = 0;
  const buf = Buffer.allocUnsafe(frameSize * READ_FRAMES);
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    const whole = Math.floor(bytesRead / frameSize);
    for (let i = 0; i < whole; i++) {
      const f = buf.subarray(i * frameSize, (i + 1) * frameSize);
      if (f.readUInt32BE(8) !== hdr.salt1 || f.readUInt32BE(12) !== hdr.salt2) return result;
      const pgno = f.readUInt32BE(0);
      if (pgno === 0) return result;
      const next = walChecksum(
        hdr.bigEndian,
        f.subarray(FRAME_HEADER),
        walChecksum(hdr.bigEndian, f.subarray(0, 8), sum),
      );
      if (next[0] !== f.readUInt32BE(16) || next[1] !== f.readUInt32BE(20)) return result;
      sum = next;
      pos += frameSize;
      frames++;
      // A copy: the read buffer is reused.
      pending.set(pgno, Buffer.from(f.subarray(FRAME_HEADER)));
      const commitSize = f.readUInt32BE(4);
      if (commitSize !== 0) {
        commits++;
        for (const [p, page] of pending) committed.set(p, page);
        pending = new Map();
        // The database shrank (VACUUM, incremental vacuum): pages past the end are gone, unless
        // a later commit writes them again.
        if (commitSize < result.dbPages)
          for (const p of committed.keys()) if (p > commitSize) committed.delete(p);
        minDb = Math.min(minDb, commitSize);
        result = {
          end: pos,
          checksum: sum,
          pages: committed,
          dbPages: commitSize,
          minDbPages: minDb,
          frames,
          commits,
        };
      }
    }
    if (whole < READ_FRAMES) return result;
  }
}
