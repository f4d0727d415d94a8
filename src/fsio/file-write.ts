import { randomBytes } from "node:crypto";
import fs, { constants } from "node:fs";
import path from "node:path";
import { CorruptionError, errnoCode } from "../core/errors.js";
import { displayName, fsPath, nameFromBytes, nameToBytes } from "../core/names.js";
import { fsetXattr } from "./native.js";

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
  /** Extended attributes to set (value in base64), after owner and mode: chown clears
   * security.capability, and an ACL sets the group bits of the mode. */
  xattrs?: { name: string; value: string }[];
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

/** A fresh temporary name beside `dest` (hidden, recognisable, unique). Paths are in the form
 * of core/names.ts, as every path here. */
export function tempPathFor(dest: string): string {
  const dir = path.dirname(dest);
  return path.join(dir, `.${shortName(path.basename(dest))}.lifeboat-${tag}${(counter++).toString(36)}`);
}

/** At most 100 bytes of the name (names are limited in bytes: 100 CJK characters are 300). A
 * cut through a character leaves bytes that are not UTF-8, which is fine for a temporary name. */
function shortName(name: string): string {
  const bytes = nameToBytes(name);
  return bytes.length <= 100 ? name : nameFromBytes(bytes.subarray(0, 100));
}

/** Creates the temporary file exclusively (never follows or reuses an existing path). */
export function openTemp(tmp: string): number {
  return fs.openSync(
    fsPath(tmp),
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
}

/**
 * Owner, then mode (chown may clear set-id bits), then extended attributes, then times, on the
 * open descriptor. An attribute that cannot be set does not fail the file: what went wrong is
 * returned, one line per attribute, for the caller to report.
 */
export function applyMetaFd(fd: number, meta: FileMeta, label = "file"): string[] {
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
  const problems: string[] = [];
  for (const x of meta.xattrs ?? []) {
    try {
      fsetXattr(fd, x.name, Buffer.from(x.value, "base64"), label);
    } catch (e) {
      problems.push(`extended attribute ${displayName(x.name)} not restored: ${(e as Error).message}`);
    }
  }
  fs.futimesSync(fd, secs, secs);
  return problems;
}

/**
 * Finishes a temporary file that holds `size` bytes: sets its size when it ends in a hole,
 * its metadata, closes it and renames it to `dest`. On failure the temporary file is removed.
 * Returns the attributes that could not be set (see applyMetaFd).
 */
export function finishTemp(
  fd: number,
  tmp: string,
  dest: string,
  size: number,
  holes: boolean,
  meta: FileMeta,
): string[] {
  let problems: string[];
  try {
    if (holes) fs.ftruncateSync(fd, size);
    problems = applyMetaFd(fd, meta, displayName(dest));
  } catch (e) {
    discardTemp(fd, tmp);
    throw e;
  }
  try {
    fs.closeSync(fd);
  } catch (e) {
    fs.rmSync(fsPath(tmp), { force: true });
    throw e;
  }
  try {
    fs.renameSync(fsPath(tmp), fsPath(dest));
  } catch (e) {
    fs.rmSync(fsPath(tmp), { force: true });
    throw e;
  }
  return problems;
}

/** Closes and removes a temporary file after a failure. */
export function discardTemp(fd: number, tmp: string): void {
  try {
    fs.closeSync(fd);
  } catch {}
  fs.rmSync(fsPath(tmp), { force: true });
}

/**
 * Writes `count` pieces in order as the new file `dest` (through a temporary file), with
 * `meta`; `piece(i)` yields the i-th (so they are decoded one at a time). The total must be
 * `size`, or nothing is renamed into place; `label` names the file in that error. Returns the
 * attributes that could not be set (see applyMetaFd).
 */
export function writeNewFile(
  dest: string,
  count: number,
  piece: (i: number) => Uint8Array,
  size: number,
  meta: FileMeta,
  label: string,
): string[] {
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
  return finishTemp(fd, tmp, dest, position, holes, meta);
}
