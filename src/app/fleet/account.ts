import { checkTimeZone, type DailyWindow } from "./parse.js";
import type { FleetPolicy } from "./policy.js";
import { firstWindow, MIN_NIGHT_GAP_MS, startTime, type WindowInstance } from "./window.js";

/** An account of a fleet as its source lists it. */
export interface FleetAccount {
  readonly id: string;
  /** IANA timezone name (`Europe/Berlin`); the account's windows follow its wall clock. */
  readonly timezone: string;
  /** The account's own window, if it has one; otherwise the fleet's. */
  readonly window?: DailyWindow;
}

/** The newest window an account is finished with. */
export interface SettledWindow {
  readonly key: string;
  readonly opensAt: number;
  /** `done`: a good run (snapshot or unchanged-check) for this window; `missed`: none came. */
  readonly outcome: "done" | "missed";
}

/**
 * What a store keeps per account between ticks: one row of `accounts(id, timezone, window,
 * next_due, ...)`. Values are immutable; every transition returns a new state. Times are ms since
 * the epoch (UTC). A dispatcher reads only the rows with `nextDue <= now` (an index on next_due),
 * never one cron entry per account.
 */
export interface AccountState {
  readonly account: FleetAccount;
  /** When the account joined: windows that closed before are neither run nor missed. */
  readonly since: number;
  readonly last?: SettledWindow;
  /** Newest good snapshot or unchanged-check of the account, from any origin; RPO counts from it. */
  readonly newestGood?: number;
  /** The window the account works on now (the first one after `last`). */
  readonly current: WindowInstance;
  /** The account's start time in `current` (see `startTime`). */
  readonly startAt: number;
  /** Failed attempts in `current`, and when the next may start. */
  readonly failures: number;
  readonly retryAt?: number;
  /**
   * Set when `current` closed without a good run, was reported missed, and the fleet catches up
   * at once: the account may still run (flagged catch-up) until then.
   */
  readonly catchUpUntil?: number;
  /** Set while a run holds the account's lease for `current`. */
  readonly runningSince?: number;
  /**
   * When the dispatcher must look at the account again (`accounts.next_due`): its start time, a
   * retry time, or the window's close (to record a miss). Infinity while running (store NULL).
   */
  readonly nextDue: number;
}

/** A window that closed without a good run. Report it; it counts towards RPO. */
export interface MissedWindow {
  readonly accountId: string;
  readonly key: string;
  readonly opensAt: number;
  readonly closesAt: number;
  /** Failed attempts in it (0: it never started: no capacity, or no dispatcher). */
  readonly failures: number;
  /** Whether the account runs at once as a catch-up (policy `at-once`) rather than next window. */
  readonly catchUp: boolean;
}

/** A state and the windows found missed on the way to it. */
export interface Step {
  readonly state: AccountState;
  readonly missed: readonly MissedWindow[];
}

export function accountWindow(policy: FleetPolicy, account: FleetAccount): DailyWindow {
  return account.window ?? policy.window;
}

/**
 * A new row for an account that joins a fleet at `since`. A known history can be given: `last`
 * (the newest settled window, e.g. from the previous store) and `newestGood`. Checks the
 * timezone (a `LifeboatError` naming the account).
 */
export function addAccount(
  policy: FleetPolicy,
  account: FleetAccount,
  since: number,
  known: { last?: SettledWindow; newestGood?: number } = {},
): AccountState {
  checkTimeZone(account.timezone, account.id);
  const base = { account, since, last: known.last, newestGood: known.newestGood, failures: 0 };
  return place(policy, base, known.last);
}

/** `s` with `current` set to the first window after `last` (or after joining), attempts reset. */
function place(
  policy: FleetPolicy,
  s: Pick<AccountState, "account" | "since" | "newestGood">,
  last: SettledWindow | undefined,
): AccountState {
  const { account } = s;
  const w = accountWindow(policy, account);
  const current = last
    ? firstWindow(account.timezone, w, last.opensAt + MIN_NIGHT_GAP_MS, Number.NEGATIVE_INFINITY)
    : firstWindow(account.timezone, w, Number.NEGATIVE_INFINITY, s.since);
  const state: AccountState = {
    account,
    since: s.since,
    last,
    newestGood: s.newestGood,
    current,
    startAt: startTime(current, policy.name, account.id),
    failures: 0,
    retryAt: undefined,
    catchUpUntil: undefined,
    runningSince: undefined,
    nextDue: 0,
  };
  return withNextDue(state);
}

