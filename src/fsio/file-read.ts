import fs, { constants } from "node:fs";
import { fsPath } from "../core/names.js";

/** The metadata a backup keeps of a file (what BigIntStats gives, minus its methods, so it can
 * cross to and from worker threads). */
export interface FileStat {
  mode: bigint;
  uid: bigint;
  gid: bigint;
  size: bigint;
  nlink: bigint;
  ino: bigint;
  dev: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export function fileStat(st: fs.BigIntStats): FileStat {
  const { mode, uid, gid, size, nlink, ino, dev, mtimeNs, ctimeNs } = st;
  return { mode, uid, gid, size, nlink, ino, dev, mtimeNs, ctimeNs };
}

export type WholeRead =
  | { kind: "read"; data: Buffer; after: FileStat }
  /** Longer than `size` now: the caller reads it the general way. */
  | { kind: "grew" }
  /** Not a regular file any more. */
  | { kind: "notFile" };

/** Opens a file for readWholeFd: never through a symlink, and never blocking on a FIFO. */
export function openToRead(path: string): number {
  // O_NONBLOCK: a FIFO swapped in since lstat must not block the worker (fstat rejects it).
  return fs.openSync(fsPath(path), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
}

/**
 * Reads a small file whole (opened with openToRead, so never through a symlink swapped in after
 * the caller's lstat; `fd` is closed) and takes its metadata after the read (to notice changes).
 * Synchronous: it runs on a worker thread. With `into` (at least `size + 1` bytes) the data is a
 * view of it, else of memory of its own (not Node's shared pool, so it can be transferred).
 *
 * Reading stops once `size` bytes are in (no further call just to be told of the end): a file
 * that grew since is caught either by the byte more that was asked for or by the size its
 * metadata gives after the read.
 */
export function readWholeFd(fd: number, size: number, into?: Buffer): WholeRead {
  try {
    if (!fs.fstatSync(fd).isFile()) return { kind: "notFile" };
    const want = size + 1;
    const buf = into && into.length >= want ? into : Buffer.allocUnsafeSlow(want);
    let got = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, got, want - got, null);
      got += n;
      if (n === 0 || got >= size) break;
    }
    if (got > size) return { kind: "grew" };
    const st = fs.fstatSync(fd, { bigint: true });
    if (!st.isFile()) return { kind: "notFile" };
    if (st.size > BigInt(got)) return { kind: "grew" };
    return { kind: "read", data: buf.subarray(0, got), after: fileStat(st) };
  } finally {
    fs.closeSync(fd);
  }
}
