/** Absolute times of calendar components as a real iCalendar library (ical.js) reads them. */
import ICAL from "ical.js";

export interface Instants {
  dtstart: number;
  dtend: number;
  exdates: number[];
}

/** UID → the absolute DTSTART, DTEND and EXDATE instants (ms) of every VEVENT in `text`. */
export function eventInstants(text: string): Map<string, Instants> {
  const cal = new ICAL.Component(ICAL.parse(text));
  const out = new Map<string, Instants>();
  for (const ev of cal.getAllSubcomponents("vevent")) {
    const at = (name: string) => {
      const t = ev.getFirstPropertyValue(name) as ICAL.Time;
      assertDefined(cal, t);
      return t.toJSDate().getTime();
    };
    const exdates = ev
      .getAllProperties("exdate")
      .flatMap((p) => p.getValues() as ICAL.Time[])
      .map((t) => {
        assertDefined(cal, t);
        return t.toJSDate().getTime();
      });
    out.set(String(ev.getFirstPropertyValue("uid")), { dtstart: at("dtstart"), dtend: at("dtend"), exdates });
  }
  return out;
}

/** A TZID the calendar does not define would silently be read as floating (local) time. */
function assertDefined(cal: ICAL.Component, t: ICAL.Time): void {
  if (t.zone === ICAL.Timezone.utcTimezone) return;
  if (!t.zone || t.zone === ICAL.Timezone.localTimezone)
    throw new Error(`time ${t.toString()} has a TZID that the calendar does not define`);
  const ids = cal.getAllSubcomponents("vtimezone").map((z) => z.getFirstPropertyValue("tzid"));
  if (!ids.includes(t.zone.tzid)) throw new Error(`zone ${t.zone.tzid} is not one of ${ids.join(", ")}`);
}
