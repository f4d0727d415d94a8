import assert from "node:assert/strict";
import { test } from "node:test";
import { LifeboatError } from "../../core/errors.js";
import {
  type AccountState,
  addAccount,
  advance,
  type FleetAccount,
  isDue,
  nextDue,
  restoreState,
} from "./account.js";
import { due } from "./due.js";
import { failed, started, succeeded } from "./events.js";
import { parseWindow } from "./parse.js";
import { type FleetPolicy, fleetPolicy } from "./policy.js";

const T = (iso: string) => Date.parse(iso);
const H = 3_600_000;
const iso = (t: number) => new Date(t).toISOString();
const policy = fleetPolicy({ name: "mail" });
const berlin: FleetAccount = { id: "alice", timezone: "Europe/Berlin" };

/** Runs the account whenever it is due, succeeding, from `from` to `to` in 1-minute ticks. */
function simulate(
  p: FleetPolicy,
  s0: AccountState,
  from: number,
  to: number,
  change?: { at: number; account: FleetAccount },
) {
  let s = s0;
  const runs: { key: string; at: number }[] = [];
  const missed: string[] = [];
  for (let now = from; now < to; now += 60_000) {
    if (change && now === change.at) s = { ...s, account: change.account };
    const tick = due(p, [s], now);
    missed.push(...tick.missed.map((m) => m.key));
    const run = tick.start[0];
    if (run) {
      runs.push({ key: run.window.key, at: now });
      s = succeeded(p, run.state, { key: run.window.key, at: now + 60_000 }).state;
    } else s = tick.changed[0] ?? s;
  }
  return { runs, missed, state: s };
}

test("an account is due at its start time, once per window", () => {
  const s = addAccount(policy, berlin, T("2025-03-08T12:00Z"));
  assert.equal(s.current.key, "2025-03-09T01:00[Europe/Berlin]");
  assert.ok(s.startAt >= s.current.opensAt && s.startAt < s.current.opensAt + 2 * H);
  assert.equal(s.nextDue, s.startAt);
  assert.equal(isDue(s, s.startAt - 1000), false);
  assert.equal(isDue(s, s.startAt), true);
  const { runs, missed } = simulate(policy, s, T("2025-03-08T12:00Z"), T("2025-03-15T12:00Z"));
  assert.deepEqual(
    runs.map((r) => r.key.slice(0, 10)),
    ["2025-03-09", "2025-03-10", "2025-03-11", "2025-03-12", "2025-03-13", "2025-03-14", "2025-03-15"],
  );
  assert.deepEqual(missed, []);
});

test("a window that closes without a run is missed once and the account waits for its next window", () => {
  const s = addAccount(policy, berlin, T("2025-03-08T12:00Z"));
  const afterClose = s.current.closesAt + 60_000;
  const tick = due(policy, [s], afterClose);
  assert.equal(tick.start.length, 0);
  assert.deepEqual(
    tick.missed.map((m) => [m.key, m.failures, m.catchUp]),
    [["2025-03-09T01:00[Europe/Berlin]", 0, false]],
  );
  const next = tick.changed[0]!;
  assert.equal(next.current.key, "2025-03-10T01:00[Europe/Berlin]");
  assert.deepEqual(next.last, { key: s.current.key, opensAt: s.current.opensAt, outcome: "missed" });
  // Looking again finds nothing new.
  assert.equal(due(policy, [next], afterClose + H).missed.length, 0);
});

test("catch-up at once: due right after the window closes, flagged, until 12 h before the next window", () => {
  const p = fleetPolicy({ name: "mail", catchUp: "at-once" });
  const s = addAccount(p, berlin, T("2025-03-08T12:00Z"));
  const closed = s.current.closesAt;
  const tick = due(p, [s], closed);
  assert.deepEqual(
    tick.missed.map((m) => m.catchUp),
    [true],
  );
  const run = tick.start[0]!;
  assert.equal(run.catchUp, true);
  assert.equal(run.window.key, "2025-03-09T01:00[Europe/Berlin]");
  // The catch-up run settles the missed window; the next night runs as usual.
  const after = succeeded(p, run.state, { key: run.window.key, at: closed + 60_000 }).state;
  assert.equal(after.last?.outcome, "done");
  assert.equal(after.current.key, "2025-03-10T01:00[Europe/Berlin]");
  // Too late to catch up (next window opens in less than 12 h): it waits and is settled missed.
  const late = due(p, [s], T("2025-03-09T13:00Z"));
  assert.equal(late.start.length, 0);
  assert.equal(late.missed.length, 1);
  assert.equal(late.changed[0]!.current.key, "2025-03-10T01:00[Europe/Berlin]");
});

