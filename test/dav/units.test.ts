/** DAV pieces without a server: the XML reader with varying prefixes, content lines, names, state. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { hrefKey, parseMultistatus, prop } from "../../src/sources/dav/client.js";
import {
  decodeCollectionState,
  encodeCollectionState,
  escapeName,
  itemFileName,
} from "../../src/sources/dav/collection-state.js";
import { collectionOf } from "../../src/sources/dav/discover.js";
import { type CalendarComponent, calendarComponents, foldLine, uidOf } from "../../src/sources/dav/ical.js";
import { normaliseTimezone, rewriteTzidParams, TimezoneMerger } from "../../src/sources/dav/ical-merge.js";
import { NS, parseXml } from "../../src/sources/dav/xml.js";
import { eventInstants } from "./ical-instants.js";
import { CUSTOM_TZ, type OutlookEvent, outlookEvents } from "./seed.js";

const BASE = "https://dav.example.org/cal/ann/";

test("multistatus with d:, D: and default-namespace prefixes reads the same", () => {
  const card = "BEGIN:VCARD\r\nUID:a&b\r\nFN:Jörg <J>\r\nEND:VCARD\r\n";
  const docs = [
    `<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav"><d:response><d:href>/cal/ann/a%20b.vcf</d:href><d:propstat><d:prop><d:getetag>"1"</d:getetag><card:address-data>${card.replace(/&/g, "&amp;").replace(/</g, "&lt;")}</card:address-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat><d:propstat><d:prop><d:displayname/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response></d:multistatus>`,
    `<D:multistatus xmlns:D="DAV:"><D:response><D:href>https://dav.example.org/cal/ann/a%20b.vcf</D:href><D:propstat><D:prop><D:getetag>"1"</D:getetag><C:address-data xmlns:C="urn:ietf:params:xml:ns:carddav"><![CDATA[${card}]]></C:address-data></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>`,
    `<!-- a comment --><multistatus xmlns="DAV:"><response><href>a%20b.vcf</href><propstat><prop><getetag>&quot;1&quot;</getetag><address-data xmlns="urn:ietf:params:xml:ns:carddav">${card.replace(/&/g, "&#38;").replace(/</g, "&#x3C;")}</address-data></prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>`,
  ];
  for (const doc of docs) {
    const ms = parseMultistatus(doc, BASE, "test");
    assert.equal(ms.responses.length, 1);
    const r = ms.responses[0]!;
    assert.equal(hrefKey(r.url), "/cal/ann/a b.vcf");
    assert.equal(prop(r, NS.dav, "getetag")?.text, '"1"');
    // CRLF kept as sent, entities and CDATA decoded.
    assert.equal(prop(r, NS.carddav, "address-data")?.text, card);
    assert.equal(prop(r, NS.dav, "displayname"), undefined, "404 propstat ignored");
  }
});

test("XML reader: errors on broken documents, no entity expansion beyond the predefined ones", () => {
  assert.throws(() => parseXml("<a><b></a>"), /mismatched/);
  assert.throws(() => parseXml("<a>"), /unclosed/);
  assert.throws(() => parseXml("<x:a/>"), /undeclared namespace prefix/);
  assert.throws(() => parseXml('<!DOCTYPE a [<!ENTITY e "boom">]><a>&e;</a>'), /unknown entity/);
  assert.throws(() => parseMultistatus("<html/>", BASE, "t"), /expected a DAV:multistatus/);
});

test("collections: resourcetype, sync support, components", () => {
  const doc = `<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/"><response><href>/cal/ann/work/</href><propstat><prop><resourcetype><collection/><C:calendar/></resourcetype><displayname>Arbeit</displayname><CS:getctag>"c1"</CS:getctag><supported-report-set><supported-report><report><sync-collection/></report></supported-report></supported-report-set><C:supported-calendar-component-set><C:comp name="VTODO"/><C:comp name="VEVENT"/></C:supported-calendar-component-set></prop><status>HTTP/1.1 200 OK</status></propstat></response><response><href>/cal/ann/</href><propstat><prop><resourcetype><collection/></resourcetype></prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>`;
  const [work, home] = parseMultistatus(doc, BASE, "t").responses;
  const c = collectionOf(work!)!;
  assert.equal(c.kind, "calendar");
  assert.equal(c.displayname, "Arbeit");
  assert.equal(c.ctag, '"c1"');
  assert.equal(c.supportsSync, true);
  assert.deepEqual(c.components, ["VEVENT", "VTODO"]);
  assert.equal(collectionOf(home!), undefined);
});

test("iCalendar structure: folded lines, components, VTIMEZONE ids, UIDs", () => {
  const ics =
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n" +
    "BEGIN:VEVENT\r\nUID:long-\r\n uid\r\nSUMMARY:a\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
  const r = calendarComponents(ics);
  assert.ok("components" in r);
  assert.deepEqual(
    r.components.map((c) => [c.type, c.tzid]),
    [
      ["VTIMEZONE", "Europe/Berlin"],
      ["VEVENT", undefined],
    ],
  );
  assert.equal(r.components[1]!.lines.length, 8);
  assert.equal(uidOf(ics), "long-uid");
  assert.deepEqual(calendarComponents("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n"), {
    error: "END:VCALENDAR closes BEGIN:VEVENT",
  });
  const folded = foldLine(`X-WR-CALNAME:${"ü".repeat(60)}`);
  assert.ok(folded.every((l) => Buffer.byteLength(l) <= 75));
  assert.equal(folded.map((l, i) => (i ? l.slice(1) : l)).join(""), `X-WR-CALNAME:${"ü".repeat(60)}`);
});

test("names and collection state", () => {
  assert.equal(escapeName(".collection.json"), "%2Ecollection.json");
  assert.equal(escapeName("a/b%c"), "a%2Fb%25c");
  assert.equal(escapeName(""), "%");
  const taken = new Set<string>();
  const a = itemFileName("/c/x.vcf", ".vcf", taken);
  taken.add(a);
  const b = itemFileName("/c/x", ".vcf", taken);
  assert.equal(a, "x.vcf");
  assert.match(b, /^x~[0-9a-f]{12}\.vcf$/);
  assert.equal(itemFileName("/c/%2E%2E", ".ics", new Set()), "%2E..ics");
  const s = {
    version: 1 as const,
    kind: "addressbook" as const,
    href: "/c/",
    displayname: "K",
    syncToken: "t",
    items: [
      { href: "/c/b.vcf", etag: '"2"', file: "b.vcf" },
      { href: "/c/a.vcf", etag: '"1"', file: "a.vcf" },
    ],
  };
  const enc = encodeCollectionState(s);
  const dec = decodeCollectionState(enc, "t");
  assert.deepEqual(
    dec.items.map((i) => i.file),
    ["a.vcf", "b.vcf"],
  );
  assert.ok(encodeCollectionState(dec).equals(enc));
  assert.throws(() => decodeCollectionState(Buffer.from('{"version":1,"kind":"x"}'), "t"), /malformed/);
  assert.throws(
    () =>
      decodeCollectionState(
        Buffer.from(
          '{"version":1,"kind":"calendar","href":"/c/","items":[{"href":"/c/a","etag":"","file":"../a"}]}',
        ),
        "t",
      ),
    /file name/,
  );
});

const componentsOf = (text: string): CalendarComponent[] => {
  const r = calendarComponents(text);
  assert.ok("components" in r, "error" in r ? r.error : "");
  return r.components;
};

/** Combines items the way `export calendars` does: merged VTIMEZONEs first, then the rest. */
function combine(items: string[]): { text: string; merger: TimezoneMerger } {
  const merger = new TimezoneMerger();
  const parsed = items.map((t) => ({ comps: componentsOf(t), renames: merger.add(componentsOf(t)) }));
  merger.finish();
  const lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN"];
  for (const z of merger.timezones()) lines.push(...z);
  for (const { comps, renames } of parsed)
    for (const c of comps)
      if (c.type !== "VTIMEZONE") lines.push(...(renames ? rewriteTzidParams(c.lines, renames) : c.lines));
  lines.push("END:VCALENDAR");
  return { text: `${lines.join("\r\n")}\r\n`, merger };
}

