import type { Stats } from "node:fs";
import { FixedChunker } from "../core/chunker.js";
import type { FileStat } from "../fsio/file-read.js";
import { BlobType } from "../repo/blob.js";
import type { BlobWriter } from "../repo/repository.js";

export interface ReadResult {
  content: string[];
  size: number;
  /** Metadata taken after the read, to detect changes made while reading. */
  after: FileStat;
}

/** Chunks a stream of buffers into the repository; returns content ids and the size.
 * (What was newly added is counted in `repo.writeStats`.) `pieceSize`: fixed-size pieces
 * instead of content-defined chunks (see FixedChunker). */
export async function storeStream(
  w: BlobWriter,
  source: AsyncIterable<Buffer>,
  onBytes: (n: number) => void,
  pieceSize?: number,
): Promise<Omit<ReadResult, "after">> {
  const chunker = pieceSize ? new FixedChunker(pieceSize) : w.newChunker();
  const content: string[] = [];
  const ids: Promise<Buffer>[] = [];
  let size = 0;
  const save = async (chunks: Buffer[]) => {
    for (const c of chunks) ids.push((await w.saveBlobDeferred(BlobType.data, c)).id);
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

/** Files up to this size (and below the chunker's minimum) are read whole, as one blob. */
const SMALL_FILE = 128 * 1024;

/**
 * Reads a regular file without following a symlink swapped in after lstat (`size` comes from
 * the caller's lstat; the metadata taken after the read catches any other change). Small files
 * are one blob; larger ones are read and chunked on a worker thread (Repository.saveLargeFile).
 */
export async function storeFile(
  w: BlobWriter,
  path: string,
  size: number,
  onBytes: (n: number) => void,
): Promise<ReadResult> {
  if (size <= SMALL_FILE && size < w.chunkerMin) return storeSmallFile(w, path, size, onBytes);
  const { read, ids } = await w.saveLargeFile(path, onBytes);
  if (read.kind !== "read")
    throw Object.assign(new Error(`${path} is not a regular file any more`), { code: "ECHANGED" });
  return { content: ids.map((id) => id.toString("hex")), size: read.length, after: read.after };
}

export type { Stats };

/**
 * A file smaller than the chunker's minimum is exactly one chunk (or none when empty), so it is
 * read in one go and stored as one blob, with the same result the chunker would give. A worker
 * thread reads, hashes and compresses it (Repository.saveSmallFile).
 */
async function storeSmallFile(
  w: BlobWriter,
  path: string,
  size: number,
  onBytes: (n: number) => void,
): Promise<ReadResult> {
  const { read, id } = await w.saveSmallFile(path, size);
  // It grew since lstat: read it the general way.
  if (read.kind === "grew") return storeFile(w, path, Number.MAX_SAFE_INTEGER, onBytes);
  if (read.kind === "notFile")
    throw Object.assign(new Error(`${path} is not a regular file any more`), { code: "ECHANGED" });
  onBytes(read.length);
  return { content: id ? [id.toString("hex")] : [], size: read.length, after: read.after };
}
