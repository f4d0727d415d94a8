import { Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ZipFile } from "yazl";
import { fileContent } from "../../ops/inspect/dump.js";
import type { Repository } from "../../repo/repository.js";
import type { TreeNode } from "../../repo/tree.js";
import { walkTree } from "../../snapshot/walker.js";

/** Entries queued in the zip writer ahead of what it is writing: the walk waits beyond this. */
const AHEAD = 64;

const mtimeOf = (n: TreeNode) => new Date(Number(BigInt(n.mtime) / 1_000_000n));

/**
 * A folder of a snapshot as a zip stream (yazl: streamed, ZIP64 when needed), written to `out`.
 * Files are read from the repository only when the zip writer reaches them, and the walk stays
 * at most AHEAD entries ahead, so memory does not grow with the folder. Symbolic links are
 * stored as links (Unix mode bits with S_IFLNK, the target as content), as Info-ZIP does.
 */
export async function zipTree(
  repo: Repository,
  tree: string,
  base: string,
  out: Writable,
  rootNode?: TreeNode,
): Promise<void> {
  const zip = new ZipFile();
  const done = pipeline(zip.outputStream as unknown as Readable, out);
  // A file that cannot be read (damaged data) fails the zip writer, not its output stream.
  zip.on("error", (e: Error) => out.destroy(e));
  let pending = 0;
  let wake: (() => void) | undefined;
  const started = () => {
    pending--;
    wake?.();
  };
  const room = async () => {
    while (pending >= AHEAD)
      await new Promise<void>((r) => {
        wake = r;
      });
  };
  const prefix = base ? `${base}/` : "";
  if (base)
    zip.addEmptyDirectory(base, {
      mode: rootNode?.mode ?? 0o755,
      ...(rootNode ? { mtime: mtimeOf(rootNode) } : {}),
    });
  await walkTree(repo, tree, {
    async node(n, p) {
      const name = `${prefix}${p.replace(/^\//, "")}`;
      const mtime = mtimeOf(n);
      if (n.type === "dir") {
        zip.addEmptyDirectory(name, { mtime, mode: n.mode & 0o7777 });
        return undefined;
      }
      await room();
      pending++;
      if (n.type === "symlink") {
        zip.addReadStreamLazy(
          name,
          { mtime, mode: 0o120000 | (n.mode & 0o7777 || 0o777), compress: false },
          (cb) => {
            started();
            cb(null, Readable.from([Buffer.from(n.target ?? "")]));
          },
        );
        return undefined;
      }
      zip.addReadStreamLazy(name, { mtime, mode: 0o100000 | (n.mode & 0o7777), size: n.size ?? 0 }, (cb) => {
        started();
        cb(null, Readable.from(fileContent(repo, n, `file /${name}`)));
      });
      return undefined;
    },
  });
  zip.end();
  await done;
}