test("combined calendar: a reused TZID with other rules gets its own name, every instant kept", () => {
  const events = outlookEvents();
  for (const order of [events, [...events].reverse()]) {
    const { text, merger } = combine(order.map((e) => e.body));
    assert.equal(merger.renamed, 1);
    const tzids = (text.match(/^TZID:.*$/gm) ?? []).map((l) => l.trim());
    assert.deepEqual(tzids, [`TZID:${CUSTOM_TZ}`, `TZID:${CUSTOM_TZ} (2)`]);
    const got = eventInstants(text);
    for (const e of order) {
      assert.deepEqual(eventInstants(e.body).get(e.uid), e.instants, "the fixture means what it says");
      assert.deepEqual(got.get(e.uid), e.instants, e.uid);
    }
    // The renamed reference stays quoted where it was quoted.
    if (order[0] === events[0])
      assert.match(text, /^DTSTART;TZID="Customized Time Zone \(2\)":20240715T100000\r$/m);
  }
  // What the first-wins merge did: the second event read in the first event's zone.
  const firstWins = events
    .map((e) => e.body)
    .join("")
    .replace(
      /END:VCALENDAR\r\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:[^\r]*\r\nBEGIN:VTIMEZONE[\s\S]*?END:VTIMEZONE\r\n/,
      "",
    );
  const wrong = eventInstants(firstWins).get(events[1]!.uid)!;
  assert.equal(wrong.dtstart - events[1]!.instants.dtstart, -8.5 * 3600_000);
});