/** From when until when the account may start a run in `current` (empty when from >= until). */
export function attemptSpan(s: AccountState): { from: number; until: number } {
  const until = s.catchUpUntil ?? s.current.closesAt;
  const from = Math.max(s.catchUpUntil !== undefined ? s.current.closesAt : s.startAt, s.retryAt ?? 0);
  return { from, until };
}

function withNextDue(s: AccountState): AccountState {
  let nextDue = Number.POSITIVE_INFINITY;
  if (s.runningSince === undefined) {
    const { from, until } = attemptSpan(s);
    nextDue = from < until ? from : until;
  }
  return s.nextDue === nextDue ? s : { ...s, nextDue };
}

/** Whether the account should start a run now (it may still wait for capacity). */
export function isDue(s: AccountState, now: number): boolean {
  if (s.runningSince !== undefined) return false;
  const { from, until } = attemptSpan(s);
  return from <= now && now < until;
}

/** Whether the account's current window is a catch-up for a missed one. */
export function isCatchUp(s: AccountState): boolean {
  return s.catchUpUntil !== undefined;
}

function settledMissed(w: WindowInstance): SettledWindow {
  return { key: w.key, opensAt: w.opensAt, outcome: "missed" };
}

function sameWindow(a: DailyWindow, b: DailyWindow): boolean {
  return a.start === b.start && a.end === b.end;
}

/**
 * Brings a row up to `now`: follows a changed timezone or window (the next window comes from the
 * new zone, at least MIN_NIGHT_GAP_MS after the last one: never two runs for one night), and
 * settles every window that closed without a good run, reporting each as missed. With `at-once`
 * catch-up the newest missed window stays current, flagged, until shortly before the next window
 * (its opening minus MIN_NIGHT_GAP_MS), so a catch-up never runs hard against the next night.
 * A running account is left as it is: its run reports back through `succeeded`/`failed`.
 */
export function advance(policy: FleetPolicy, state: AccountState, now: number): Step {
  let s = state;
  if (s.runningSince !== undefined) return { state: s, missed: [] };
  const missed: MissedWindow[] = [];
  const { account } = s;
  const w = accountWindow(policy, account);
  if (s.current.zone !== account.timezone || !sameWindow(s.current.window, w)) {
    checkTimeZone(account.timezone, account.id);
    // A window already reported missed is settled as such, so the new zone cannot report the
    // same night again.
    s = place(policy, s, s.catchUpUntil !== undefined ? settledMissed(s.current) : s.last);
  }
  while (now >= s.current.closesAt) {
    if (s.catchUpUntil !== undefined) {
      if (now < s.catchUpUntil) break;
      s = place(policy, s, settledMissed(s.current));
      continue;
    }
    let catchUpUntil = Number.NEGATIVE_INFINITY;
    if (policy.catchUp === "at-once") {
      const next = firstWindow(
        account.timezone,
        w,
        s.current.opensAt + MIN_NIGHT_GAP_MS,
        Number.NEGATIVE_INFINITY,
      );
      catchUpUntil = next.opensAt - MIN_NIGHT_GAP_MS;
    }
    const catchUp = now < catchUpUntil;
    missed.push({
      accountId: account.id,
      key: s.current.key,
      opensAt: s.current.opensAt,
      closesAt: s.current.closesAt,
      failures: s.failures,
      catchUp,
    });
    if (catchUp) {
      s = { ...s, catchUpUntil };
      break;
    }
    s = place(policy, s, settledMissed(s.current));
  }
  return { state: withNextDue(s), missed };
}

/**
 * When the account next needs the dispatcher, computed from scratch: from its last settled window
 * (or from `now` for an account with none), ignoring failures. Windows after `last` that closed
 * before `now` count as missed, so the answer may be `<= now` (due now, e.g. as a catch-up).
 * A store keeps `AccountState.nextDue` instead; this is for a row that has only `last`.
 */
export function nextDue(
  policy: FleetPolicy,
  account: FleetAccount,
  last: SettledWindow | undefined,
  now: number,
): number {
  const fresh = addAccount(policy, account, last ? last.opensAt : now, { last });
  return advance(policy, fresh, now).state.nextDue;
}

/** Internal to the fleet module: the same as `place` and `withNextDue`, for events.ts. */
export const internal = { place, withNextDue };
