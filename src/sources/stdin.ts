import { LifeboatError } from "../core/errors.js";
import type { TreeSource } from "../snapshot/source.js";

/**
 * One stream (standard input, a command's output) as a snapshot holding a single file named
 * `filename`, recorded as `/<filename>`.
 */
export function stdinSource(stream: AsyncIterable<Buffer>, filename: string, time = new Date()): TreeSource {
  if (!filename || filename.includes("/") || filename === "." || filename === "..") {
    throw new LifeboatError(
      "USAGE",
      `--stdin-filename ${JSON.stringify(filename)} must be a plain file name`,
      "give a name without slashes, such as db.sql",
    );
  }
  const meta = {
    mode: 0o644,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    mtime: (BigInt(time.getTime()) * 1_000_000n).toString(),
  };
  return {
    paths: [`/${filename}`],
    root: {
      path: "/",
      synthetic: true,
      entries: async () => [
        { kind: "file", name: filename, meta, size: 0, content: { kind: "stream", read: () => stream } },
      ],
    },
  };
}
