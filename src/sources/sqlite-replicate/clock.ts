/**
 * The time replicate goes by: commit time bounds of segments, snapshot times, windows of the
 * compaction levels, retention, session renewal. The real clock in production; a benchmark
 * simulates a day faster than real time with its own (bench/day.ts), committing the writes of
 * each interval while replicate "sleeps".
 */
export interface ReplicateClock {
  now(): number;
  /** Resolves after `ms` (the replicator also stops waiting when it is told to stop). */
  sleep(ms: number): Promise<void>;
}

export const realClock: ReplicateClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};
