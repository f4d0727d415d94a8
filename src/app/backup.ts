import type { Repository } from "../repo/repository.js";
import type { BackupResult } from "../snapshot/commit.js";
import type { SnapshotOptions } from "../snapshot/take.js";
import { takeSnapshot } from "../snapshot/take.js";
import { checkSourcePaths, type FilesOptions, filesSource } from "../sources/files/files-source.js";
import { stdinSource } from "../sources/stdin.js";

export type BackupOptions = FilesOptions & SnapshotOptions;

/** Backs up files and folders into a new snapshot (the files source and the one snapshot pipeline). */
export async function backup(
  repo: Repository,
  paths: string[],
  options: BackupOptions = {},
): Promise<BackupResult> {
  const abs = await checkSourcePaths(paths);
  return takeSnapshot(repo, filesSource(abs, options), options);
}

/**
 * Backs up one stream (e.g. stdin) as a single file named `filename` in a new snapshot. A stream
 * has no parent to compare with: every run stores what it reads (deduplicated as always).
 */
export async function backupStream(
  repo: Repository,
  stream: AsyncIterable<Buffer>,
  filename: string,
  options: Pick<SnapshotOptions, "tags" | "host" | "time" | "onProgress" | "signal"> = {},
): Promise<BackupResult> {
  const time = options.time ?? new Date();
  return takeSnapshot(repo, stdinSource(stream, filename, time), {
    ...options,
    time,
    parent: false,
    anomaly: false,
  });
}
