import type { ItemError } from "../core/errors.js";
import type { SnapshotWithId } from "../repo/snapshot.js";
import type { TreeNode, Xattr } from "../repo/tree.js";

/**
 * The source contract: what every producer of a snapshot (files, stdin, databases, mail,
 * calendars, a fleet's accounts) hands the one tree builder. A source comes in one of two
 * shapes, both built into the same trees by the same code:
 *
 * - a **tree source** presents folders to walk (kopia's fs.Directory): the builder asks each
 *   folder for its entries, compares them with the parent snapshot's folder, and reads only
 *   what changed — the shape of anything that is already a hierarchy, such as a file system;
 * - a **virtual source** streams entries with relative paths, in any order, reading each
 *   file's bytes as it goes — the shape of a dump, a mailbox or an address book.
 */

/** What a tree node keeps of an entry besides its name and type. */
export interface EntryMeta {
  /** Permission bits (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Nanoseconds since the epoch, decimal. */
  mtime: string;
  ctime?: string;
  inode?: string;
  device?: string;
}

/**
 * Reads an entry's extended attributes (tree sources that keep them). The builder calls it only
 * when the parent snapshot's cannot be reused (the status-change time differs: any change of an
 * attribute changes it). Throws when they cannot be read: the entry is kept without them and
 * the error goes into the snapshot's errors.
 */
export type XattrReader = () => Xattr[];

/** Where a file's bytes come from. */
export type FileContent =
  /** A regular file on this machine: read (and chunked) on worker threads, then checked for
   * changes made while it was read (size, times, inode). */
  | { kind: "path"; path: string }
  /** Bytes produced by the source. */
  | { kind: "stream"; read: () => AsyncIterable<Buffer> };

export interface FileEntry {
  kind: "file";
  name: string;
  meta: EntryMeta;
  size: number;
  /** Hard-link count, when above 1. */
  links?: number;
  content: FileContent;
  xattrs?: XattrReader;
}

export interface DirEntry {
  kind: "dir";
  name: string;
  meta: EntryMeta;
  dir: SourceDir;
  xattrs?: XattrReader;
}

export interface SymlinkEntry {
  kind: "symlink";
  name: string;
  meta: EntryMeta;
  /** The link text, exactly (core/names.ts). */
  target: string;
  xattrs?: XattrReader;
}

/** A FIFO or a device node (format feature `special-files`). */
export interface SpecialEntry {
  kind: "special";
  name: string;
  type: "fifo" | "chardev" | "blockdev";
  meta: EntryMeta;
  /** Devices: st_rdev, decimal. */
  rdev?: string;
  xattrs?: XattrReader;
}

/** Something the source saw and leaves out on purpose (a socket): a warning, not an error. */
export interface SkippedEntry {
  kind: "skipped";
  name: string;
  warning: string;
}

/** An entry that could not be read: recorded in the snapshot's errors (which marks it incomplete). */
export interface FailedEntry {
  kind: "failed";
  name: string;
  error: ItemError;
}

export type SourceEntry = FileEntry | DirEntry | SymlinkEntry | SpecialEntry | SkippedEntry | FailedEntry;

/** A folder of a tree source. */
export interface SourceDir {
  /** The folder's path, for messages. */
  readonly path: string;
  /** A folder made up to hold what is backed up (the parents of `/home/ann/docs`, the root of a
   * stdin snapshot): its metadata is kept, but it does not count as a folder backed up. */
  readonly synthetic?: boolean;
  /** The folder's entries, in any order. A folder that cannot be listed throws (the builder
   * records the error and keeps the folder, empty). */
  entries(): Promise<SourceEntry[]>;
}

export interface TreeSource {
  /** What the snapshot is of: its `paths`. With the host, it also finds the parent snapshot. */
  paths: string[];
  /** Source type recorded in the snapshot for anything but plain files (`stdin` is files too). */
  type?: string;
  /** The root folder: its entries become the snapshot's root tree. */
  root: SourceDir;
  /** Exclude patterns in force (recorded in the snapshot; a changed list is not a wipe). */
  excludes?: string[];
  /** Whether entries carry their extended attributes (recorded in the snapshot: a later
   * backup reuses a parent's attributes only if the parent read them). */
  xattrs?: boolean;
  /** Warnings about the whole source (e.g. attributes that cannot be read on this system). */
  warnings?: string[];
  /** Totals for the progress ETA when there is no parent snapshot to take them from. */
  scanTotals?(): Promise<{ files: number; bytes: number }>;
  /** Source-specific facts to keep with the snapshot. */
  meta?(): Record<string, unknown> | Promise<Record<string, unknown>>;
}

// --- virtual sources ------------------------------------------------------------------------

export interface VirtualFile {
  kind: "file";
  /** Relative path inside the snapshot, e.g. `INBOX/1234.eml`. */
  path: string;
  mode?: number;
  mtime?: Date;
  /** The bytes. Omit when `reuse` is given. */
  read?: () => AsyncIterable<Buffer>;
  /** A node of the parent snapshot whose content is known to be unchanged (not read again). */
  reuse?: TreeNode;
  /** Store `read`'s bytes in fixed pieces of this size instead of content-defined chunks
   * (files changed in place page by page, such as SQLite databases). */
  pieceSize?: number;
}

export interface VirtualDir {
  kind: "dir";
  path: string;
  mode?: number;
  mtime?: Date;
}

export type VirtualEntry = VirtualFile | VirtualDir;

/** Looks up a node of the parent snapshot by relative path (for incremental sources). */
export type ParentLookup = (path: string) => Promise<TreeNode | undefined>;

export interface VirtualSource {
  /** What the snapshot is "of", e.g. `sqlite:/var/lib/app.db`; recorded as its path. */
  name: string;
  /** Source type, e.g. `sqlite`, `postgres`, `imap`; recorded in the snapshot. */
  type: string;
  entries(parent: ParentLookup, parentSnapshot: SnapshotWithId | undefined): AsyncIterable<VirtualEntry>;
  /** Source-specific facts to keep with the snapshot (e.g. a WAL position, IMAP UIDVALIDITY). */
  meta?(): Record<string, unknown> | Promise<Record<string, unknown>>;
}

/** A source that holds something while it is read (a database copy, a connection): call
 * `cleanup()` once the snapshot is taken, whatever happened. */
export type CleanupSource = VirtualSource & { cleanup(): Promise<void> };

export type Source = TreeSource | VirtualSource;

export const isTreeSource = (s: Source): s is TreeSource => "root" in s;

/** The paths a source's snapshots are recorded under. */
export const sourcePaths = (s: Source): string[] => (isTreeSource(s) ? s.paths : [s.name]);
