// No imports: the console's page reads this type too (src/app/console/api-types.ts).

/** What differs between two snapshots, counted (`diff --json`'s summary). */
export interface DiffSummary {
  added: number;
  removed: number;
  modified: number;
  metadata: number;
  typeChanged: number;
  /**
   * Plaintext bytes of the data blobs referenced by what differs on the new side and not by
   * what differs on the old side (and the reverse for removed). Identical subtrees are skipped,
   * so a blob shared with an unchanged file elsewhere may be counted.
   */
  bytesAdded: number;
  bytesRemoved: number;
}
