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
import { calendarComponents, foldLine, uidOf } from "../../src/sources/dav/ical.js";
import { NS, parseXml } from "../../src/sources/dav/xml.js";

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
