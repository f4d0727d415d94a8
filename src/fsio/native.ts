import { createRequire } from "node:module";
import path from "node:path";
import { getSystemErrorName } from "node:util";
import { fsPath, nameFromBytes, nameToBytes } from "../core/names.js";
import { packageRoot } from "./package-root.js";

/**
 * The native helper (native/lifeboat_fs.c, built by scripts/build-native.mjs): what Node's fs
 * lacks — extended attributes without following symlinks, mknod, chmod that refuses a symlink,
 * lseek to the data and holes of a sparse file — and glibc's malloc_trim.
 *
 * Why an addon of our own: Node has no xattr API, and the npm bindings do not fit. fs-xattr
 * (0.4) follows symlinks, takes paths as UTF-8 strings only and races between the size and
 * the read; @napi-rs/xattr (1.0) takes UTF-8 strings only and turns every error into "no
 * attribute". A name that is not UTF-8 could not be reached at all, and an unreadable
 * attribute would vanish without a word. Running getfattr/setfattr instead costs a process per
 * batch, needs the `attr` package on every host, and cannot be handed non-UTF-8 paths as
 * arguments. The addon is about 200 lines of C over Node-API (ABI-stable across Node 20, 22
 * and 24, usable from worker threads); each call is one or two system calls.
 */
interface Binding {
  listXattrs(path: Buffer): Buffer;
  getXattr(path: Buffer, name: Buffer): Buffer | null;
  setXattr(path: Buffer, name: Buffer, value: Buffer): void;
  fsetXattr(fd: number, name: Buffer, value: Buffer): void;
  mknod(path: Buffer, mode: number, rdev: bigint): void;
  chmodNoFollow(path: Buffer, mode: number): void;
  seekSparse(fd: number, offset: number, hole: boolean): number;
  /** Absent from a build made before it existed. */
  trimMemory?(): void;
  /** Absent from a build made before it existed. */
  willNeed?(fd: number): void;
}

let binding: Binding | undefined;
let loadError: string | undefined;

function load(): Binding | undefined {
  if (binding || loadError) return binding;
  try {
    binding = createRequire(import.meta.url)(
      path.join(packageRoot(), "native", "build", "Release", "lifeboat_fs.node"),
    ) as Binding;
  } catch (e) {
    loadError =
      process.platform !== "linux"
        ? `extended attributes, FIFOs and device nodes are supported on Linux only (this is ${process.platform})`
        : `the native helper is not built (${(e as Error).message.split("\n")[0]}): run \`npm rebuild lifeboat\` (needs a C compiler)`;
  }
  return binding;
}

/** Why the helper is not available, or undefined when it is. */
export function nativeUnavailable(): string | undefined {
  load();
  return loadError;
}

function need(): Binding {
  const b = load();
  if (!b) throw Object.assign(new Error(loadError), { code: "ENOTSUP" });
  return b;
}

/** The helper's errors as Node's: `code` (ENOTSUP, EPERM, ...), path in the message. */
function call<T>(what: string, path: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    const errno = (e as { errno?: number }).errno;
    if (typeof errno !== "number") throw e;
    const code = getSystemErrorName(-errno);
    throw Object.assign(
      new Error(`${code}: ${(e as Error).message.replace(/^[^:]*: /, "")}, ${what} '${path}'`),
      {
        code,
        errno: -errno,
        syscall: (e as { syscall?: string }).syscall,
        path,
      },
    );
  }
}

const bytesOf = (p: string) => {
  const b = fsPath(p);
  return typeof b === "string" ? Buffer.from(b, "utf8") : b;
};

/** One extended attribute, value as bytes. */
export interface RawXattr {
  /** In the form of core/names.ts. */
  name: string;
  value: Buffer;
}

/** Errors that mean "this file system keeps no extended attributes": none to read. */
const NO_XATTRS = new Set(["ENOTSUP", "EOPNOTSUPP"]);

/**
 * Every extended attribute of `path` itself (a symlink's own, never its target's), in every
 * namespace this process may read (`trusted.` only as root). An attribute removed between the
 * listing and its read is left out, as it would be had the listing come later.
 */
export function readXattrs(path: string): RawXattr[] {
  const b = need();
  const p = bytesOf(path);
  let list: Buffer;
  try {
    list = call("llistxattr", path, () => b.listXattrs(p));
  } catch (e) {
    if (NO_XATTRS.has((e as { code?: string }).code ?? "")) return [];
    throw e;
  }
  const out: RawXattr[] = [];
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    if (list[i] !== 0) continue;
    const name = list.subarray(start, i);
    start = i + 1;
    if (name.length === 0) continue;
    const value = call("lgetxattr", path, () => b.getXattr(p, name));
    if (value) out.push({ name: nameFromBytes(name), value });
  }
  return out;
}

/** Sets one attribute on `path` itself (never through a symlink). */
export function setXattr(path: string, name: string, value: Buffer): void {
  const b = need();
  call("lsetxattr", path, () => b.setXattr(bytesOf(path), nameToBytes(name), value));
}

/** Sets one attribute on an open file. */
export function fsetXattr(fd: number, name: string, value: Buffer, label: string): void {
  const b = need();
  call("fsetxattr", label, () => b.fsetXattr(fd, nameToBytes(name), value));
}

export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

/** Creates a FIFO or device node (`type` one of S_IFIFO, S_IFCHR, S_IFBLK). */
export function makeNode(path: string, type: number, mode: number, rdev: bigint): void {
  const b = need();
  call("mknod", path, () => b.mknod(bytesOf(path), type | (mode & 0o7777), rdev));
}

/** chmod of `path` itself; fails (ELOOP) if a symlink was swapped in. */
export function chmodNoFollow(path: string, mode: number): void {
  const b = need();
  call("chmod", path, () => b.chmodNoFollow(bytesOf(path), mode & 0o7777));
}

/**
 * Where the next data (`hole` false) or hole (`hole` true) of an open file starts at or after
 * `offset` (lseek SEEK_DATA / SEEK_HOLE; Node's fs has no lseek); -1 when no data follows.
 * Undefined when it cannot be asked (no native helper, a file system without the calls): the
 * caller then reads every byte, holes included, which gives the same content.
 */
export function seekSparse(fd: number, offset: number, hole: boolean): number | undefined {
  const b = load();
  if (!b) return undefined;
  try {
    return b.seekSparse(fd, offset, hole);
  } catch {
    return undefined;
  }
}

/**
 * Hands memory the allocator holds free back to the system (glibc's malloc_trim): for a thread
 * that has just finished with large buffers it will not need again soon. Nothing without the
 * helper.
 */
export function trimMemory(): void {
  load()?.trimMemory?.();
}

/**
 * Asks the kernel to start reading file `fd` into the page cache and returns at once
 * (posix_fadvise WILLNEED): a batch of small files advised before the first is read has its
 * reads in flight together. Nothing without the helper (or with a build from before it).
 */
export function willNeed(fd: number): void {
  load()?.willNeed?.(fd);
}
