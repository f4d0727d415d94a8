import assert from "node:assert/strict";
import type { Radicale } from "../support/radicale.js";

/** What the tests put into an account, item by item. */
export interface SeededItem {
  /** Path on the server, e.g. /ann/contacts/contact-7.vcf */
  href: string;
  uid: string;
  body: string;
}
export interface SeededCollection {
  kind: "addressbook" | "calendar";
  /** Path on the server, ending with / (percent-encoded as sent). */
  path: string;
  /** Its directory name in the snapshot (the decoded last segment). */
  name: string;
  displayname: string;
  items: SeededItem[];
}

const CRLF = (lines: string[]) => `${lines.join("\r\n")}\r\n`;

export const BERLIN = [
  "BEGIN:VTIMEZONE",
  "TZID:Europe/Berlin",
  "BEGIN:DAYLIGHT",
  "TZOFFSETFROM:+0100",
  "TZOFFSETTO:+0200",
  "TZNAME:CEST",
  "DTSTART:19700329T020000",
  "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
  "END:DAYLIGHT",
  "BEGIN:STANDARD",
  "TZOFFSETFROM:+0200",
  "TZOFFSETTO:+0100",
  "TZNAME:CET",
  "DTSTART:19701025T030000",
  "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
  "END:STANDARD",
  "END:VTIMEZONE",
];
export const NEW_YORK = [
  "BEGIN:VTIMEZONE",
  "TZID:America/New_York",
  "BEGIN:DAYLIGHT",
  "TZOFFSETFROM:-0500",
  "TZOFFSETTO:-0400",
  "TZNAME:EDT",
  "DTSTART:19700308T020000",
  "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU",
  "END:DAYLIGHT",
  "BEGIN:STANDARD",
  "TZOFFSETFROM:-0400",
  "TZOFFSETTO:-0500",
  "TZNAME:EST",
  "DTSTART:19701101T020000",
  "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU",
  "END:STANDARD",
  "END:VTIMEZONE",
];

const NAMES = [
  "Jörg Müller",
  "Zoë Ørsted",
  "Łukasz Żółć",
  "Søren Kierkegård",
  "李小龙",
  "Ελένη Παππά",
  "Дмитрий Шостакович",
  "Ñandú García",
  "Ann O'Neil",
  "Émile Zola",
];

export function vcard(uid: string, i: number, extra = ""): string {
  const fn = `${NAMES[i % NAMES.length]} ${i}`;
  const [given, family] = fn.split(" ");
  return CRLF([
    "BEGIN:VCARD",
    "VERSION:3.0",
    `UID:${uid}`,
    `FN:${fn}`,
    `N:${family};${given};;;`,
    `EMAIL;TYPE=INTERNET:person${i}@example.org`,
    `TEL;TYPE=CELL:+49 170 ${String(1000000 + i)}`,
    ...(i % 7 === 0 ? [`NOTE:${"Notiz mit Umlauten äöü und Komma\\, ".repeat(4)}${extra}`] : []),
    "END:VCARD",
  ]);
}