test("after an outage every window that closed is reported missed, each once", () => {
  const s = addAccount(policy, berlin, T("2025-03-08T12:00Z"));
  const tick = due(policy, [s], T("2025-03-12T12:00Z"));
  assert.deepEqual(
    tick.missed.map((m) => m.key.slice(0, 10)),
    ["2025-03-09", "2025-03-10", "2025-03-11", "2025-03-12"],
  );
  assert.equal(tick.changed[0]!.current.key, "2025-03-13T01:00[Europe/Berlin]");
  const p = fleetPolicy({ name: "mail", catchUp: "at-once" });
  const caught = due(p, [addAccount(p, berlin, T("2025-03-08T12:00Z"))], T("2025-03-12T06:00Z"));
  assert.deepEqual(
    caught.missed.map((m) => [m.key.slice(0, 10), m.catchUp]),
    [
      ["2025-03-09", false],
      ["2025-03-10", false],
      ["2025-03-11", false],
      ["2025-03-12", true],
    ],
  );
  assert.equal(caught.start[0]?.catchUp, true);
});

test("a newcomer joining after its start time in an open window is due at once; after the close, tomorrow", () => {
  const probe = addAccount(policy, berlin, T("2025-03-08T12:00Z"));
  const during = addAccount(policy, berlin, probe.startAt + 60_000);
  assert.equal(during.current.key, probe.current.key);
  assert.equal(isDue(during, probe.startAt + 60_000), true);
  const afterwards = addAccount(policy, berlin, probe.current.closesAt);
  assert.equal(afterwards.current.key, "2025-03-10T01:00[Europe/Berlin]");
  assert.equal(advance(policy, afterwards, probe.current.closesAt + H).missed.length, 0);
});

test("timezone change between nights: next window from the new zone, no double run, no silent skip", () => {
  const cases: [string, string, number, number][] = [
    ["Europe/Berlin", "America/New_York", 22, 37], // west: 30 h
    ["America/New_York", "Europe/Berlin", 12, 25], // east: 18 h
    ["Pacific/Kiritimati", "Etc/GMT+12", 12, 37], // 26 h west
    ["Etc/GMT+12", "Pacific/Kiritimati", 12, 37], // 26 h east
    ["Europe/Berlin", "Pacific/Honolulu", 12, 37],
  ];
  for (const [from, to, minGap, maxGap] of cases) {
    const start = T("2025-03-05T00:00Z");
    const s = addAccount(policy, { id: "bob", timezone: from }, start);
    const change = { at: T("2025-03-08T00:00Z"), account: { id: "bob", timezone: to } };
    const { runs, missed } = simulate(policy, s, start, T("2025-03-14T00:00Z"), change);
    assert.deepEqual(missed, [], `${from} -> ${to}: nothing missed`);
    const keys = runs.map((r) => r.key);
    assert.equal(new Set(keys).size, keys.length);
    for (let i = 1; i < runs.length; i++) {
      const gap = (runs[i]!.at - runs[i - 1]!.at) / H;
      assert.ok(gap >= minGap && gap <= maxGap, `${from} -> ${to}: ${keys[i - 1]} -> ${keys[i]} ${gap} h`);
    }
    assert.ok(keys.at(-1)!.endsWith(`[${to}]`));
  }
});

test("timezone change to a zone whose next night already passed: that night is reported missed", () => {
  // Ran in Berlin (00:00Z); moved to Pago Pago (UTC-11) late that day: its night of the same date
  // opened 12 h later and closed at 16:00Z, before the change was known.
  let s = addAccount(policy, berlin, T("2025-03-08T12:00Z"));
  s = succeeded(policy, started(s, s.startAt), { key: s.current.key, at: s.startAt + 1000 }).state;
  s = { ...s, account: { id: "alice", timezone: "Pacific/Pago_Pago" } };
  const step = advance(policy, s, T("2025-03-09T20:00Z"));
  assert.deepEqual(
    step.missed.map((m) => m.key),
    ["2025-03-09T01:00[Pacific/Pago_Pago]"],
  );
  assert.equal(step.state.current.key, "2025-03-10T01:00[Pacific/Pago_Pago]");
});

