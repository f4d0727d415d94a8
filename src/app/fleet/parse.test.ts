import assert from "node:assert/strict";
import { test } from "node:test";
import { LifeboatError } from "../../core/errors.js";
import { checkTimeZone, formatWindow, parseDuration, parseWindow } from "./parse.js";
import { fleetPolicy } from "./policy.js";

function usageError(fn: () => unknown, message: RegExp, hint: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof LifeboatError);
    assert.equal(e.code, "USAGE");
    assert.match(e.message, message);
    assert.ok(!e.message.includes("\n"), "one line");
    assert.match(e.hint ?? "", hint);
    return true;
  });
}

test("windows: plain, across midnight, all day", () => {
  assert.deepEqual(parseWindow("01:00-05:00"), { start: 60, end: 300 });
  assert.deepEqual(parseWindow(" 23:00 - 03:00 "), { start: 1380, end: 180 });
  assert.deepEqual(parseWindow("00:00-24:00"), { start: 0, end: 1440 });
  assert.equal(formatWindow(parseWindow("7:05-9:30")), "07:05-09:30");
});

test("bad windows are one-line usage errors that show the form", () => {
  usageError(
    () => parseWindow("1-5", "fleet mail window"),
    /^fleet mail window: "1-5" is not a window/,
    /01:00-05:00/,
  );
  usageError(() => parseWindow("25:00-03:00"), /24-hour clock/, /01:00-05:00/);
  usageError(() => parseWindow("03:00-03:00"), /starts when it ends/, /e\.g\./);
  usageError(() => parseWindow("24:00-03:00"), /24-hour clock/, /01:00-05:00/);
});

test("durations: 24h, 90m, 1h30m, 2d, 45s", () => {
  assert.equal(parseDuration("24h"), 86_400_000);
  assert.equal(parseDuration("90m"), 5_400_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("2d"), 172_800_000);
  assert.equal(parseDuration("45s"), 45_000);
});

test("bad durations are one-line usage errors", () => {
  for (const bad of ["", "24", "h", "1h 30m", "0h", "1.5h", "24x", "-1h", "1w"])
    usageError(
      () => parseDuration(bad, "fleet mail rpo"),
      /^fleet mail rpo: ".*" is not a duration like 24h/,
      /24h/,
    );
});

test("an unknown timezone names the account and the fix", () => {
  assert.equal(checkTimeZone("Pacific/Kiritimati", "a1"), "Pacific/Kiritimati");
  usageError(
    () => checkTimeZone("Europe/Atlantis", "alice@example.org"),
    /^account alice@example\.org: unknown timezone "Europe\/Atlantis"$/,
    /IANA name such as "Europe\/Berlin"/,
  );
  // Fixed offsets are refused on every Node version (Node 22+ would accept them).
  usageError(() => checkTimeZone("+02:00", "a2"), /a2: unknown timezone/, /Etc\/GMT-2/);
  usageError(() => checkTimeZone("", "a3"), /a3: unknown timezone ""/, /IANA/);
});

test("fleet policy: defaults and checked settings", () => {
  const p = fleetPolicy({ name: "mail" });
  assert.deepEqual(p, {
    name: "mail",
    window: { start: 60, end: 300 },
    rpoMs: 86_400_000,
    catchUp: "next-window",
    retryBaseMs: 300_000,
    retryCapMs: 3_600_000,
  });
  usageError(() => fleetPolicy({ name: "mail", rpo: "1 day" }), /^fleet mail rpo: "1 day"/, /24h/);
  usageError(
    () => fleetPolicy({ name: "mail", retryBase: "2h" }),
    /^fleet mail: retry cap 1h is shorter than retry base 2h$/,
    /at least/,
  );
  usageError(() => fleetPolicy({ name: "a b" }), /fleet name "a b"/, /letters/);
});
