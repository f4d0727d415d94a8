import assert from "node:assert/strict";
import { test } from "node:test";
import { applyPolicy, isoWeek, parseDuration } from "./policy.js";

process.env.TZ = "UTC";

function snaps(times: string[], tags: Record<string, string[]> = {}) {
  return times.map((t) => ({ id: t, time: t, tags: tags[t] ?? [] }));
}

function days(from: string, to: string, hour = "10:00"): string[] {
  const out: string[] = [];
  for (
    let d = new Date(`${from}T${hour}:00Z`);
    d <= new Date(`${to}T${hour}:00Z`);
    d = new Date(d.getTime() + 86_400_000)
  ) {
    out.push(d.toISOString());
  }
  return out;
}

const kept = (times: string[], policy: Parameters<typeof applyPolicy>[1], tags?: Record<string, string[]>) =>
  applyPolicy(snaps(times, tags), policy)
    .filter((d) => d.keep)
    .map((d) => d.snapshot.time.slice(0, 16))
    .sort();

test("ISO weeks", () => {
  assert.equal(isoWeek(new Date("2026-01-01T12:00:00Z")), "2026-W01");
  assert.equal(isoWeek(new Date("2026-03-29T12:00:00Z")), "2026-W13");
  assert.equal(isoWeek(new Date("2026-03-30T12:00:00Z")), "2026-W14");
  assert.equal(isoWeek(new Date("2027-01-01T12:00:00Z")), "2026-W53");
  assert.equal(isoWeek(new Date("2024-12-30T12:00:00Z")), "2025-W01");
});

test("daily 7, weekly 4, monthly 3 over three months of dailies (plus a late one)", () => {
  const times = [...days("2026-01-01", "2026-03-31"), "2026-03-31T22:00:00.000Z"];
  assert.deepEqual(kept(times, { daily: 7, weekly: 4, monthly: 3 }), [
    "2026-01-31T10:00",
    "2026-02-28T10:00",
    "2026-03-15T10:00",
    "2026-03-22T10:00",
    "2026-03-25T10:00",
    "2026-03-26T10:00",
    "2026-03-27T10:00",
    "2026-03-28T10:00",
    "2026-03-29T10:00",
    "2026-03-30T10:00",
    "2026-03-31T22:00",
  ]);
});

test("keep-last, keep-tag and keep-within", () => {
  const times = days("2026-05-01", "2026-05-20");
  assert.deepEqual(kept(times, { last: 3 }), ["2026-05-18T10:00", "2026-05-19T10:00", "2026-05-20T10:00"]);
  assert.deepEqual(kept(times, { last: 1, tags: ["release"] }, { "2026-05-02T10:00:00.000Z": ["release"] }), [
    "2026-05-02T10:00",
    "2026-05-20T10:00",
  ]);
  // Within 3 days of the newest snapshot, inclusive.
  assert.deepEqual(kept(times, { within: parseDuration("3d") }), [
    "2026-05-17T10:00",
    "2026-05-18T10:00",
    "2026-05-19T10:00",
    "2026-05-20T10:00",
  ]);
});

test("hourly and yearly, and a rule asking for more periods than exist", () => {
  const times = [
    "2026-01-01T00:10:00.000Z",
    "2026-01-01T00:50:00.000Z",
    "2026-01-01T01:05:00.000Z",
    "2024-06-01T00:00:00.000Z",
    "2025-06-01T00:00:00.000Z",
  ];
  assert.deepEqual(kept(times, { hourly: 2 }), ["2026-01-01T00:50", "2026-01-01T01:05"]);
  assert.deepEqual(kept(times, { yearly: 10 }), ["2024-06-01T00:00", "2025-06-01T00:00", "2026-01-01T01:05"]);
});

test("reasons say why each snapshot is kept", () => {
  const d = applyPolicy(snaps(days("2026-05-01", "2026-05-03")), { last: 1, daily: 2 });
  assert.deepEqual(d[0]!.reasons, ["last snapshot", "daily snapshot"]);
  assert.deepEqual(d[1]!.reasons, ["daily snapshot"]);
  assert.equal(d[2]!.keep, false);
});

test("durations", () => {
  assert.equal(parseDuration("1y6m"), (365 + 180) * 86_400_000);
  assert.equal(parseDuration("36h"), 36 * 3_600_000);
  assert.throws(() => parseDuration("7 days"));
  assert.throws(() => parseDuration(""));
});
