import type { Repository } from "../../repo/repository.js";
import type { TreeNode } from "../../repo/tree.js";
import type { Excludes } from "../../snapshot/excludes.js";
import type { BackupProgress, ProgressCounter } from "../../snapshot/progress.js";
import type { RestoreResult } from "./restore-result.js";

export interface RestoreOptions {
  target: string;
  /** Path inside the snapshot to restore (its contents land directly in `target`). */
  subpath?: string;
  /** gitignore-style patterns, relative to the restored root: restore only what matches. */
  include?: string[];
  /** gitignore-style patterns, relative to the restored root: skip what matches. */
  exclude?: string[];
  /** Re-read every restored file and compare it with the snapshot. */
  verify?: boolean;
  /** Restore extended attributes (default true). As another user than root, those in the
   * `trusted.` and `security.` namespaces are left out (the kernel refuses them), with a warning. */
  xattrs?: boolean;
  onProgress?: (p: BackupProgress) => void;
  /** Stops the restore between files (a later run resumes: finished files are skipped). */
  signal?: AbortSignal;
}

export type { RestoreResult };

/** Where a folder being restored stands. */
export interface DirState {
  /** Its real path (in the staging folder while staged). */
  path: string;
  /** Path relative to the restored root ("" for the root): what errors and patterns use. */
  rel: string;
  /** Created by this restore: it holds nothing yet, so nothing needs looking up first. */
  fresh: boolean;
  /** Inside the staging folder, which nothing presents until the restore is done: files are
   * created under their final names (see staging.ts). */
  staged: boolean;
}

/** Where restored files go (see files.ts); the walk hands every file to it. */
export interface FileSink {
  add(node: TreeNode, dir: DirState, rel: string, existing: ExistingEntry | undefined): Promise<void>;
}

/** What a folder that was not empty holds under a name (from one listing of the folder). */
export type ExistingEntry = "file" | "dir" | "other";

export interface Ctx {
  repo: Repository;
  signal: AbortSignal | undefined;
  include: Excludes | undefined;
  exclude: Excludes;
  verify: boolean;
  asRoot: boolean;
  xattrs: boolean;
  /** Attributes left out (not root, or no native helper), counted for one warning at the end. */
  xattrsSkipped: number;
  devicesSkipped: number;
  result: RestoreResult;
  progress: ProgressCounter;
  /** device:inode → first restored path, to recreate hard links. */
  links: Map<string, string>;
  /** Hard-linked files, restored after everything else (the first of a group before the others
   * link to it). */
  linked: { node: TreeNode; dir: DirState; rel: string; all: boolean }[];
  /** Folders whose owner, mode and times are set at the very end (creating entries in a
   * folder changes its modification time). */
  dirMeta: { dest: string; node: TreeNode; rel: string }[];
  files: FileSink;
  /**
   * Who a new file belongs to without a chown, and whether it gets the mode it is created with
   * (see files.ts): known for the fresh folders of this restore, undefined when a check could
   * not tell (then every file gets its fchown as root, and its fchmod).
   */
  newFiles: { uid: number; gid: number; umask: number | undefined; defaultAcl: boolean } | undefined;
}