test("a catch-up pending when the timezone changes is settled, not reported again", () => {
  const p = fleetPolicy({ name: "mail", catchUp: "at-once" });
  const s = addAccount(p, berlin, T("2025-03-08T12:00Z"));
  const tick = due(p, [s], s.current.closesAt, 0);
  assert.equal(tick.missed.length, 1);
  const moved = { ...tick.waiting[0]!, account: { id: "alice", timezone: "Asia/Tokyo" } };
  const step = advance(p, moved, s.current.closesAt + H);
  assert.deepEqual(step.missed, []);
  assert.equal(step.state.last?.outcome, "missed");
  assert.equal(step.state.current.key, "2025-03-10T01:00[Asia/Tokyo]");
});

test("a change to an unknown timezone is a LifeboatError naming the account", () => {
  const s = { ...addAccount(policy, berlin, 0), account: { id: "alice", timezone: "Mars/Olympus" } };
  assert.throws(
    () => advance(policy, s, 1),
    (e: unknown) => e instanceof LifeboatError && /^account alice: unknown timezone/.test(e.message),
  );
  assert.throws(() => addAccount(policy, { id: "carol", timezone: "CEST+2" }, 0), /account carol/);
});

test("an account's own window overrides the fleet's and may cross midnight", () => {
  const s = addAccount(policy, { ...berlin, window: parseWindow("23:00-03:00") }, T("2025-03-08T12:00Z"));
  assert.equal(s.current.key, "2025-03-08T23:00[Europe/Berlin]");
  assert.ok(s.startAt >= T("2025-03-08T22:00Z") && s.startAt < T("2025-03-09T00:00Z"));
  const { runs } = simulate(policy, s, T("2025-03-08T12:00Z"), T("2025-03-12T12:00Z"));
  assert.deepEqual(
    runs.map((r) => r.key.slice(0, 16)),
    ["2025-03-08T23:00", "2025-03-09T23:00", "2025-03-10T23:00", "2025-03-11T23:00"],
  );
});

test("reports for another window change nothing but the newest good time", () => {
  let s = addAccount(policy, berlin, T("2025-03-08T12:00Z"));
  s = started(s, s.startAt);
  const stale = succeeded(policy, s, { key: "2025-03-01T01:00[Europe/Berlin]", at: s.startAt + 5 }).state;
  assert.equal(stale.runningSince, s.startAt);
  assert.equal(stale.current.key, s.current.key);
  assert.equal(stale.newestGood, s.startAt + 5);
  assert.equal(failed(policy, s, { key: "2025-03-01T01:00[Europe/Berlin]", at: s.startAt + 5 }).state, s);
});

test("nextDue from a table row's last window: start time, or now-ish after a missed window", () => {
  const s = addAccount(policy, berlin, T("2025-03-08T12:00Z"));
  const last = { key: s.current.key, opensAt: s.current.opensAt, outcome: "done" as const };
  const nd = nextDue(policy, berlin, last, T("2025-03-09T12:00Z"));
  assert.equal(iso(nd).slice(0, 10), "2025-03-10");
  assert.equal(nd, addAccount(policy, berlin, T("2025-03-09T12:00Z")).startAt);
  // Two nights later, the 10th was missed: next_due is the 11th's start (or at once with catch-up).
  assert.equal(iso(nextDue(policy, berlin, last, T("2025-03-10T12:00Z"))).slice(0, 10), "2025-03-11");
  const p = fleetPolicy({ name: "mail", catchUp: "at-once" });
  assert.equal(nextDue(p, berlin, last, T("2025-03-10T06:00Z")) <= T("2025-03-10T06:00Z"), true);
  // No row yet: the first window to come.
  assert.equal(iso(nextDue(policy, berlin, undefined, T("2025-03-09T12:00Z"))).slice(0, 10), "2025-03-10");
});

test("a row survives a JSON round trip through a store (Infinity comes back)", () => {
  const s = addAccount(policy, berlin, T("2025-03-08T12:00Z"), { newestGood: T("2025-03-08T00:30Z") });
  const running = started(s, s.startAt);
  for (const row of [s, running, failed(policy, running, { key: s.current.key, at: s.startAt + 1 }).state]) {
    const back = restoreState(JSON.parse(JSON.stringify(row)));
    assert.deepEqual(back, row);
  }
  assert.equal(restoreState(JSON.parse(JSON.stringify(running))).nextDue, Number.POSITIVE_INFINITY);
});
