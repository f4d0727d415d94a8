/**
 * The fleet's scheduling core: many accounts of one service, each backed up in its own
 * timezone's night. Pure functions over plain values (no I/O, no clock, no repository): a store
 * (SQLite, PostgreSQL + pg-boss) keeps one `AccountState` per account and a dispatcher calls
 * `due()` each tick with the rows whose `settleAt <= now` and the most urgent rows whose
 * `nextDue <= now`. The design (window, key, due/missed, next_due,
 * DST rule) is described in docs/fleet-simulation.md.
 *
 * Life of a row:
 *   addAccount() -> due() picks it (started) -> succeeded() / failed() -> ... -> due() ...
 * `changeAccount()` when the account's timezone or window changes; `advance()` brings any row up
 * to now (settles missed windows). `fleetFigures()` and `accountRpo()` for status.
 */
export {
  type AccountFields,
  type AccountState,
  addAccount,
  advance,
  changeAccount,
  type FleetAccount,
  isCatchUp,
  isDue,
  type MissedWindow,
  nextDue,
  restoreState,
  type SettledWindow,
  type Step,
} from "./account.js";
export { retryDelay } from "./backoff.js";
export { type DueRun, due, pressure, type Tick } from "./due.js";
export { failed, started, succeeded } from "./events.js";
export {
  checkTimeZone,
  type DailyWindow,
  formatWindow,
  parseDuration,
  parseWindow,
  windowMinutes,
} from "./parse.js";
export {
  type CatchUp,
  DEFAULT_RPO,
  DEFAULT_WINDOW,
  type FleetPolicy,
  type FleetPolicyOptions,
  fleetPolicy,
} from "./policy.js";
export {
  accountRpo,
  type BacklogState,
  backlogState,
  type FleetFigures,
  fleetFigures,
  type RpoStatus,
  rpoStatus,
} from "./rpo.js";
export { firstWindow, MIN_NIGHT_GAP_MS, startTime, type WindowInstance, windowOn } from "./window.js";
export { localDay, offsetAt, wallToInstant } from "./zone.js";
