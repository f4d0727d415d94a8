// No imports: the console's page reads this type too (src/app/console/api-types.ts).

/** One drill, as `status` shows it. */
export interface DrillSummary {
  id: string;
  time: string;
  ageSeconds: number;
  snapshot: string;
  ok: boolean;
  mode: "full" | "sample";
  files: number;
  bytes: number;
  seconds: number;
  /** Restore throughput in MB/s (10^6 bytes), null when too fast to measure. */
  mbPerSecond: number | null;
  failed: number;
  firstFailure?: { path: string; reason: string };
  engineCheck?: string;
}
