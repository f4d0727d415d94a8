import assert from "node:assert/strict";
import { test } from "node:test";
import { parseWindow, windowMinutes } from "./parse.js";
import { firstWindow, MIN_NIGHT_GAP_MS, startTime, windowOn } from "./window.js";
import { offsetAt, wallAt } from "./zone.js";

const T = (iso: string) => Date.parse(iso);
const H = 3_600_000;
const DAY = 86_400_000;
const dayOf = (date: string) => Date.parse(`${date}T00:00Z`) / DAY;
const NIGHT = parseWindow("01:00-05:00");

function win(zone: string, date: string, w = NIGHT) {
  const i = windowOn(zone, w, dayOf(date));
  return { key: i.key, open: new Date(i.opensAt).toISOString(), hours: (i.closesAt - i.opensAt) / H };
}

test("the key names the local date, time and zone of the opening", () => {
  assert.equal(windowOn("Europe/Berlin", NIGHT, dayOf("2025-03-09")).key, "2025-03-09T01:00[Europe/Berlin]");
  assert.equal(
    windowOn("Europe/Berlin", parseWindow("23:30-03:00"), dayOf("2025-03-09")).key,
    "2025-03-09T23:30[Europe/Berlin]",
  );
});

test("DST: a window loses or gains the hour the clocks skip or repeat", () => {
  assert.deepEqual(win("America/New_York", "2025-03-09"), {
    key: "2025-03-09T01:00[America/New_York]",
    open: "2025-03-09T06:00:00.000Z",
    hours: 3,
  });
  assert.equal(win("America/New_York", "2025-03-10").hours, 4);
  assert.equal(win("America/New_York", "2025-11-02").hours, 5);
  assert.equal(win("Europe/Berlin", "2025-03-30").hours, 3);
  assert.equal(win("Europe/Berlin", "2025-10-26").hours, 5);
  // Lord Howe moves by 30 minutes.
  assert.equal(win("Australia/Lord_Howe", "2025-10-05").hours, 3.5);
  assert.equal(win("Australia/Lord_Howe", "2026-04-05").hours, 4.5);
  assert.equal(win("Australia/Lord_Howe", "2025-07-01").hours, 4);
});

test("a window opening inside the skipped hour opens just after it", () => {
  const w = parseWindow("02:30-06:00");
  const i = windowOn("America/New_York", w, dayOf("2025-03-09"));
  assert.equal(new Date(i.opensAt).toISOString(), "2025-03-09T07:30:00.000Z"); // 03:30 EDT
  assert.equal((i.closesAt - i.opensAt) / H, 2.5);
});

test("±14 h zones: Kiritimati's night is the previous UTC day, Etc/GMT+12's the same day", () => {
  assert.deepEqual(win("Pacific/Kiritimati", "2025-03-09"), {
    key: "2025-03-09T01:00[Pacific/Kiritimati]",
    open: "2025-03-08T11:00:00.000Z",
    hours: 4,
  });
  assert.deepEqual(win("Etc/GMT+12", "2025-03-09"), {
    key: "2025-03-09T01:00[Etc/GMT+12]",
    open: "2025-03-09T13:00:00.000Z",
    hours: 4,
  });
});

test("a window across midnight belongs to the date it opens on and follows DST on the next", () => {
  const w = parseWindow("23:00-03:00");
  assert.equal(windowMinutes(w), 240);
  assert.deepEqual(win("Europe/Berlin", "2025-03-29", w), {
    key: "2025-03-29T23:00[Europe/Berlin]",
    open: "2025-03-29T22:00:00.000Z",
    hours: 3, // 02:00-03:00 on the 30th does not exist
  });
  assert.equal(win("America/New_York", "2025-11-01", w).hours, 5);
  const i = windowOn("Pacific/Kiritimati", w, dayOf("2025-12-31"));
  assert.equal(new Date(i.closesAt).toISOString(), "2025-12-31T13:00:00.000Z"); // 03:00 on Jan 1st
});

test("firstWindow: after a window, the next is at least 12 h later; for a newcomer, the first still open", () => {
  const last = windowOn("Europe/Berlin", NIGHT, dayOf("2025-03-09"));
  const next = firstWindow("Europe/Berlin", NIGHT, last.opensAt + MIN_NIGHT_GAP_MS, -Infinity);
  assert.equal(next.key, "2025-03-10T01:00[Europe/Berlin]");
  // Joined at 02:00 local: tonight's window is still open and counts.
  const joined = firstWindow("Europe/Berlin", NIGHT, -Infinity, T("2025-03-09T01:00Z"));
  assert.equal(joined.key, "2025-03-09T01:00[Europe/Berlin]");
  // Joined at 05:00 local, as tonight's window closes: tomorrow's.
  assert.equal(
    firstWindow("Europe/Berlin", NIGHT, -Infinity, last.closesAt).key,
    "2025-03-10T01:00[Europe/Berlin]",
  );
});