test("combined calendar: equal VTIMEZONEs are kept once, taken names are skipped", () => {
  const [a, b] = outlookEvents() as [OutlookEvent, OutlookEvent];
  // The same zone refolded, with another LAST-MODIFIED and lower-case names, is the same zone.
  const refolded = a.body
    .replace("TZOFFSETTO:+0430", "tzoffsetto:+04\r\n 30")
    .replace("BEGIN:STANDARD", "LAST-MODIFIED:20240101T000000Z\r\nBEGIN:STANDARD");
  const z = (t: string) => componentsOf(t).find((c) => c.type === "VTIMEZONE")!.lines;
  assert.equal(normaliseTimezone(z(a.body)), normaliseTimezone(z(refolded)));
  assert.notEqual(normaliseTimezone(z(a.body)), normaliseTimezone(z(b.body)));
  const same = combine([a.body, refolded]);
  assert.equal(same.merger.renamed, 0);
  assert.equal(same.merger.deduplicated, 1);
  assert.equal(same.text.match(/^BEGIN:VTIMEZONE/gm)?.length, 1);

  // A calendar that already uses the name "Customized Time Zone (2)" for yet another zone.
  const taken = a.body
    .replaceAll(CUSTOM_TZ, `${CUSTOM_TZ} (2)`)
    .replace("+0430", "+0545")
    .replace("+0430", "+0545");
  const three = combine([a.body, taken, b.body]);
  assert.deepEqual(
    (three.text.match(/^TZID:.*$/gm) ?? []).map((l) => l.trim()),
    [`TZID:${CUSTOM_TZ}`, `TZID:${CUSTOM_TZ} (3)`, `TZID:${CUSTOM_TZ} (2)`],
  );
  assert.deepEqual(eventInstants(three.text).get(outlookEvents()[1]!.uid), outlookEvents()[1]!.instants);

  // TZID parameters: quoted or not, any property; other lines keep their bytes (and folding).
  const renames = new Map([
    ["A;B", "A;B (2)"],
    ["Z", "Z (2)"],
  ]);
  assert.deepEqual(
    rewriteTzidParams(
      [
        'RDATE;VALUE=DATE-TIME;TZID="A;B":20240101T000000',
        "X-FOO;tzid=Z:1",
        "DESCRIPTION:TZID=Z",
        " (folded)",
      ],
      renames,
    ),
    [
      'RDATE;VALUE=DATE-TIME;TZID="A;B (2)":20240101T000000',
      "X-FOO;tzid=Z (2):1",
      "DESCRIPTION:TZID=Z",
      " (folded)",
    ],
  );
});