const VCAL = (body: string[]) =>
  CRLF(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//lifeboat tests//EN", ...body, "END:VCALENDAR"]);

export function event(
  uid: string,
  i: number,
  summary = `Termin ${i} – Besprechung «${NAMES[i % NAMES.length]}»`,
): string {
  const day = String(1 + (i % 28)).padStart(2, "0");
  const month = String(1 + (Math.floor(i / 28) % 12)).padStart(2, "0");
  if (i % 3 === 1)
    return VCAL([
      ...BERLIN,
      "BEGIN:VEVENT",
      `UID:${uid}`,
      "DTSTAMP:20240101T000000Z",
      `DTSTART;TZID=Europe/Berlin:2024${month}${day}T090000`,
      `DTEND;TZID=Europe/Berlin:2024${month}${day}T100000`,
      `SUMMARY:${summary}`,
      "END:VEVENT",
    ]);
  if (i % 3 === 2)
    return VCAL([
      ...NEW_YORK,
      "BEGIN:VEVENT",
      `UID:${uid}`,
      "DTSTAMP:20240101T000000Z",
      `DTSTART;TZID=America/New_York:2024${month}${day}T140000`,
      `DTEND;TZID=America/New_York:2024${month}${day}T150000`,
      `SUMMARY:${summary}`,
      "END:VEVENT",
    ]);
  return VCAL([
    "BEGIN:VEVENT",
    `UID:${uid}`,
    "DTSTAMP:20240101T000000Z",
    `DTSTART:2024${month}${day}T120000Z`,
    `DTEND:2024${month}${day}T130000Z`,
    `SUMMARY:${summary}`,
    "END:VEVENT",
  ]);
}

export const RECURRING_UID = "weekly-standup@lifeboat.test";
export const ALLDAY_UID = "holiday@lifeboat.test";

const special = (): SeededItem[] => [
  {
    href: "weekly.ics",
    uid: RECURRING_UID,
    body: VCAL([
      ...BERLIN,
      "BEGIN:VEVENT",
      `UID:${RECURRING_UID}`,
      "DTSTAMP:20240101T000000Z",
      "DTSTART;TZID=Europe/Berlin:20240108T090000",
      "DTEND;TZID=Europe/Berlin:20240108T091500",
      "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=20",
      "EXDATE;TZID=Europe/Berlin:20240115T090000,20240122T090000",
      "SUMMARY:Wöchentliches Stand-up",
      "END:VEVENT",
    ]),
  },
  {
    href: "holiday.ics",
    uid: ALLDAY_UID,
    body: VCAL([
      "BEGIN:VEVENT",
      `UID:${ALLDAY_UID}`,
      "DTSTAMP:20240101T000000Z",
      "DTSTART;VALUE=DATE:20241003",
      "DTEND;VALUE=DATE:20241004",
      "SUMMARY:Tag der Deutschen Einheit",
      "END:VEVENT",
    ]),
  },
];

export function todo(uid: string, i: number): string {
  return VCAL([
    "BEGIN:VTODO",
    `UID:${uid}`,
    "DTSTAMP:20240101T000000Z",
    `SUMMARY:Aufgabe ${i}: Steuererklärung prüfen`,
    `DUE;VALUE=DATE:202406${String(10 + i).padStart(2, "0")}`,
    "STATUS:NEEDS-ACTION",
    "END:VTODO",
  ]);
}

async function mk(rad: Radicale, user: string, c: SeededCollection, components?: string[]): Promise<void> {
  const body =
    c.kind === "addressbook"
      ? `<?xml version="1.0" encoding="utf-8"?><d:mkcol xmlns:d="DAV:" xmlns:a="urn:ietf:params:xml:ns:carddav"><d:set><d:prop><d:resourcetype><d:collection/><a:addressbook/></d:resourcetype><d:displayname>${c.displayname}</d:displayname></d:prop></d:set></d:mkcol>`
      : `<?xml version="1.0" encoding="utf-8"?><c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop><d:displayname>${c.displayname}</d:displayname><c:supported-calendar-component-set>${(components ?? []).map((n) => `<c:comp name="${n}"/>`).join("")}</c:supported-calendar-component-set></d:prop></d:set></c:mkcalendar>`;
  const r = await rad.request(user, c.kind === "addressbook" ? "MKCOL" : "MKCALENDAR", c.path, body, {
    "Content-Type": "application/xml; charset=utf-8",
  });
  assert.equal(r.status, 201, `creating ${c.path}: ${r.status} ${r.text}`);
}

export async function putItem(
  rad: Radicale,
  user: string,
  kind: "addressbook" | "calendar",
  href: string,
  body: string,
): Promise<void> {
  const r = await rad.request(user, "PUT", href, body, {
    "Content-Type": kind === "addressbook" ? "text/vcard; charset=utf-8" : "text/calendar; charset=utf-8",
  });
  assert.ok(r.status === 201 || r.status === 204, `PUT ${href}: ${r.status} ${r.text}`);
}

/** Two address books, two calendars (events, tasks): 200 + 6 + 102 + 5 items. */
export async function seedAccount(rad: Radicale, user: string): Promise<SeededCollection[]> {
  const cols: SeededCollection[] = [
    { kind: "addressbook", path: `/${user}/contacts/`, name: "contacts", displayname: "Kontakte", items: [] },
    {
      kind: "addressbook",
      path: `/${user}/Familie%20M%C3%BCller/`,
      name: "Familie Müller",
      displayname: "Familie Müller",
      items: [],
    },
    { kind: "calendar", path: `/${user}/work/`, name: "work", displayname: "Arbeit ✓", items: [] },
    { kind: "calendar", path: `/${user}/tasks/`, name: "tasks", displayname: "Aufgaben", items: [] },
  ];
  const [contacts, family, work, tasks] = cols as [
    SeededCollection,
    SeededCollection,
    SeededCollection,
    SeededCollection,
  ];
  await mk(rad, user, contacts);
  await mk(rad, user, family);
  await mk(rad, user, work, ["VEVENT"]);
  await mk(rad, user, tasks, ["VTODO"]);
  for (let i = 0; i < 200; i++)
    contacts.items.push({ href: `contact-${i}.vcf`, uid: `contact-${i}`, body: vcard(`contact-${i}`, i) });
  for (let i = 0; i < 6; i++)
    family.items.push({
      href: `fam ${i}.vcf`,
      uid: `fam-${i}@lifeboat.test`,
      body: vcard(`fam-${i}@lifeboat.test`, i + 3),
    });
  for (let i = 0; i < 100; i++)
    work.items.push({ href: `event-${i}.ics`, uid: `event-${i}`, body: event(`event-${i}`, i) });
  work.items.push(...special());
  for (let i = 0; i < 5; i++)
    tasks.items.push({ href: `todo-${i}.ics`, uid: `todo-${i}`, body: todo(`todo-${i}`, i) });
  for (const c of cols) {
    for (const it of c.items) {
      it.href = `${c.path}${encodeURIComponent(it.href)}`;
      await putItem(rad, user, c.kind, it.href, it.body);
    }
  }
  return cols;
}

/**
 * Two events as Outlook/Exchange writes them: both name their zone `Customized Time Zone`, one
 * at a fixed +04:30, the other at -05:00 with US daylight saving rules, and the second quotes the
 * TZID parameter. `instants` are the absolute times (UTC, ms) each event means on its own.
 */
export const CUSTOM_TZ = "Customized Time Zone";
export interface OutlookEvent {
  uid: string;
  body: string;
  instants: { dtstart: number; dtend: number; exdates: number[] };
}
export function outlookEvents(): OutlookEvent[] {
  const kabulLike = [
    "BEGIN:VTIMEZONE",
    `TZID:${CUSTOM_TZ}`,
    "BEGIN:STANDARD",
    "DTSTART:16010101T000000",
    "TZOFFSETFROM:+0430",
    "TZOFFSETTO:+0430",
    "END:STANDARD",
    "END:VTIMEZONE",
  ];
  const easternLike = [
    "BEGIN:VTIMEZONE",
    `TZID:${CUSTOM_TZ}`,
    "BEGIN:STANDARD",
    "DTSTART:16010101T020000",
    "TZOFFSETFROM:-0400",
    "TZOFFSETTO:-0500",
    "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=11",
    "END:STANDARD",
    "BEGIN:DAYLIGHT",
    "DTSTART:16010101T020000",
    "TZOFFSETFROM:-0500",
    "TZOFFSETTO:-0400",
    "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=2SU;BYMONTH=3",
    "END:DAYLIGHT",
    "END:VTIMEZONE",
  ];
  return [
    {
      uid: "outlook-plus-0430@lifeboat.test",
      body: VCAL([
        ...kabulLike,
        "BEGIN:VEVENT",
        "UID:outlook-plus-0430@lifeboat.test",
        "DTSTAMP:20240101T000000Z",
        `DTSTART;TZID=${CUSTOM_TZ}:20240715T100000`,
        `DTEND;TZID=${CUSTOM_TZ}:20240715T110000`,
        "SUMMARY:Call with the Kabul office",
        "END:VEVENT",
      ]),
      instants: {
        dtstart: Date.UTC(2024, 6, 15, 5, 30),
        dtend: Date.UTC(2024, 6, 15, 6, 30),
        exdates: [],
      },
    },
    {
      uid: "outlook-minus-0500@lifeboat.test",
      body: VCAL([
        ...easternLike,
        "BEGIN:VEVENT",
        "UID:outlook-minus-0500@lifeboat.test",
        "DTSTAMP:20240101T000000Z",
        `DTSTART;TZID="${CUSTOM_TZ}":20240715T100000`,
        `DTEND;TZID="${CUSTOM_TZ}":20240715T110000`,
        "RRULE:FREQ=WEEKLY;COUNT=30",
        `EXDATE;TZID=${CUSTOM_TZ}:20240722T100000,20241111T100000`,
        "SUMMARY:Weekly with New York",
        "END:VEVENT",
      ]),
      instants: {
        dtstart: Date.UTC(2024, 6, 15, 14, 0),
        dtend: Date.UTC(2024, 6, 15, 15, 0),
        // 22 July in daylight time (-04:00), 11 November in standard time (-05:00).
        exdates: [Date.UTC(2024, 6, 22, 14, 0), Date.UTC(2024, 10, 11, 15, 0)],
      },
    },
  ];
}

/** A calendar `outlook` holding the two `outlookEvents()`. */
export async function seedOutlook(rad: Radicale, user: string): Promise<SeededCollection> {
  const c: SeededCollection = {
    kind: "calendar",
    path: `/${user}/outlook/`,
    name: "outlook",
    displayname: "Exchange",
    items: [],
  };
  await mk(rad, user, c, ["VEVENT"]);
  for (const [i, e] of outlookEvents().entries()) {
    const it = { href: `${c.path}outlook-${i}.ics`, uid: e.uid, body: e.body };
    await putItem(rad, user, "calendar", it.href, it.body);
    c.items.push(it);
  }
  return c;
}