test("firstWindow refuses a NaN (a damaged row) instead of looping", () => {
  assert.throws(
    () => firstWindow("Europe/Berlin", NIGHT, Number.NaN, -Infinity),
    /no window of Europe\/Berlin/,
  );
});

test("firstWindow across a timezone change never gives two windows within 12 h nor a gap over 36 h", () => {
  const zones = [
    "Pacific/Kiritimati",
    "Etc/GMT+12",
    "Europe/Berlin",
    "Pacific/Honolulu",
    "Asia/Tokyo",
    "America/Los_Angeles",
    "Australia/Lord_Howe",
    "America/St_Johns",
  ];
  for (const from of zones)
    for (const to of zones)
      for (const date of ["2025-03-09", "2025-10-26", "2025-11-02"]) {
        const last = windowOn(from, NIGHT, dayOf(date));
        const next = firstWindow(to, NIGHT, last.opensAt + MIN_NIGHT_GAP_MS, -Infinity);
        const gap = (next.opensAt - last.opensAt) / H;
        assert.ok(gap >= 12 && gap <= 37, `${from} -> ${to} on ${date}: ${gap} h`);
        assert.notEqual(next.key, last.key);
      }
  // Kiritimati -> Etc/GMT+12 (26 h west): the same calendar date, 26 h later; not skipped.
  const k = windowOn("Pacific/Kiritimati", NIGHT, dayOf("2025-03-09"));
  const west = firstWindow("Etc/GMT+12", NIGHT, k.opensAt + MIN_NIGHT_GAP_MS, -Infinity);
  assert.equal(west.key, "2025-03-09T01:00[Etc/GMT+12]");
  // ... and back east: GMT+12's window opens after Kiritimati's next one, which is passed over.
  const east = firstWindow("Pacific/Kiritimati", NIGHT, west.opensAt + MIN_NIGHT_GAP_MS, -Infinity);
  assert.equal(east.key, "2025-03-11T01:00[Pacific/Kiritimati]");
  assert.equal((east.opensAt - west.opensAt) / H, 22);
});

/** Local wall clock of an instant as minutes after local midnight, to the second. */
function localSeconds(zone: string, t: number): number {
  return (wallAt(zone, t) % DAY) / 1000;
}

test("an account starts at the same local second every night, DST nights included", () => {
  const zone = "Europe/Berlin";
  for (let a = 0; a < 300; a++) {
    const id = `acct-${a}`;
    const nominal = localSeconds(zone, startTime(windowOn(zone, NIGHT, dayOf("2025-01-15")), "mail", id));
    assert.ok(nominal >= 3600 && nominal < 3 * 3600, `${id} starts in the first half (${nominal / 60} min)`);
    for (let d = dayOf("2025-03-01"); d < dayOf("2025-11-30"); d++) {
      const inst = windowOn(zone, NIGHT, d);
      const t = startTime(inst, "mail", id);
      const skipped = d === dayOf("2025-03-30") && nominal >= 2 * 3600; // 02:00-03:00 does not exist
      assert.equal(localSeconds(zone, t), skipped ? nominal + 3600 : nominal, `${id} on day ${d}`);
      assert.ok(t >= inst.opensAt && t < inst.closesAt);
    }
  }
});

test("start times spread evenly over the first half of the window (10k ids)", () => {
  const zone = "America/New_York";
  const inst = windowOn(zone, NIGHT, dayOf("2025-06-10"));
  const buckets = new Array(12).fill(0); // 10-minute buckets over 01:00-03:00
  for (let a = 0; a < 10_000; a++) {
    const t = startTime(inst, "mail", `user${a}@example.org`);
    const minute = (t - inst.opensAt) / 60_000;
    assert.ok(minute >= 0 && minute < 120);
    buckets[Math.floor(minute / 10)]++;
  }
  const expected = 10_000 / 12;
  const chi2 = buckets.reduce((sum, n) => sum + (n - expected) ** 2 / expected, 0);
  // 11 degrees of freedom: the 99.9th percentile is 31.3.
  assert.ok(chi2 < 31.3, `chi² ${chi2.toFixed(1)} for ${buckets.join(" ")}`);
  // A different fleet name spreads the same ids differently.
  const other = startTime(inst, "calendar", "user1@example.org");
  assert.notEqual(other, startTime(inst, "mail", "user1@example.org"));
});

test("on a fall-back night the earlier of the repeated times is used", () => {
  const zone = "America/New_York";
  const inst = windowOn(zone, NIGHT, dayOf("2025-11-02"));
  for (let a = 0; a < 200; a++) {
    const t = startTime(inst, "mail", `a${a}`);
    // The first half by the wall clock is 01:00-03:00; 01:xx happens first in EDT.
    if (localSeconds(zone, t) < 2 * 3600) assert.equal(offsetAt(zone, t), -4 * H);
  }
});
