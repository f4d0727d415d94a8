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
 * next_due, settle_at, ...)`. Values are immutable; every transition returns a new state. Times
 * are ms since the epoch (UTC). A dispatcher never needs one cron entry per account: each tick it
 * reads the rows with `settleAt <= now` and the most urgent rows with `nextDue <= now` (two
 * indexed queries, see `due`).
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
   * When the account may start next (`accounts.next_due`): its start time, a retry time, the
   * close of its window for a catch-up; or, when no attempt is left in the window, `settleAt`.
   * Infinity while running (store NULL).
   */
  readonly nextDue: number;
  /**
   * When the current window's chance ends (`accounts.settle_at`): its close, or the end of the
   * catch-up time. A row still not run by then is missed, so the dispatcher must look at it then
   * even when it waits for capacity. Infinity while running.
   */
  readonly settleAt: number;
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
  return place(policy, account, since, known.newestGood, known.last);
}

/** The fields a transition sets; `nextDue` and `settleAt` follow from them. */
export type AccountFields = Omit<AccountState, "nextDue" | "settleAt">;
type Fields = AccountFields;

/**
 * A row read back from a store: its fields (plain data; JSON keeps them, `current` included),
 * with `nextDue` and `settleAt` computed again (JSON turns their Infinity into null).
 */
export function restoreState(f: AccountFields): AccountState {
  return make(f);
}

/**
 * Every state is built here, as one object literal: one shape for all rows, and no object
 * spread, which costs V8 ~30 times a literal (a dispatcher handles millions of rows a night).
 */
function make(f: Fields): AccountState {
  let nextDue = Number.POSITIVE_INFINITY;
  let settleAt = Number.POSITIVE_INFINITY;
  if (f.runningSince === undefined) {
    // The account may start in [from, settleAt): from its start time (a catch-up: from the
    // close), not before its retry time.
    settleAt = f.catchUpUntil ?? f.current.closesAt;
    const from = Math.max(f.catchUpUntil !== undefined ? f.current.closesAt : f.startAt, f.retryAt ?? 0);
    nextDue = from < settleAt ? from : settleAt;
  }
  return {
    account: f.account,
    since: f.since,
    last: f.last,
    newestGood: f.newestGood,
    current: f.current,
    startAt: f.startAt,
    failures: f.failures,
    retryAt: f.retryAt,
    catchUpUntil: f.catchUpUntil,
    runningSince: f.runningSince,
    nextDue,
    settleAt,
  };
}

/** `s` with some fields changed (a field given as undefined is cleared). */
export function change(s: AccountState, p: Partial<Fields>): AccountState {
  return make({
    account: p.account ?? s.account,
    since: p.since ?? s.since,
    last: "last" in p ? p.last : s.last,
    newestGood: "newestGood" in p ? p.newestGood : s.newestGood,
    current: p.current ?? s.current,
    startAt: p.startAt ?? s.startAt,
    failures: p.failures ?? s.failures,
    retryAt: "retryAt" in p ? p.retryAt : s.retryAt,
    catchUpUntil: "catchUpUntil" in p ? p.catchUpUntil : s.catchUpUntil,
    runningSince: "runningSince" in p ? p.runningSince : s.runningSince,
  });
}

/** A not-running state on the first window after `last` (or after joining), attempts reset. */
function place(
  policy: FleetPolicy,
  account: FleetAccount,
  since: number,
  newestGood: number | undefined,
  last: SettledWindow | undefined,
): AccountState {
  const w = accountWindow(policy, account);
  const current = last
    ? firstWindow(account.timezone, w, last.opensAt + MIN_NIGHT_GAP_MS, Number.NEGATIVE_INFINITY)
    : firstWindow(account.timezone, w, Number.NEGATIVE_INFINITY, since);
  return make({
    account,
    since,
    last,
    newestGood,
    current,
    startAt: startTime(current, policy.name, account.id),
    failures: 0,
    retryAt: undefined,
    catchUpUntil: undefined,
    runningSince: undefined,
  });
}

/** `place` after `s`'s settled window `last`. */
function placeAfter(policy: FleetPolicy, s: AccountState, last: SettledWindow | undefined): AccountState {
  return place(policy, s.account, s.since, s.newestGood, last);
}

/** Whether the account should start a run now (it may still wait for capacity). */
export function isDue(s: AccountState, now: number): boolean {
  return s.nextDue <= now && now < s.settleAt && s.nextDue < s.settleAt;
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
  if (s.runningSince !== undefined) return { state: s, missed: NONE };
  let missed: MissedWindow[] | undefined;
  const { account } = s;
  const w = accountWindow(policy, account);
  if (s.current.zone !== account.timezone || !sameWindow(s.current.window, w)) {
    checkTimeZone(account.timezone, account.id);
    // A window already reported missed is settled as such, so the new zone cannot report the
    // same night again.
    s = placeAfter(policy, s, s.catchUpUntil !== undefined ? settledMissed(s.current) : s.last);
  }
  while (now >= s.current.closesAt) {
    if (s.catchUpUntil !== undefined) {
      if (now < s.catchUpUntil) break;
      s = placeAfter(policy, s, settledMissed(s.current));
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
    missed ??= [];
    missed.push({
      accountId: account.id,
      key: s.current.key,
      opensAt: s.current.opensAt,
      closesAt: s.current.closesAt,
      failures: s.failures,
      catchUp,
    });
    if (catchUp) {
      s = change(s, { catchUpUntil });
      break;
    }
    s = placeAfter(policy, s, settledMissed(s.current));
  }
  return { state: s, missed: missed ?? NONE };
}

const NONE: readonly MissedWindow[] = Object.freeze([]);

/**
 * The account's timezone or window changed (its source says so): the row from now on. The next
 * window comes from the new zone (see `advance`); a running account keeps its run, and its next
 * window is placed in the new zone when the run reports back.
 */
export function changeAccount(
  policy: FleetPolicy,
  s: AccountState,
  account: FleetAccount,
  now: number,
): Step {
  if (account.id !== s.account.id) throw new Error(`account ${account.id} is not ${s.account.id}`);
  return advance(policy, change(s, { account }), now);
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

/** Internal to the fleet module (events.ts). */
export const internal = { placeAfter };
