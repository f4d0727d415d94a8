/**
 * Timezone arithmetic on Node's built-in Intl (full ICU ships with Node 20, 22 and 24; no tz
 * library). Intl only answers "what does the wall clock show at this instant", and that is slow
 * (microseconds), so offsets are cached per zone and UTC day: two probes per day, and a bisection
 * to the second on a day whose offset changes. That assumes at most one change per UTC day, which
 * holds for every rule in the tz database (a skipped whole day, as Pacific/Apia in 2011, is one
 * change of +24 h).
 */

const DAY = 86_400_000;

const formats = new Map<string, Intl.DateTimeFormat>();

function format(zone: string): Intl.DateTimeFormat {
  let f = formats.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formats.set(zone, f);
  }
  return f;
}

/** Whether Intl knows the zone name. */
export function isTimeZone(zone: string): boolean {
  if (zone === "") return false;
  try {
    format(zone);
    return true;
  } catch {
    return false;
  }
}

/** The zone's UTC offset (ms, east positive) at an instant, asked of Intl directly. */
function probe(zone: string, instant: number): number {
  const t = Math.floor(instant / 1000) * 1000;
  let y = 0;
  let mo = 0;
  let d = 0;
  let h = 0;
  let mi = 0;
  let s = 0;
  for (const p of format(zone).formatToParts(t)) {
    if (p.type === "year") y = Number(p.value);
    else if (p.type === "month") mo = Number(p.value);
    else if (p.type === "day") d = Number(p.value);
    else if (p.type === "hour") h = Number(p.value);
    else if (p.type === "minute") mi = Number(p.value);
    else if (p.type === "second") s = Number(p.value);
  }
  return Date.UTC(y, mo - 1, d, h, mi, s) - t;
}

/** One UTC day of a zone: the offset at its start, and where it changes (if it does that day). */
interface DayOffsets {
  readonly before: number;
  readonly changeAt: number;
  readonly after: number;
}

const MAX_DAYS_PER_ZONE = 8192;
const days = new Map<string, Map<number, DayOffsets>>();

function dayOffsets(zone: string, day: number): DayOffsets {
  let perZone = days.get(zone);
  if (!perZone) {
    perZone = new Map();
    days.set(zone, perZone);
  }
  let e = perZone.get(day);
  if (e) return e;
  const start = day * DAY;
  const before = probe(zone, start);
  const after = probe(zone, start + DAY);
  if (before === after) e = { before, changeAt: Number.POSITIVE_INFINITY, after };
  else {
    // The first second at which the new offset holds.
    let lo = start;
    let hi = start + DAY;
    while (hi - lo > 1000) {
      const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
      if (probe(zone, mid) === before) lo = mid;
      else hi = mid;
    }
    e = { before, changeAt: hi, after };
  }
  // A daemon running for years touches a few thousand days per zone at most; forget them all
  // rather than keep an LRU (they are cheap to probe again).
  if (perZone.size >= MAX_DAYS_PER_ZONE) perZone.clear();
  perZone.set(day, e);
  return e;
}

/** UTC offset of the zone at an instant, in ms (Europe/Berlin in summer: 7_200_000). */
export function offsetAt(zone: string, instant: number): number {
  const e = dayOffsets(zone, Math.floor(instant / DAY));
  return instant < e.changeAt ? e.before : e.after;
}

/** The wall clock at an instant, as ms since 1970-01-01T00:00 of that wall clock. */
export function wallAt(zone: string, instant: number): number {
  return instant + offsetAt(zone, instant);
}

/** The local date (days since 1970-01-01) at an instant. */
export function localDay(zone: string, instant: number): number {
  return Math.floor(wallAt(zone, instant) / DAY);
}

/**
 * The instant a wall-clock time happens (wall: ms since 1970-01-01T00:00 local). The DST rule,
 * the same as RFC 5545 and Temporal's "compatible" disambiguation:
 * - a time the clocks skip (02:30 on a spring-forward night) is moved forward by the length of
 *   the gap (to 03:30), so a start time in the gap happens just after it;
 * - a time the clocks show twice (01:30 on a fall-back night) is the earlier of the two.
 */
export function wallToInstant(zone: string, wall: number): number {
  // Offsets are within ±26 h, so the instant lies within a day of `wall` read as UTC; the offsets
  // a day before and after are the ones in force before and after any change near it.
  const early = offsetAt(zone, wall - DAY);
  const late = offsetAt(zone, wall + DAY);
  if (early === late) return wall - early;
  const a = wall - early;
  const b = wall - late;
  const aFits = offsetAt(zone, a) === early;
  const bFits = offsetAt(zone, b) === late;
  if (aFits && bFits) return Math.min(a, b); // shown twice: the earlier
  if (aFits) return a;
  if (bFits) return b;
  return a; // skipped: read with the offset before the gap, which lands after it
}

/** `2025-03-09` for a day number. */
export function isoDate(day: number): string {
  return new Date(day * DAY).toISOString().slice(0, 10);
}
