import { randomBytes } from "node:crypto";
import fs, { constants } from "node:fs";
import path from "node:path";
import { errnoCode } from "../core/errors.js";
import { displayName, fsPath, nameFromBytes, nameToBytes } from "../core/names.js";
import { fsetXattr } from "./native.js";

/*
 * Writing restored files. A file that anyone can see while it is written (in a folder that
 * holds other things) is written beside its destination under a temporary name and renamed
 * into place, so a crash or a damaged blob never leaves a half-written file under the real
 * name. Inside a staging folder that nothing presents (see ops/restore/staging.ts) it is
 * created under its final name with O_EXCL, with its final mode when the umask allows: the
 * rename and the chmod are then not needed. The calls are synchronous on purpose: they only
 * touch the page cache, and a trip through the thread pool for each (four to ten per file)
 * costs more than the call itself. They run on a blob worker (files whose data comes from one
 * read) or on the main thread (files fed by several reads, see repo/file-restorer.ts).
 */

/** Owner, mode and modification time to give a restored file. */
export interface FileMeta {
  mode: number;
  uid: number;
  gid: number;
  /** Nanoseconds since the epoch, as a decimal string (tree format). */
  mtimeNs: string;
  /** chown only as root (elsewhere it would fail for other owners), and only when the new
   * file's owner would not already be right. */
  chown: boolean;
  /** false: the file is created with its final mode (`mode` has no set-id or sticky bit and
   * the umask removes none of its bits), so no fchmod is needed. Default true. */
  chmod?: boolean;
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

/** Whether a name is one `tempPathFor` makes: what a restore killed while writing leaves
 * behind, and the next run removes. */
export function isTempName(name: string): boolean {
  return TEMP_NAME.test(name);
}
const TEMP_NAME = /^\..*\.lifeboat-[0-9a-f]{12}[0-9a-z]+$/s;

/** At most 100 bytes of the name (names are limited in bytes: 100 CJK characters are 300). A
 * cut through a character leaves bytes that are not UTF-8, which is fine for a temporary name. */
function shortName(name: string): string {
  const bytes = nameToBytes(name);
  return bytes.length <= 100 ? name : nameFromBytes(bytes.subarray(0, 100));
}

const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** A restored file being written: `path` is where (its final name or a temporary one). */
export interface NewFile {
  fd: number;
  path: string;
}

/**
 * Creates a file to restore, exclusively (O_EXCL: never through or over anything that exists),
 * `direct`ly under its final name or under a temporary one renamed into place by
 * `finishNewFile`. With `meta.chmod === false` it gets its final mode at once.
 */
export function createNewFile(dest: string, direct: boolean, meta: FileMeta): NewFile {
  const p = direct ? dest : tempPathFor(dest);
  const fd = fs.openSync(fsPath(p), CREATE, meta.chmod === false ? meta.mode & 0o777 : 0o600);
  return { fd, path: p };
}

/** Opens a file `createNewFile` made again (after its descriptor was closed to bound how many
 * are open). O_NOFOLLOW: a symlink swapped in meanwhile fails instead of being written through. */
export function reopenNewFile(f: { path: string }): number {
  return fs.openSync(fsPath(f.path), constants.O_WRONLY | constants.O_NOFOLLOW);
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
  if (meta.chmod !== false) fs.fchmodSync(fd, meta.mode & 0o7777);
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
 * Finishes a new file that holds `size` bytes: sets its size when it ends in a hole, its
 * metadata, closes it and (when written under a temporary name) renames it to `dest`. On
 * failure the file is removed. Returns the attributes that could not be set (see applyMetaFd).
 */
export function finishNewFile(
  f: NewFile,
  dest: string,
  size: number,
  holes: boolean,
  meta: FileMeta,
): string[] {
  let problems: string[];
  try {
    if (holes) fs.ftruncateSync(f.fd, size);
    problems = applyMetaFd(f.fd, meta, displayName(dest));
  } catch (e) {
    discardNewFile(f);
    throw e;
  }
  try {
    fs.closeSync(f.fd);
    f.fd = -1;
    if (f.path !== dest) fs.renameSync(fsPath(f.path), fsPath(dest));
  } catch (e) {
    fs.rmSync(fsPath(f.path), { force: true });
    throw e;
  }
  return problems;
}

/** Closes a new file's descriptor for now (see reopenNewFile). */
export function closeNewFile(f: NewFile): void {
  if (f.fd < 0) return;
  try {
    fs.closeSync(f.fd);
  } catch {}
  f.fd = -1;
}

/** Removes what may be at `p` (a file a dead worker may have begun), ignoring failures. */
export function removeQuietly(p: string): void {
  try {
    fs.rmSync(fsPath(p), { force: true });
  } catch {}
}

/** Closes (if open) and removes a new file after a failure. */
export function discardNewFile(f: NewFile): void {
  if (f.fd >= 0) {
    try {
      fs.closeSync(f.fd);
    } catch {}
    f.fd = -1;
  }
  fs.rmSync(fsPath(f.path), { force: true });
}

/**
 * The process's umask, read without changing it (process.umask() with no argument writes it
 * twice, racing with other threads): undefined when it cannot be known (then every restored
 * file gets an fchmod).
 */
export function currentUmask(): number | undefined {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(fs.readFileSync("/proc/self/status", "latin1"));
    return m ? Number.parseInt(m[1]!, 8) : undefined;
  } catch {
    return undefined;
  }
}
