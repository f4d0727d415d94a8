import { promises as fs } from "node:fs";
import path from "node:path";
import { fitName } from "../../core/names.js";
import type { Repository } from "../../repo/repository.js";
import { folderDir, messageFileName } from "./folder-state.js";
import {
  type ExportStats,
  emptyExportStats,
  type MailFolder,
  readNode,
  writeFileAtomic,
} from "./mail-snapshot.js";

/**
 * A plain tree: `DIR/<folder>/<sub>/<uid>.eml` holding each message's raw RFC 822 bytes, with
 * the message's INTERNALDATE as mtime. Folder names are escaped as in the snapshot.
 */
export async function exportEml(
  repo: Repository,
  folders: AsyncIterable<MailFolder>,
  target: string,
): Promise<ExportStats> {
  const stats = emptyExportStats();
  for await (const f of folders) {
    // Each level fits NAME_MAX (a long name is cut and given a hash: distinct names stay distinct).
    const dir = path.join(
      target,
      ...folderDir(f.state.path, f.state.delimiter)
        .split("/")
        .map((c) => fitName(c)),
    );
    await fs.mkdir(dir, { recursive: true });
    stats.folders++;
    for (const m of f.state.messages) {
      const node = f.messages.get(m.uid);
      if (!node) continue;
      const data = await readNode(repo, node, `${f.dir}/${node.name}`);
      await writeFileAtomic(path.join(dir, messageFileName(m.uid)), data, new Date(m.date));
      stats.messages++;
      stats.bytes += data.length;
    }
  }
  return stats;
}
