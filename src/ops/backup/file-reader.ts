import type { Stats } from "node:fs";
import { constants, promises as fs } from "node:fs";
import { Chunker } from "../../core/chunker.js";
import { BlobType } from "../../repo/blob.js";
import type { Repository } from "../../repo/repository.js";

const READ_SIZE = 1024 * 1024;

export interface ReadResult {
  content: string[];
  size: number;
  /** Metadata taken after the read, to detect changes made while reading. */
  after: import("node:fs").BigIntStats;
}

/** Chunks a stream of buffers into the repository; returns content ids and the size.
 * (What was newly added is counted in `repo.writeStats`.) */
export async function storeStream(
  repo: Repository,
  source: AsyncIterable<Buffer>,
  onBytes: (n: number) => void,
): Promise<Omit<ReadResult, "after">> {
  const chunker = new Chunker(repo.config.chunker, repo.gearTable());
  const content: string[] = [];
  const ids: Promise<Buffer>[] = [];
  let size = 0;
  const save = async (chunks: Buffer[]) => {
    for (const c of chunks) ids.push((await repo.saveBlobDeferred(BlobType.data, c)).id);
  };
  for await (const piece of source) {
    size += piece.length;
    onBytes(piece.length);
    await save(chunker.push(piece));
  }
  await save(chunker.finish());
  for (const id of await Promise.all(ids)) content.push(id.toString("hex"));
  return { content, size };
}

/** Reads a regular file without following a symlink swapped in after lstat. */
export async function storeFile(
  repo: Repository,
  path: string,
  onBytes: (n: number) => void,
): Promise<ReadResult> {
  const fh = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = await fh.stat();
    if (!st.isFile())
      throw Object.assign(new Error(`${path} is no longer a regular file`), { code: "ECHANGED" });
    // One read buffer for the whole file: storeStream's chunker copies what it is given.
    const buf = Buffer.allocUnsafe(Math.min(READ_SIZE, st.size + 1));
    async function* pieces(): AsyncIterable<Buffer> {
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) return;
        yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
      }
    }
    const r = await storeStream(repo, pieces(), onBytes);
    const after = await fh.stat({ bigint: true });
    return { ...r, after };
  } finally {
    await fh.close();
  }
}

export type { Stats };
