import { type AccountState, isDue } from "./account.js";
import type { FleetPolicy } from "./policy.js";

/**
 * - `never`: no good snapshot or unchanged-check yet;
 * - `over-rpo`: the newest is older than the RPO;
 * - `at-risk`: within the RPO now, but the next run is not expected in time (it starts after the
 *   RPO runs out, or the account failed or missed its window);
 * - `protected`: otherwise.
 */
export type RpoStatus = "protected" | "at-risk" | "over-rpo" | "never";

/**
 * An account's RPO status from its newest good snapshot or unchanged-check time (whichever is
 * newer) and, when known, when its next run is expected to start.
 */
export function rpoStatus(
  newestGood: number | undefined,
  rpoMs: number,
  now: number,
  nextRunAt = now,
): RpoStatus {
  if (newestGood === undefined) return "never";
  const deadline = newestGood + rpoMs;
  if (now > deadline) return "over-rpo";
  return nextRunAt > deadline ? "at-risk" : "protected";
}

/** `rpoStatus` for a fleet row: its next run is its next attempt; a failure or a miss is a risk. */
export function accountRpo(policy: FleetPolicy, s: AccountState, now: number): RpoStatus {
  const st = rpoStatus(s.newestGood, policy.rpoMs, now, nextRunAt(s, now));
  if (st === "protected" && (s.failures > 0 || s.catchUpUntil !== undefined)) return "at-risk";
  return st;
}

function nextRunAt(s: AccountState, now: number): number {
  if (s.runningSince !== undefined) return now;
  return s.nextDue < s.settleAt ? Math.max(s.nextDue, now) : Number.POSITIVE_INFINITY;
}

/**
 * Where an account stands in its current window: `running`; `failed` (failed at least once in
 * it, waiting to retry or for the window to close); `due` (should start now: the backlog when it
 * does not); `missed` (its newest window closed without a good run, settled or not yet, and it is
 * not due as a catch-up); `done` (its newest window had a good run, the next has not come); `new`
 * (never settled a window, not due).
 */
export type BacklogState = "running" | "failed" | "due" | "done" | "missed" | "new";

export function backlogState(s: AccountState, now: number): BacklogState {
  if (s.runningSince !== undefined) return "running";
  if (s.failures > 0) return "failed";
  if (isDue(s, now)) return "due";
  if (now >= s.settleAt || s.catchUpUntil !== undefined || s.last?.outcome === "missed") return "missed";
  return s.last ? "done" : "new";
}

/** A fleet at a glance: RPO figures and backlog counts. Ages in ms. */
export interface FleetFigures {
  readonly accounts: number;
  readonly rpo: Record<RpoStatus, number>;
  /** Age of the newest good snapshot over the accounts that have one (nearest rank). */
  readonly age: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly backlog: Record<BacklogState, number>;
  /** Accounts over RPO (the same as `rpo["over-rpo"]`, named as the backlog reads it). */
  readonly overdue: number;
}

/** Fleet figures over all rows, in one pass and one sort of the ages (O(n log n)). */
export function fleetFigures(policy: FleetPolicy, rows: Iterable<AccountState>, now: number): FleetFigures {
  const rpo: Record<RpoStatus, number> = { protected: 0, "at-risk": 0, "over-rpo": 0, never: 0 };
  const backlog: Record<BacklogState, number> = { running: 0, failed: 0, due: 0, done: 0, missed: 0, new: 0 };
  let ages = new Float64Array(1024);
  let n = 0;
  let accounts = 0;
  for (const s of rows) {
    accounts++;
    rpo[accountRpo(policy, s, now)]++;
    backlog[backlogState(s, now)]++;
    if (s.newestGood !== undefined) {
      if (n === ages.length) {
        const bigger = new Float64Array(ages.length * 2);
        bigger.set(ages);
        ages = bigger;
      }
      ages[n++] = now - s.newestGood;
    }
  }
  const sorted = ages.subarray(0, n).sort();
  const rank = (q: number) => (n === 0 ? 0 : sorted[Math.min(n - 1, Math.ceil(q * n) - 1)]!);
  return {
    accounts,
    rpo,
    age: { p50: rank(0.5), p99: rank(0.99), max: n === 0 ? 0 : sorted[n - 1]! },
    backlog,
    overdue: rpo["over-rpo"],
  };
}
