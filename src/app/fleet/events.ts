import { type AccountState, advance, change, internal, type Step } from "./account.js";
import { retryDelay } from "./backoff.js";
import type { FleetPolicy } from "./policy.js";

/**
 * What a run reports back. Each returns the account's next state (with its new `nextDue`) and any
 * windows found missed on the way (a run that outlasted the next window). Reports are matched by
 * window key: a report for another window than the current one (a duplicate from an
 * at-least-once queue, a run that outlived its lease) changes nothing but `newestGood`.
 */

/** The dispatcher took the account's lease for its current window at `at`. */
export function started(s: AccountState, at: number): AccountState {
  return change(s, { runningSince: at });
}

/**
 * A good run for window `key` ended at `at`: a snapshot, or a check that found nothing changed.
 * `goodAt` is the time the data is from (the snapshot's time; default `at`): RPO counts from it.
 */
export function succeeded(
  policy: FleetPolicy,
  s: AccountState,
  report: { key: string; at: number; goodAt?: number },
): Step {
  const goodAt = report.goodAt ?? report.at;
  const newestGood = s.newestGood === undefined ? goodAt : Math.max(s.newestGood, goodAt);
  const s2 = newestGood === s.newestGood ? s : change(s, { newestGood });
  if (report.key !== s.current.key) return advance(policy, s2, report.at);
  const last = { key: s.current.key, opensAt: s.current.opensAt, outcome: "done" as const };
  return advance(policy, internal.placeAfter(policy, s2, last), report.at);
}

/**
 * A run for window `key` failed at `at` (or its lease expired). The account retries after an
 * exponential, jittered delay while its window (or catch-up time) lasts; other accounts are not
 * held up: the dispatcher simply looks at it again at `nextDue`.
 */
export function failed(policy: FleetPolicy, s: AccountState, report: { key: string; at: number }): Step {
  if (report.key !== s.current.key) return advance(policy, s, report.at);
  const failures = s.failures + 1;
  const retryAt = report.at + retryDelay(policy, s.account.id, s.current.key, failures);
  return advance(policy, change(s, { failures, retryAt, runningSince: undefined }), report.at);
}
