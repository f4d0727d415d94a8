import assert from "node:assert/strict";
import { test } from "node:test";
import { localDay, offsetAt, wallToInstant } from "./zone.js";

const T = (iso: string) => Date.parse(iso);
const H = 3_600_000;
/** A wall-clock time written as ISO without zone, as ms since 1970 local. */
const W = (iso: string) => Date.parse(`${iso}Z`);

test("offsets around the ±14 h edges and a 45-minute zone", () => {
  assert.equal(offsetAt("Pacific/Kiritimati", T("2025-03-09T00:00Z")), 14 * H);
  assert.equal(offsetAt("Etc/GMT+12", T("2025-03-09T00:00Z")), -12 * H);
  assert.equal(offsetAt("Asia/Kathmandu", T("2025-03-09T00:00Z")), 5.75 * H);
  assert.equal(
    localDay("Pacific/Kiritimati", T("2025-03-08T10:30Z")),
    localDay("UTC", T("2025-03-09T00:00Z")),
  );
});

test("local midnight reads as 00:00 of the new day, not 24:00 of the old one", () => {
  assert.equal(offsetAt("UTC", T("2025-03-09T00:00Z")), 0);
  assert.equal(offsetAt("Europe/Berlin", T("2025-03-08T23:00Z")), H);
  assert.equal(
    localDay("Europe/Berlin", T("2025-03-08T23:00Z")),
    Date.parse("2025-03-09T00:00Z") / 86_400_000,
  );
});

test("offsets change at the exact second of a transition", () => {
  // America/New_York springs forward at 2025-03-09 07:00Z (02:00 EST).
  assert.equal(offsetAt("America/New_York", T("2025-03-09T06:59:59Z")), -5 * H);
  assert.equal(offsetAt("America/New_York", T("2025-03-09T07:00:00Z")), -4 * H);
  // Australia/Lord_Howe: +10:30 -> +11 at 2025-10-04 15:30Z (02:00 local).
  assert.equal(offsetAt("Australia/Lord_Howe", T("2025-10-04T15:29:59Z")), 10.5 * H);
  assert.equal(offsetAt("Australia/Lord_Howe", T("2025-10-04T15:30:00Z")), 11 * H);
});

test("a skipped wall time moves forward by the gap", () => {
  // 02:30 does not exist in New York on 2025-03-09: it happens at 03:30 EDT.
  assert.equal(wallToInstant("America/New_York", W("2025-03-09T02:30")), T("2025-03-09T07:30Z"));
  // Berlin 2025-03-30 02:30 -> 03:30 CEST.
  assert.equal(wallToInstant("Europe/Berlin", W("2025-03-30T02:30")), T("2025-03-30T01:30Z"));
  // Lord Howe's gap is 30 minutes: 02:15 -> 02:45 (+11).
  assert.equal(wallToInstant("Australia/Lord_Howe", W("2025-10-05T02:15")), T("2025-10-04T15:45Z"));
  // Samoa skipped all of 2011-12-30: 01:00 that day is 01:00 the next.
  assert.equal(
    wallToInstant("Pacific/Apia", W("2011-12-30T01:00")),
    wallToInstant("Pacific/Apia", W("2011-12-31T01:00")),
  );
});

test("a repeated wall time is the earlier of the two", () => {
  assert.equal(wallToInstant("America/New_York", W("2025-11-02T01:30")), T("2025-11-02T05:30Z")); // EDT
  assert.equal(wallToInstant("Europe/Berlin", W("2025-10-26T02:30")), T("2025-10-26T00:30Z")); // CEST
  // Lord Howe goes back 30 minutes at 02:00 (+11) to 01:30 (+10:30): 01:45 is at +11.
  assert.equal(wallToInstant("Australia/Lord_Howe", W("2025-04-06T01:45")), T("2025-04-05T14:45Z"));
});

test("ordinary wall times convert both ways", () => {
  for (const zone of ["Pacific/Kiritimati", "Etc/GMT+12", "Asia/Kolkata", "America/St_Johns", "UTC"]) {
    const wall = W("2025-07-01T03:17:05");
    const t = wallToInstant(zone, wall);
    assert.equal(t + offsetAt(zone, t), wall, zone);
  }
});
