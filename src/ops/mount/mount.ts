import { existsSync, promises as fs } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { LifeboatError } from "../../core/errors.js";
import { Errno, errnoOf, FsError, type FsStat, type SnapshotFs } from "./mount-fs.js";

/**
 * Serves a SnapshotFs through FUSE with the fuse-native binding (libfuse 2). The binding is
 * loaded only here, when a mount is asked for, so the rest of the CLI works on machines without
 * libfuse. Everything that would change the file system answers EROFS.
 */

type Cb = (...args: unknown[]) => void;

interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}
interface FuseConstructor {
  new (
    mnt: string,
    ops: Record<string, (...args: never[]) => void>,
    opts: Record<string, unknown>,
  ): FuseInstance;
  unmount(mnt: string, cb: (err: Error | null) => void): void;
}

/** Debian packages that provide what a FUSE mount needs at run time. */
export const FUSE_PACKAGES = { lib: "libfuse2", fusermount: "fuse" } as const;

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin")
    .split(":")
    .some((d) => d !== "" && existsSync(path.join(d, cmd)));
}

/** Checks what mounting needs and loads the binding; each missing piece is a clear error. */
export function loadFuse(): FuseConstructor {
  if (process.platform !== "linux")
    throw new LifeboatError("NOT_FOUND", `mount works on Linux only (this is ${process.platform})`);
  if (!existsSync("/dev/fuse")) {
    throw new LifeboatError(
      "NOT_FOUND",
      "/dev/fuse is missing: this kernel or container offers no FUSE",
      "load the module (`modprobe fuse`), or start the container with `--device /dev/fuse --cap-add SYS_ADMIN`",
    );
  }
  if (!onPath("fusermount")) {
    throw new LifeboatError(
      "NOT_FOUND",
      "fusermount is missing (it mounts and unmounts FUSE file systems)",
      `install the Debian package \`${FUSE_PACKAGES.fusermount}\`: apt-get install ${FUSE_PACKAGES.fusermount} ${FUSE_PACKAGES.lib}`,
    );
  }
  try {
    return createRequire(import.meta.url)("fuse-native") as FuseConstructor;
  } catch (e) {
    const msg = (e as Error).message ?? String(e);
    if (/libfuse\.so/.test(msg)) {
      throw new LifeboatError(
        "NOT_FOUND",
        "the FUSE library libfuse.so.2 is missing",
        `install the Debian package \`${FUSE_PACKAGES.lib}\`: apt-get install ${FUSE_PACKAGES.lib} ${FUSE_PACKAGES.fusermount}`,
        e,
      );
    }
    throw new LifeboatError(
      "NOT_FOUND",
      `the FUSE binding (fuse-native) cannot be loaded: ${msg.split("\n")[0]}`,
      "reinstall dependencies with `npm ci`",
      e,
    );
  }
}

export interface Mounted {
  mountpoint: string;
  /** Unmounts (lazily, so open files do not keep it busy). Safe to call more than once. */
  unmount(): Promise<void>;
}

/**
 * Mounts `sfs` at `mountpoint` (an existing empty folder). `onError` hears about failures while
 * serving (damaged data, unreachable storage): the reader gets EIO, the user gets the reason.
 */
