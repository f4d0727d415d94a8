import { execFile, execFileSync } from "node:child_process";
import fsSync from "node:fs";
import path from "node:path";
import { LifeboatError } from "../../core/errors.js";
import { displayName, fsPath } from "../../core/names.js";

/**
 * The btrfs operations a freeze needs, through btrfs-progs' `btrfs` command (the ioctls are not
 * reachable from Node): find the subvolume that holds a path, list the subvolumes nested in
 * one, make a read-only snapshot, delete snapshots.
 */

const BTRFS_MAGIC = 0x9123683e;
/** Every subvolume's root folder has this inode number (BTRFS_FIRST_FREE_OBJECTID). */
const SUBVOLUME_ROOT_INO = 256n;

/** Names of the file systems a user may meet instead, for the "not btrfs" message. */
const FS_NAMES = new Map<number, string>([
  [0xef53, "ext2/3/4"],
  [0x58465342, "xfs"],
  [0x01021994, "tmpfs"],
  [0x2fc12fc1, "zfs"],
  [0x65735546, "a FUSE file system"],
  [0x794c7630, "overlayfs"],
  [0x6969, "nfs"],
  [0xff534d42, "cifs"],
  [0x4d44, "vfat"],
  [0x5346544e, "ntfs"],
  [0xf2f52010, "f2fs"],
  [0x9123683e, "btrfs"],
]);

const btrfsEnv = () => ({ ...process.env, LC_ALL: "C", LANG: "C" });

const notInstalled = () =>
  new LifeboatError(
    "NOT_FOUND",
    "btrfs-progs is not installed (the btrfs command was not found in PATH)",
    "install it (Debian/Ubuntu: apt-get install btrfs-progs; Fedora: dnf install btrfs-progs)",
  );

/** The last line the command wrote to stderr (its error message). */
const lastLine = (s: string) =>
  s
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .at(-1) ?? "";

/** Runs `btrfs ARGS`; its stdout. Fails with the command's own message. */
export function btrfs(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("btrfs", args, { env: btrfsEnv(), maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return reject(notInstalled());
      reject(
        new LifeboatError(
          "FS_SNAPSHOT",
          `btrfs ${args.slice(0, 2).join(" ")} failed: ${lastLine(stderr) || err.message}`,
          "see the message above; docs/fs-snapshots.md lists what a btrfs snapshot needs",
        ),
      );
    });
  });
}

/** Checks what a btrfs freeze needs before anything is made: Linux, root, btrfs-progs. */
export async function checkBtrfsTools(): Promise<void> {
  if (process.platform !== "linux")
    throw new LifeboatError("USAGE", "btrfs snapshots need Linux", "leave out --fs-snapshot");
  if (process.getuid?.() !== 0)
    throw new LifeboatError(
      "PERMISSION_DENIED",
      "--fs-snapshot btrfs needs root (making and deleting subvolume snapshots does)",
      "run lifeboat as root (e.g. with sudo), or back up without --fs-snapshot",
    );
  await btrfs(["--version"]);
}

/** Fails with a one-line message unless `p` is on btrfs. */
export function checkOnBtrfs(p: string): void {
  const type = Number(fsSync.statfsSync(fsPath(p)).type);
  if (type === BTRFS_MAGIC) return;
  const name = FS_NAMES.get(type) ?? `file system type 0x${type.toString(16)}`;
  throw new LifeboatError(
    "USAGE",
    `cannot freeze ${displayName(p)} with a btrfs snapshot: it is on ${name}, not btrfs`,
    "leave out --fs-snapshot, or use --fs-snapshot-command for LVM, ZFS or another snapshot technology (docs/fs-snapshots.md)",
  );
}

/**
 * The root of the subvolume that holds `p`: the highest folder above it (or itself) on the same
 * device — each btrfs subvolume has a device number of its own.
 */
export function subvolumeRootOf(p: string): string {
  const dev = fsSync.lstatSync(fsPath(p), { bigint: true }).dev;
  let root = p;
  while (root !== "/") {
    const up = path.dirname(root);
    if (fsSync.lstatSync(fsPath(up), { bigint: true }).dev !== dev) break;
    root = up;
  }
  // A folder inside a subvolume can be mounted elsewhere (a bind mount): the walk then stops at
  // that mount point, which is no subvolume root and cannot be snapshotted.
  if (fsSync.lstatSync(fsPath(root), { bigint: true }).ino !== SUBVOLUME_ROOT_INO)
    throw new LifeboatError(
      "USAGE",
      `cannot freeze ${displayName(p)}: it is under ${displayName(root)}, a folder inside a btrfs subvolume mounted on its own (a bind mount), not a subvolume`,
      "give the path under the mount point of the subvolume itself (see `findmnt` and `btrfs subvolume show`)",
    );
  return root;
}

/** A subvolume's path from the top of its file system (`btrfs subvolume show`, "/" for the top). */
async function subvolumePath(root: string): Promise<string> {
  const first = (await btrfs(["subvolume", "show", root])).split("\n")[0]?.trim() ?? "";
  return first === "<FS_TREE>" ? "/" : first;
}

/**
 * The subvolumes directly inside the subvolume whose root is `root`, as paths below `root`
 * (where they are seen through this mount).
 */
export async function childSubvolumes(root: string): Promise<string[]> {
  const own = await subvolumePath(root);
  const prefix = own === "/" ? "" : `${own}/`;
  const out: string[] = [];
  for (const line of (await btrfs(["subvolume", "list", "-o", root])).split("\n")) {
    const m = / path (.+)$/.exec(line);
    if (!m) continue;
    let rel = m[1]!;
    if (rel.startsWith("<FS_TREE>/")) rel = rel.slice("<FS_TREE>/".length);
    if (!rel.startsWith(prefix)) continue;
    out.push(path.join(root, rel.slice(prefix.length)));
  }
  return out.sort();
}

/** Makes a read-only snapshot of the subvolume at `source` as `dest`. */
export async function snapshotReadOnly(source: string, dest: string): Promise<void> {
  await btrfs(["subvolume", "snapshot", "-r", source, dest]);
}

/** Deletes snapshots (subvolumes). */
export async function deleteSubvolumes(paths: string[]): Promise<void> {
  if (paths.length > 0) await btrfs(["subvolume", "delete", ...paths]);
}

/** Deletes snapshots without waiting for the event loop: for the exit hook. */
export function deleteSubvolumesSync(paths: string[]): void {
  if (paths.length > 0)
    execFileSync("btrfs", ["subvolume", "delete", ...paths], { env: btrfsEnv(), stdio: "ignore" });
}

/** Whether `p` is the root of a subvolume (a snapshot that exists). */
export function isSubvolumeRoot(p: string): boolean {
  try {
    return fsSync.lstatSync(p, { bigint: true }).ino === SUBVOLUME_ROOT_INO;
  } catch {
    return false;
  }
}
