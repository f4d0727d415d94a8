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

/**
 * Reads a small file whole, without following a symlink swapped in after the caller's lstat,
 * and takes its metadata after the read (to notice changes). One byte more than `size` is
 * asked for, to notice a file that grew. Synchronous: it runs on a worker thread. The data is
 * a view of memory of its own (not Node's shared pool), so it can be transferred.
 */
export function readWholeSync(path: string, size: number): WholeRead {
  // O_NONBLOCK: a FIFO swapped in since lstat must not block the worker (fstat rejects it).
  const fd = fs.openSync(fsPath(path), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!fs.fstatSync(fd).isFile()) return { kind: "notFile" };
    const buf = Buffer.allocUnsafeSlow(size + 1);
    let got = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, got, buf.length - got, null);
      if (n === 0) break;
      got += n;
      if (got === buf.length) break;
    }
    if (got > size) return { kind: "grew" };
    const st = fs.fstatSync(fd, { bigint: true });
    if (!st.isFile()) return { kind: "notFile" };
    return { kind: "read", data: buf.subarray(0, got), after: fileStat(st) };
  } finally {
    fs.closeSync(fd);
  }
}
