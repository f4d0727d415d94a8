import { type AccountState, advance, isCatchUp, isDue, type MissedWindow } from "./account.js";
import { started } from "./events.js";
import type { FleetPolicy } from "./policy.js";
import type { WindowInstance } from "./window.js";

/** A run the dispatcher should start now. */
export interface DueRun {
  /** The account's state with the lease taken (`runningSince` = now): write it back. */
  readonly state: AccountState;
  /** The window the run is for; its `key` names the lease, job and snapshot tag. */
  readonly window: WindowInstance;
  /** Run for a window that closed without a good run (policy `at-once`). */
  readonly catchUp: boolean;
  /** 1 for the first try in this window, 2 after one failure, ... */
  readonly attempt: number;
  readonly pressure: number;
}

/** What one tick decided. */
export interface Tick {
  /** Runs to start now, most urgent first, at most `capacity`. */
  readonly start: readonly DueRun[];
  /** Windows that closed without a good run, found in this tick: report and count them. */
  readonly missed: readonly MissedWindow[];
  /** Accounts not started whose state changed (settled a miss, followed a new timezone...): write back. */
  readonly changed: readonly AccountState[];
  /** Accounts due now that did not fit into `capacity` (the backlog), in their current state. */
  readonly waiting: readonly AccountState[];
}

/**
 * RPO pressure: the age of the newest good snapshot (or unchanged-check) in RPOs; Infinity for an
 * account never backed up. 1 means "at the RPO now".
 */
export function pressure(policy: FleetPolicy, s: AccountState, now: number): number {
  return s.newestGood === undefined ? Number.POSITIVE_INFINITY : (now - s.newestGood) / policy.rpoMs;
}

interface Candidate {
  readonly s: AccountState;
  readonly p: number;
  /** Whether `s` differs from the row given (a miss settled before its new window became due). */
  readonly changed: boolean;
}

/**
 * Urgency order: higher RPO pressure first, then earlier start time, then account id (so the
 * order is total and repeatable). Within one fleet (one RPO) this is "oldest newest-good first",
 * which a store can serve from an index: ORDER BY newest_good NULLS FIRST, start_at, id.
 */
function before(a: Candidate, b: Candidate): boolean {
  if (a.p !== b.p) return a.p > b.p;
  if (a.s.startAt !== b.s.startAt) return a.s.startAt < b.s.startAt;
  return a.s.account.id < b.s.account.id;
}

/**
 * One dispatcher tick: which accounts start now. Each row given is brought up to `now` (missed
 * windows settled and reported, a changed timezone followed); of the accounts then due (window
 * open and start time come, or retry time come, or catching up; not running), the most urgent
 * `capacity` start. A failing account backs off by its own `nextDue` and never holds up others.
 *
 * Which rows to give it, each at most once (rows not given are not looked at; nothing is lost):
 * - every row with `settleAt <= now` (windows that closed while the account waited), and
 * - the most urgent rows with `nextDue <= now`, at least `capacity` of them (all is fine too).
 * With one index per column that is, per fleet (one RPO, so urgency = oldest newest-good):
 *   SELECT * FROM accounts WHERE settle_at <= $now
 *   UNION SELECT * FROM (SELECT * FROM accounts WHERE next_due <= $now
 *     ORDER BY newest_good NULLS FIRST, start_at, id LIMIT $capacity)
 * so a tick costs what starts and what settles, not the size of the backlog.
 */
export function due(
  policy: FleetPolicy,
  rows: Iterable<AccountState>,
  now: number,
  capacity = Number.POSITIVE_INFINITY,
): Tick {
  const missed: MissedWindow[] = [];
  const changed: AccountState[] = [];
  const candidates: Candidate[] = [];
  for (const row of rows) {
    const step = advance(policy, row, now);
    for (const m of step.missed) missed.push(m);
    if (isDue(step.state, now))
      candidates.push({ s: step.state, p: pressure(policy, step.state, now), changed: step.state !== row });
    else if (step.state !== row) changed.push(step.state);
  }
  const chosen = mostUrgent(candidates, Math.max(0, Math.floor(capacity)));
  const picked = new Set<AccountState>();
  const start: DueRun[] = chosen.map((c) => {
    picked.add(c.s);
    return {
      state: started(c.s, now),
      window: c.s.current,
      catchUp: isCatchUp(c.s),
      attempt: c.s.failures + 1,
      pressure: c.p,
    };
  });
  const waiting: AccountState[] = [];
  for (const c of candidates) {
    if (picked.has(c.s)) continue;
    waiting.push(c.s);
    if (c.changed) changed.push(c.s);
  }
  return { start, missed, changed, waiting };
}

/** The `k` most urgent candidates, most urgent first: a bounded heap, O(n log k). */
function mostUrgent(all: Candidate[], k: number): Candidate[] {
  if (k === 0) return [];
  if (all.length <= k) return all.slice().sort((a, b) => (before(a, b) ? -1 : 1));
  // heap[0] is the least urgent of the kept k.
  const heap: Candidate[] = [];
  const up = (i: number) => {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[parent]!, heap[i]!)) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  };
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let worst = i;
      if (l < heap.length && before(heap[worst]!, heap[l]!)) worst = l;
      if (r < heap.length && before(heap[worst]!, heap[r]!)) worst = r;
      if (worst === i) return;
      [heap[worst], heap[i]] = [heap[i]!, heap[worst]!];
      i = worst;
    }
  };
  for (const c of all) {
    if (heap.length < k) {
      heap.push(c);
      up(heap.length - 1);
    } else if (before(c, heap[0]!)) {
      heap[0] = c;
      down(0);
    }
  }
  return heap.sort((a, b) => (before(a, b) ? -1 : 1));
}
