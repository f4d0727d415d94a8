// No imports: the console's page reads this type too (src/app/console/api-types.ts).

/** What a backup did, as the snapshot's `summary` and `backup --json` hold it. */
export interface BackupSummary {
  files: number;
  dirs: number;
  bytes: number;
  filesNew: number;
  filesChanged: number;
  filesUnchanged: number;
  blobsAdded: number;
  bytesAdded: number;
  bytesStored: number;
  durationMs: number;
}
