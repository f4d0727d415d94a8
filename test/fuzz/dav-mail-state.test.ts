import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  type CollectionState,
  decodeCollectionState,
  encodeCollectionState,
  isItemFileName,
} from "../../src/sources/dav/collection-state.js";
import { calendarComponents, contentLines, uidOf } from "../../src/sources/dav/ical.js";
import { parseXml, type XmlElement } from "../../src/sources/dav/xml.js";
import {
  decodeFolderState,
  encodeFolderState,
  type FolderState,
} from "../../src/sources/imap/folder-state.js";
import { hostileBytes, hostileJson, Text } from "./mutate.js";
import { expectDecodes, fuzz } from "./support.js";

/** What DAV and IMAP pulls read: iCalendar/vCard text, WebDAV XML, and the state files in snapshots. */

const ics = [
  "BEGIN:VCALENDAR",
  "VERSION:2.0",
  "PRODID:-//lifeboat//fuzz//EN",
  "BEGIN:VTIMEZONE",
  "TZID:Europe/Berlin",
  "BEGIN:STANDARD",
  "DTSTART:19701025T030000",
  "TZOFFSETFROM:+0200",
  "TZOFFSETTO:+0100",
  "END:STANDARD",
  "END:VTIMEZONE",
  "BEGIN:VEVENT",
  "UID:event-1@example.org",
  'ATTENDEE;CN="Doe: Jane";ROLE=REQ-PARTICIPANT:mailto:jane@example.org',
  "SUMMARY:A long summary that is folded over more than one physical line because it is lo",
  " nger than seventy-five octets\\, with ümlauts",
  "DTSTART;TZID=Europe/Berlin:20260101T100000",
  "END:VEVENT",
  "BEGIN:VTODO",
  "UID:todo-1",
  "END:VTODO",
  "END:VCALENDAR",
  "",
].join("\r\n");
const vcf = [
  "BEGIN:VCARD",
  "VERSION:4.0",
  "UID:urn:uuid:1234",
  "FN:Jane Doe",
  "EMAIL:jane@example.org",
  "END:VCARD",
  "",
].join("\n");

/** Text inputs: damaged items, random text, and extreme shapes (very many folded lines or components). */
const text: fc.Arbitrary<Text> = fc.oneof(
  hostileBytes([Buffer.from(ics), Buffer.from(vcf)]).map((b) => new Text(b.toString("utf8"))),
  fc.string({ maxLength: 300 }).map((s) => new Text(s)),
  fc.tuple(fc.integer({ min: 1, max: 300_000 }), fc.constantFrom(" x", "\t", " ")).map(([n, cont]) => {
    const head = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDESCRIPTION:a\r\n";
    const tail = "END:VEVENT\r\nEND:VCALENDAR\r\n";
    const line = `${cont}\r\n`;
    return new Text(
      `${head}${line.repeat(n)}${tail}`,
      `${JSON.stringify(head)} + ${JSON.stringify(line)}.repeat(${n}) + ${JSON.stringify(tail)}`,
    );
  }),
  fc.integer({ min: 1, max: 20_000 }).map((n) => {
    const [b, e] = ["BEGIN:VEVENT\r\n", "END:VEVENT\r\n"];
    return new Text(
      `BEGIN:VCALENDAR\r\n${b.repeat(n)}${e.repeat(n)}END:VCALENDAR\r\n`,
      `"BEGIN:VCALENDAR\\r\\n" + ${JSON.stringify(b)}.repeat(${n}) + ${JSON.stringify(e)}.repeat(${n}) + "END:VCALENDAR\\r\\n"`,
    );
  }),
);

test("fuzz iCalendar/vCard: content lines, UID and components of any text, never an exception", () => {
  fuzz(
    "ical",
    [text],
    ({ value: s }) => {
      expectDecodes(
        "contentLines",
        s,
        () => contentLines(s),
        (lines) => {
          for (const l of lines) assert.ok(typeof l.name === "string" && l.raw.length > 0);
        },
      );
      expectDecodes("uidOf", s, () => uidOf(s));
      expectDecodes(
        "calendarComponents",
        s,
        () => calendarComponents(s),
        (r) => {
          if ("error" in r) assert.equal(typeof r.error, "string");
          else for (const c of r.components) assert.ok(c.lines.length >= 2 && c.lines[0]!.length > 0);
        },
      );
    },
    0.5,
  );
});

const multistatus = `<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE d:multistatus [ <!ENTITY x "y"> ]>
<d:multistatus xmlns:d="DAV:" xmlns:cal="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/">
  <d:response>
    <d:href>/cal/user/home/event%201.ics</d:href>
    <d:propstat>
      <d:prop>
        <d:getetag>"abc&amp;def"</d:getetag>
        <cal:calendar-data><![CDATA[BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n]]></cal:calendar-data>
        <cs:getctag>&#x31;&#50;</cs:getctag>
        <d:displayname xml:lang="en">Caf&#233; &lt;home&gt;</d:displayname>
      </d:prop>
      <d:status>HTTP/1.1 200 OK</d:status>
    </d:propstat>
  </d:response>
  <!-- a comment -->
  <d:sync-token>http://example.org/sync/1</d:sync-token>
  <response xmlns="DAV:"><href>/x</href><status>HTTP/1.1 404 Not Found</status></response>
</d:multistatus>`;

