import { randomBytes } from "node:crypto";
import fs, { constants } from "node:fs";
import path from "node:path";
import { CorruptionError, errnoCode } from "../core/errors.js";

/*
 * Writing restored files. A file is written beside its destination under a temporary name and
 * renamed into place, so a crash or a damaged blob never leaves a half-written file under the
 * real name. The calls are synchronous on purpose: they only touch the page cache, and a trip
 * through the thread pool for each (about ten per file) costs more than the call itself. They
 * run on the main thread (large files) or on a blob worker (small files, see BlobPool).
 */

/** Owner, mode and modification time to give a restored file. */
export interface FileMeta {
  mode: number;
  uid: number;
  gid: number;
  /** Nanoseconds since the epoch, as a decimal string (tree format). */
  mtimeNs: string;
  /** chown only as root (elsewhere it would fail for other owners). */
  chown: boolean;
}

let zeroes = Buffer.alloc(0);

/** Whether a buffer of at least 4 KiB is all zero bytes (a memcmp against a shared zero buffer);
 * restores leave such runs as holes (sparse files). */
export function isAllZero(b: Uint8Array): boolean {
  if (b.length < 4096) return false;
  if (zeroes.length < b.length) zeroes = Buffer.alloc(b.length);
  return Buffer.compare(b, zeroes.subarray(0, b.length)) === 0;
}

/** pwrite until the whole buffer is written (a single call may write less). */
export function writeAllSync(fd: number, buf: Uint8Array, position: number): void {
  for (let done = 0; done < buf.length; ) {
    done += fs.writeSync(fd, buf, done, buf.length - done, position + done);
  }
}

/**
 * Writes a restored blob at `position` of the open file `fd`, unless it is all zeroes: then it
 * is left as a hole and the caller sets the file's size at the end. Returns whether it was.
 */
export function writeOrHole(fd: number, buf: Uint8Array, position: number): boolean {
  if (isAllZero(buf)) return true;
  writeAllSync(fd, buf, position);
  return false;
}

/** Per thread: a random tag drawn once and a counter make temporary names unique without
 * asking for randomness for every file (O_EXCL catches the impossible clash anyway). */
const tag = randomBytes(6).toString("hex");
let counter = 0;

/** A fresh temporary name beside `dest` (hidden, recognisable, unique). */
export function tempPathFor(dest: string): string {
  const dir = path.dirname(dest);
  return path.join(dir, `.${shortName(path.basename(dest))}.lifeboat-${tag}${(counter++).toString(36)}`);
}

/** At most 100 bytes of UTF-8 (names are limited in bytes: 100 CJK characters are 300). */
function shortName(name: string): string {
  if (Buffer.byteLength(name) <= 100) return name;
  let out = "";
  let bytes = 0;
  for (const ch of name) {
    bytes += Buffer.byteLength(ch);
    if (bytes > 100) break;
    out += ch;
  }
  return out;
}

/** Creates the temporary file exclusively (never follows or reuses an existing path). */
export function openTemp(tmp: string): number {
  return fs.openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
}

/** Owner, then mode (chown may clear set-id bits), then times, on the open descriptor. */
export function applyMetaFd(fd: number, meta: FileMeta): void {
  const ns = BigInt(meta.mtimeNs);
  const secs = Number(ns / 1_000_000_000n) + Number(ns % 1_000_000_000n) / 1e9;
  if (meta.chown) {
    try {
      fs.fchownSync(fd, meta.uid, meta.gid);
    } catch (e) {
      if (errnoCode(e) !== "EPERM" && errnoCode(e) !== "EINVAL") throw e;
    }
  }
  fs.fchmodSync(fd, meta.mode & 0o7777);
  fs.futimesSync(fd, secs, secs);
}

/**
 * Finishes a temporary file that holds `size` bytes: sets its size when it ends in a hole,
 * its metadata, closes it and renames it to `dest`. On failure the temporary file is removed.
 */
export function finishTemp(
  fd: number,
  tmp: string,
  dest: string,
  size: number,
  holes: boolean,
  meta: FileMeta,
): void {
  try {
    if (holes) fs.ftruncateSync(fd, size);
    applyMetaFd(fd, meta);
  } catch (e) {
    discardTemp(fd, tmp);
    throw e;
  }
  try {
    fs.closeSync(fd);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  try {
    fs.renameSync(tmp, dest);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Closes and removes a temporary file after a failure. */
export function discardTemp(fd: number, tmp: string): void {
  try {
    fs.closeSync(fd);
  } catch {}
  fs.rmSync(tmp, { force: true });
}

/**
 * Writes `count` pieces in order as the new file `dest` (through a temporary file), with
 * `meta`; `piece(i)` yields the i-th (so they are decoded one at a time). The total must be
 * `size`, or nothing is renamed into place; `label` names the file in that error.
 */
export function writeNewFile(
  dest: string,
  count: number,
  piece: (i: number) => Uint8Array,
  size: number,
  meta: FileMeta,
  label: string,
): void {
  const tmp = tempPathFor(dest);
  const fd = openTemp(tmp);
  let position = 0;
  let holes = false;
  try {
    for (let i = 0; i < count; i++) {
      const buf = piece(i);
      if (writeOrHole(fd, buf, position)) holes = true;
      position += buf.length;
    }
    if (position !== size) {
      throw new CorruptionError(label, `restored ${position} bytes but the snapshot says ${size}`);
    }
  } catch (e) {
    discardTemp(fd, tmp);
    throw e;
  }
  finishTemp(fd, tmp, dest, position, holes, meta);
}
