import { stableFraction } from "./hash.js";
import { clock, type DailyWindow, windowMinutes } from "./parse.js";
import { isoDate, localDay, wallToInstant } from "./zone.js";

const DAY = 86_400_000;
const MINUTE = 60_000;

/**
 * Two windows of one account are at least this far apart (by their opening). Within one zone they
 * are 23-25 h apart anyway; the rule matters when an account's timezone or window changes: a
 * window of the new zone that opens sooner than this after the account's last window belongs to
 * the same night and is passed over; the next one is taken. So runs are never closer than 12 h
 * and, after a change, never further apart than 36 h (a move of up to 26 h west or east).
 */
export const MIN_NIGHT_GAP_MS = 12 * 3_600_000;

/** One night's window of one zone. Shared by every account of that zone and window. */
export interface WindowInstance {
  /**
   * Stable name of the window: its nominal local opening and zone, in the form Temporal parses,
   * e.g. `2025-03-09T01:00[Europe/Berlin]`. Unique per account (two windows of an account are
   * 12 h apart, so they differ in date, time or zone), the same in every process: the lease and
   * the "has this window a snapshot or unchanged-check" lookup use it.
   */
  readonly key: string;
  readonly zone: string;
  readonly window: DailyWindow;
  /** Local date of the opening, days since 1970-01-01. */
  readonly day: number;
  /** Local wall clock of the opening (ms since 1970-01-01T00:00 local). */
  readonly wallOpen: number;
  readonly opensAt: number;
  readonly closesAt: number;
}

// Instances are shared: zone -> window -> local day. Bounded like the offset cache.
const MAX_INSTANCES_PER_ZONE = 16_384;
const instances = new Map<string, Map<number, WindowInstance>>();

/** The window of `zone` that opens on local date `day` (days since 1970-01-01). */
export function windowOn(zone: string, w: DailyWindow, day: number): WindowInstance {
  let perZone = instances.get(zone);
  if (!perZone) {
    perZone = new Map();
    instances.set(zone, perZone);
  }
  const id = (day * 1441 + w.start) * 1441 + w.end;
  let inst = perZone.get(id);
  if (inst) return inst;
  const wallOpen = day * DAY + w.start * MINUTE;
  const wallClose = wallOpen + windowMinutes(w) * MINUTE;
  // Opening and closing follow the wall clock and the DST rule of wallToInstant: a window over a
  // spring-forward change is an hour (Lord Howe: half an hour) shorter, over a fall-back change
  // longer; an opening or closing inside a skipped hour moves to just after it.
  inst = {
    key: `${isoDate(day)}T${clock(w.start)}[${zone}]`,
    zone,
    window: w,
    day,
    wallOpen,
    opensAt: wallToInstant(zone, wallOpen),
    closesAt: wallToInstant(zone, wallClose),
  };
  if (perZone.size >= MAX_INSTANCES_PER_ZONE) perZone.clear();
  perZone.set(id, inst);
  return inst;
}

/**
 * The first window of `zone` that opens at or after `opensFrom` and closes after `closesAfter`.
 * After a settled window L: `opensFrom = L.opensAt + MIN_NIGHT_GAP_MS`. For a new account:
 * `closesAfter` = when it joined (a window open then still counts).
 */
export function firstWindow(
  zone: string,
  w: DailyWindow,
  opensFrom: number,
  closesAfter: number,
): WindowInstance {
  const from = Math.max(opensFrom, closesAfter - windowMinutes(w) * MINUTE);
  // Start a day early: the local date at `from` may be one past the date whose window qualifies;
  // a few days always suffice. A NaN (a damaged row) is an error, not an endless search.
  if (Number.isFinite(from)) {
    const first = localDay(zone, from) - 1;
    for (let day = first; day < first + 8; day++) {
      const inst = windowOn(zone, w, day);
      if (inst.opensAt >= opensFrom && inst.closesAt > closesAfter) return inst;
    }
  }
  throw new Error(`no window of ${zone} opens from ${opensFrom} and closes after ${closesAfter}`);
}

/**
 * When an account starts in a window: at a fixed local time in the first half of the window,
 * from a hash of the fleet name and account id (to the second). Load is flat across the half,
 * the account starts at the same local time every night, and the second half is left for
 * retries and backlog. A start time the clocks skip happens just after the gap; one they show
 * twice, the first time.
 */
export function startTime(inst: WindowInstance, fleet: string, accountId: string): number {
  const halfSeconds = Math.floor((windowMinutes(inst.window) * 60) / 2);
  const offset = Math.floor(stableFraction(fleet, accountId) * halfSeconds) * 1000;
  const t = wallToInstant(inst.zone, inst.wallOpen + offset);
  return Math.min(Math.max(t, inst.opensAt), inst.closesAt - 1000);
}