export async function mountSnapshotFs(
  sfs: SnapshotFs,
  mountpoint: string,
  onError: (message: string) => void,
): Promise<Mounted> {
  const Fuse = loadFuse();
  const mnt = path.resolve(mountpoint);
  // fuse-native unmounts with a shell command line (`fusermount -uz "MNT"`): refuse anything the
  // shell would expand inside double quotes.
  if (/[$`"\\\n]/.test(mnt))
    throw new LifeboatError(
      "USAGE",
      `mount point ${JSON.stringify(mnt)} has a character ($ \` " \\ or a newline) that mount refuses`,
    );
  let st: import("node:fs").Stats;
  try {
    st = await fs.stat(mnt);
  } catch {
    throw new LifeboatError("NOT_FOUND", `mount point ${mnt} does not exist`, `create it: mkdir -p ${mnt}`);
  }
  if (!st.isDirectory()) throw new LifeboatError("USAGE", `mount point ${mnt} is not a folder`);

  const fail = (cb: Cb, what: string, e: unknown) => {
    const errno = errnoOf(e);
    if (!(e instanceof FsError) || errno === Errno.EIO)
      onError(`${what}: ${(e as Error)?.message ?? String(e)}`);
    cb(errno);
  };
  const rofs = (...args: unknown[]) => (args[args.length - 1] as Cb)(Errno.EROFS);
  const toStat = (s: FsStat) => ({
    ...s,
    mtime: new Date(s.mtime),
    atime: new Date(s.atime),
    ctime: new Date(s.ctime),
  });
  const O_ACCMODE = 3;
  const W_OK = 2;

  const ops = {
    getattr: (p: string, cb: Cb) => {
      sfs.getattr(p).then(
        (s) => cb(0, toStat(s)),
        (e) => fail(cb, p, e),
      );
    },
    access: (p: string, mode: number, cb: Cb) => {
      sfs.getattr(p).then(
        () => cb(mode & W_OK ? Errno.EROFS : 0),
        (e) => fail(cb, p, e),
      );
    },
    readdir: (p: string, cb: Cb) => {
      sfs.readdir(p).then(
        (names) => cb(0, names),
        (e) => fail(cb, p, e),
      );
    },
    listxattr: (p: string, cb: Cb) => {
      sfs.listxattr(p).then(
        (names) => cb(0, names),
        (e) => fail(cb, p, e),
      );
    },
    // fuse-native answers ENODATA for an empty value.
    getxattr: (p: string, name: string, _position: number, cb: Cb) => {
      sfs.getxattr(p, name).then(
        (v) => cb(0, v ?? null),
        (e) => fail(cb, p, e),
      );
    },
    readlink: (p: string, cb: Cb) => {
      sfs.readlink(p).then(
        (t) => cb(0, t),
        (e) => fail(cb, p, e),
      );
    },
    open: (p: string, flags: number, cb: Cb) => {
      if ((flags & O_ACCMODE) !== 0) return cb(Errno.EROFS);
      sfs.openFile(p).then(
        (fd) => cb(0, fd),
        (e) => fail(cb, p, e),
      );
    },
    // fuse-native takes the byte count (or a negative errno) as the callback's only argument.
    read: (p: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
      sfs.read(fd, buf, len, pos).then(
        (n) => cb(n),
        (e) => fail(cb, p, e),
      );
    },
    release: (_p: string, fd: number, cb: Cb) => {
      sfs.release(fd);
      cb(0);
    },
    statfs: (_p: string, cb: Cb) => {
      cb(0, {
        bsize: 4096,
        frsize: 4096,
        blocks: 0,
        bfree: 0,
        bavail: 0,
        files: 0,
        ffree: 0,
        favail: 0,
        namemax: 255,
      });
    },
    write: rofs,
    create: rofs,
    truncate: rofs,
    ftruncate: rofs,
    unlink: rofs,
    rename: rofs,
    link: rofs,
    symlink: rofs,
    mkdir: rofs,
    rmdir: rofs,
    mknod: rofs,
    chmod: rofs,
    chown: rofs,
    utimens: rofs,
    setxattr: rofs,
    removexattr: rofs,
  };

  // Reads from remote storage can be slow: give each request two minutes before EIO-by-timeout.
  const fuse = new Fuse(mnt, ops as unknown as Record<string, (...args: never[]) => void>, {
    force: true,
    fsname: "lifeboat",
    subtype: "lifeboat",
    timeout: 120_000,
  });
  await new Promise<void>((resolve, reject) =>
    fuse.mount((err) => {
      if (!err) return resolve();
      const m = err.message;
      reject(
        new LifeboatError(
          /in use/i.test(m) ? "ALREADY_EXISTS" : "STORAGE_ERROR",
          `cannot mount at ${mnt}: ${m}`,
          /in use/i.test(m) ? `something is mounted there already: fusermount -u ${mnt}` : undefined,
          err,
        ),
      );
    }),
  );
  let done: Promise<void> | undefined;
  return {
    mountpoint: mnt,
    unmount: () => {
      done ??= new Promise<void>((resolve, reject) =>
        fuse.unmount((err) =>
          err
            ? reject(
                new LifeboatError(
                  "STORAGE_ERROR",
                  `cannot unmount ${mnt}: ${err.message}`,
                  `unmount it by hand: fusermount -uz ${mnt}`,
                  err,
                ),
              )
            : resolve(),
        ),
      );
      return done;
    },
  };
}