function validElement(el: XmlElement, depth = 0): void {
  assert.equal(typeof el.ns, "string");
  assert.equal(typeof el.local, "string");
  assert.equal(typeof el.text, "string");
  for (const v of Object.values(el.attrs)) assert.equal(typeof v, "string");
  if (depth < 1000) for (const c of el.children) validElement(c, depth + 1);
}

test("fuzz DAV XML: an element tree or a LifeboatError", () => {
  const xml = fc.oneof(
    hostileBytes([Buffer.from(multistatus)]).map((b) => new Text(b.toString("utf8"))),
    fc.string({ maxLength: 200 }).map((s) => new Text(s)),
    fc
      .tuple(
        fc.constantFrom("&#x", "&#", "&#X"),
        fc.oneof(
          fc.string({ maxLength: 10 }),
          fc.constantFrom(
            "-1",
            "-0",
            "+5",
            "0",
            "110000",
            "10FFFF",
            "D800",
            "1F600",
            "1e3",
            " 5",
            "99999999999",
          ),
        ),
      )
      .map(([p, v]) => new Text(`<a xmlns="DAV:">${p}${v};</a>`)),
    fc
      .integer({ min: 1, max: 50_000 })
      .map(
        (n) =>
          new Text(
            `<a>${"<b>".repeat(n)}${"</b>".repeat(n)}</a>`,
            `"<a>" + "<b>".repeat(${n}) + "</b>".repeat(${n}) + "</a>"`,
          ),
      ),
  );
  fuzz("parseXml", [xml], ({ value: s }) => {
    expectDecodes(
      "parseXml",
      s,
      () => parseXml(s),
      (root) => validElement(root),
    );
  });
});

const folder: FolderState = {
  version: 1,
  path: "INBOX/Sub folder",
  delimiter: "/",
  specialUse: "\\Archive",
  uidValidity: "1700000000",
  uidNext: 12,
  highestModseq: "123456789012",
  messages: [
    { uid: 3, flags: ["\\Seen", "$Label1"], date: "2026-01-02T03:04:05.000Z", size: 1234 },
    { uid: 11, flags: [], date: "2026-01-03T00:00:00.000Z", size: 10 },
  ],
};

test("fuzz IMAP folder state: a folder state or a LifeboatError", () => {
  const samples = [folder, { ...folder, messages: [], specialUse: undefined, highestModseq: undefined }].map(
    (f) => JSON.parse(encodeFolderState(f).toString("utf8")) as unknown,
  );
  fuzz("decodeFolderState", [hostileJson(samples)], (buf) => {
    expectDecodes(
      "decodeFolderState",
      buf,
      () => decodeFolderState(buf, ".folder.json"),
      (s) => {
        assert.ok(typeof s.path === "string" && s.path !== "");
        assert.match(s.uidValidity, /^[0-9]+$/);
        assert.ok(Number.isInteger(s.uidNext));
        for (const m of s.messages) {
          const show = JSON.stringify(m);
          assert.ok(Number.isSafeInteger(m.uid) && m.uid > 0 && m.uid <= 0xffffffff, `uid in ${show}`);
          assert.ok(
            m.flags.every((f) => typeof f === "string"),
            `flags in ${show}`,
          );
          assert.ok(!Number.isNaN(Date.parse(m.date)), `date in ${show}`);
          assert.equal(typeof m.size, "number", `size in ${show}`);
        }
      },
    );
  });
});

const collection: CollectionState = {
  version: 1,
  kind: "calendar",
  href: "/dav/calendars/user/home/",
  displayname: "Home",
  description: "Family",
  color: "#ff0000ff",
  components: ["VEVENT", "VTODO"],
  ctag: "c1",
  syncToken: "http://example.org/sync/1",
  items: [
    { href: "/dav/calendars/user/home/a.ics", etag: '"1"', file: "a.ics" },
    { href: "/dav/calendars/user/home/b%20c.ics", etag: '"2"', file: "b c.ics" },
  ],
};

test("fuzz DAV collection state: a collection state or a LifeboatError", () => {
  const samples = [collection, { version: 1, kind: "addressbook", href: "/card/", items: [] }].map(
    (c) => JSON.parse(encodeCollectionState(c as CollectionState).toString("utf8")) as unknown,
  );
  fuzz("decodeCollectionState", [hostileJson(samples)], (buf) => {
    expectDecodes(
      "decodeCollectionState",
      buf,
      () => decodeCollectionState(buf, ".collection.json"),
      (s) => {
        assert.ok(s.kind === "calendar" || s.kind === "addressbook");
        assert.ok(s.href.startsWith("/"));
        const files = new Set<string>();
        for (const i of s.items) {
          assert.ok(isItemFileName(i.file) && !files.has(i.file));
          files.add(i.file);
        }
      },
    );
  });
});
