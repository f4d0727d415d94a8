import { constants, promises as fs } from "node:fs";
import { fsPath } from "../../core/names.js";
import type { Repository } from "../../repo/repository.js";

/**
 * Whether the file at `p` holds exactly the blobs `content` (in order): each piece is read with
 * the blob's length from the index and its keyed id recomputed. Used to resume a restore (files
 * already right are skipped) and by --verify.
 */
export async function fileMatches(
  repo: Repository,
  p: string,
  content: string[],
  size?: number,
): Promise<boolean> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(fsPath(p), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return false;
  }
  try {
    const st = await fh.stat();
    if (size !== undefined && st.size !== size) return false;
    let pos = 0;
    for (const id of content) {
      const idBuf = Buffer.from(id, "hex");
      const loc = repo.lookup(idBuf);
      if (!loc) return false;
      const buf = Buffer.allocUnsafe(loc.rawLength);
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, pos + got);
        if (bytesRead === 0) return false;
        got += bytesRead;
      }
      if (!repo.blobId(buf).equals(idBuf)) return false;
      pos += got;
    }
    return pos === st.size;
  } finally {
    await fh.close();
  }
}
