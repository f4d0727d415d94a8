import { promises as fs } from "node:fs";
import path from "node:path";
import { CorruptionError, LifeboatError } from "../../core/errors.js";
import type { Repository } from "../../repo/repository.js";
import type { Snapshot } from "../../repo/snapshot.js";
import type { TreeNode } from "../../repo/tree.js";
import { decodeFolderState, FOLDER_STATE_FILE, type FolderState, uidOfFileName } from "./folder-state.js";
import { folderGlob } from "./imap-source.js";

/** One folder of a mail snapshot: its state file and its message files by UID. */
export interface MailFolder {
  /** The folder's directory in the snapshot. */
  dir: string;
  state: FolderState;
  messages: Map<number, TreeNode>;
}

/** The whole content of a file node, every blob verified by the repository, size checked. */
export async function readNode(repo: Repository, node: TreeNode, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const id of node.content ?? []) parts.push(await repo.loadBlob(Buffer.from(id, "hex")));
  const buf = Buffer.concat(parts);
  if (node.size !== undefined && buf.length !== node.size)
    throw new CorruptionError(what, `is ${buf.length} bytes, the snapshot says ${node.size}`);
  return buf;
}

/**
 * Walks a snapshot made by `lifeboat pull imap://...` and yields every folder (a directory with
 * a `.folder.json`), parents before children, optionally only those matching a glob.
 */
export async function* mailFolders(
  repo: Repository,
  snapshot: Snapshot & { id?: string },
  globs: string[] = [],
): AsyncIterable<MailFolder> {
  if (snapshot.source !== "imap")
    throw new LifeboatError(
      "USAGE",
      `snapshot ${snapshot.id?.slice(0, 8) ?? ""} is not a mail snapshot (source: ${snapshot.source ?? "files"})`,
      "pick a snapshot made by `lifeboat pull imap://...` (see `lifeboat snapshots`)",
    );
  const res = globs.map(folderGlob);
  const walk = async function* (tree: string, dir: string): AsyncIterable<MailFolder> {
    const nodes = (await repo.loadTree(tree)).nodes;
    const stateNode = nodes.find((n) => n.name === FOLDER_STATE_FILE && n.type === "file");
    if (stateNode) {
      const what = `${dir}/${FOLDER_STATE_FILE}`;
      const state = decodeFolderState(await readNode(repo, stateNode, what), what);
      const messages = new Map<number, TreeNode>();
      for (const n of nodes) {
        const uid = n.type === "file" ? uidOfFileName(n.name) : undefined;
        if (uid !== undefined) messages.set(uid, n);
      }
      const names = [state.path, state.delimiter ? state.path.split(state.delimiter).join("/") : state.path];
      if (res.length === 0 || res.some((re) => names.some((x) => re.test(x)))) yield { dir, state, messages };
    }
    for (const n of nodes)
      if (n.type === "dir" && n.subtree) yield* walk(n.subtree, dir ? `${dir}/${n.name}` : n.name);
  };
  yield* walk(snapshot.tree, "");
}

/**
 * Writes a file atomically: a temporary name (by default beside it; a Maildir gives its tmp/
 * folder, on the same file system), fsync, then rename; the temporary file never stays behind.
 */
export async function writeFileAtomic(
  file: string,
  data: Buffer,
  mtime?: Date,
  tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`),
): Promise<void> {
  const fh = await fs.open(tmp, "w", 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    if (mtime) await fs.utimes(tmp, mtime, mtime);
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

export interface ExportStats {
  folders: number;
  messages: number;
  /** Messages already present in the target with the same name (not written again). */
  unchanged: number;
  bytes: number;
}

export const emptyExportStats = (): ExportStats => ({ folders: 0, messages: 0, unchanged: 0, bytes: 0 });
