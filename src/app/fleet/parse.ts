import { LifeboatError } from "../../core/errors.js";
import { isTimeZone } from "./zone.js";

/**
 * A daily window in local wall-clock time: minutes after local midnight. `end <= start` means the
 * window crosses midnight (23:00-03:00 ends on the next local date); 00:00-24:00 is the whole day.
 */
export interface DailyWindow {
  readonly start: number;
  readonly end: number;
}

/** Minutes a window lasts by the wall clock (a DST night can make it an hour shorter or longer). */
export function windowMinutes(w: DailyWindow): number {
  return w.end > w.start ? w.end - w.start : w.end + 1440 - w.start;
}

export function formatWindow(w: DailyWindow): string {
  return `${clock(w.start)}-${clock(w.end)}`;
}

export function clock(minutes: number): string {
  return `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;
}

/** `01:00-05:00`, `23:00-03:00` (across midnight), `00:00-24:00` (all day). */
export function parseWindow(text: string, what = "fleet window"): DailyWindow {
  const m = /^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$/.exec(text);
  const bad = (why: string) =>
    new LifeboatError(
      "USAGE",
      `${what}: ${JSON.stringify(text)} ${why}`,
      "write the window as local start-end, e.g. 01:00-05:00 or 23:00-03:00 (across midnight)",
    );
  if (!m) throw bad("is not a window like 01:00-05:00");
  const [sh, sm, eh, em] = [m[1], m[2], m[3], m[4]].map(Number) as [number, number, number, number];
  if (sh > 23 || sm > 59 || eh > 24 || em > 59 || (eh === 24 && em !== 0))
    throw bad("has a time that is not on a 24-hour clock");
  const start = sh * 60 + sm;
  const end = eh * 60 + em;
  if (start === end % 1440 && !(start === 0 && end === 1440))
    throw bad("starts when it ends (for a whole day write 00:00-24:00)");
  return { start, end };
}

const UNIT_MS: Record<string, number> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 };

/**
 * A fleet duration: `24h`, `90m`, `1h30m`, `2d`, `45s` (d, h, m = minutes, s). Unlike retention
 * durations (`ops/forget`), `m` is minutes here: fleet figures are hours and minutes, not months.
 */
export function parseDuration(text: string, what = "duration"): number {
  const s = text.trim();
  let total = 0;
  let consumed = 0;
  for (const m of s.matchAll(/(\d+)([dhms])/g)) {
    if (m.index !== consumed) break;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    consumed += m[0].length;
  }
  if (consumed === 0 || consumed !== s.length || total <= 0)
    throw new LifeboatError(
      "USAGE",
      `${what}: ${JSON.stringify(text)} is not a duration like 24h, 90m or 1h30m`,
      "use whole numbers with d (days), h (hours), m (minutes) or s (seconds), e.g. 24h",
    );
  return total;
}

/**
 * The account's timezone, checked: an IANA name this Node's Intl knows. Offsets like `+02:00`
 * are refused on every Node version (Node 20 refuses them, newer ones accept them) so that a
 * fleet behaves the same everywhere; an offset has no DST, so `Etc/GMT-2` says the same thing.
 */
export function checkTimeZone(zone: string, accountId: string): string {
  if (/^[+-]/.test(zone) || !isTimeZone(zone))
    throw new LifeboatError(
      "USAGE",
      `account ${accountId}: unknown timezone ${JSON.stringify(zone)}`,
      `set the account's timezone to an IANA name such as "Europe/Berlin" or "America/New_York" (fixed offsets: "Etc/GMT-2" is UTC+2)`,
    );
  return zone;
}
