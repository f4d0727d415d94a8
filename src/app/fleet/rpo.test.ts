import assert from "node:assert/strict";
import { test } from "node:test";
import { addAccount } from "./account.js";
import { failed, started, succeeded } from "./events.js";
import { fleetPolicy } from "./policy.js";
import { accountRpo, backlogState, fleetFigures, rpoStatus } from "./rpo.js";

const T = (iso: string) => Date.parse(iso);
const H = 3_600_000;
const policy = fleetPolicy({ name: "mail" });

test("rpoStatus from the newest good time", () => {
  const now = T("2025-06-02T12:00Z");
  assert.equal(rpoStatus(undefined, 24 * H, now), "never");
  assert.equal(rpoStatus(now - 10 * H, 24 * H, now), "protected");
  assert.equal(rpoStatus(now - 25 * H, 24 * H, now), "over-rpo");
  // Within the RPO, but the next run starts after it runs out.
  assert.equal(rpoStatus(now - 10 * H, 24 * H, now, now + 15 * H), "at-risk");
  assert.equal(rpoStatus(now - 10 * H, 24 * H, now, now + 14 * H), "protected");
});

test("account RPO: the next start time decides; a failure is a risk", () => {
  const s = addAccount(policy, { id: "a", timezone: "Europe/Berlin" }, T("2025-06-01T12:00Z"), {
    newestGood: T("2025-06-01T00:30Z"),
  });
  const noon = T("2025-06-01T12:00Z");
  assert.equal(accountRpo(policy, s, noon), s.startAt > T("2025-06-02T00:30Z") ? "at-risk" : "protected");
  const early = { ...s, newestGood: s.startAt - 23 * H };
  assert.equal(accountRpo(policy, early, noon), "protected");
  const f = failed(policy, started(early, early.startAt), {
    key: s.current.key,
    at: early.startAt + 1000,
  }).state;
  assert.equal(accountRpo(policy, f, early.startAt + 2000), "at-risk");
  assert.equal(accountRpo(policy, f, early.startAt + 2 * H), "over-rpo");
});

test("fleet figures: RPO counts, age percentiles, backlog", () => {
  const join = T("2025-06-01T12:00Z");
  const rows = Array.from({ length: 100 }, (_, i) =>
    addAccount(policy, { id: `u${i}`, timezone: "Europe/Berlin" }, join, {
      newestGood: i < 90 ? join - (i + 1) * H : undefined,
    }),
  );
  const now = Math.max(...rows.map((r) => r.startAt));
  // 10 running, 5 failed, 10 done, the rest due (their start time has come).
  for (let i = 0; i < 10; i++) rows[i] = started(rows[i]!, now);
  for (let i = 10; i < 15; i++)
    rows[i] = failed(policy, started(rows[i]!, now), { key: rows[i]!.current.key, at: now }).state;
  for (let i = 15; i < 25; i++)
    rows[i] = succeeded(policy, started(rows[i]!, now), { key: rows[i]!.current.key, at: now }).state;
  const fig = fleetFigures(policy, rows, now);
  assert.equal(fig.accounts, 100);
  assert.deepEqual(fig.backlog, { running: 10, failed: 5, due: 75, done: 10, missed: 0, new: 0 });
  assert.equal(fig.rpo.never, 10);
  assert.equal(fig.rpo.protected + fig.rpo["at-risk"] + fig.rpo["over-rpo"] + fig.rpo.never, 100);
  const ages = rows
    .filter((r) => r.newestGood !== undefined)
    .map((r) => now - r.newestGood!)
    .sort((a, b) => a - b);
  assert.equal(fig.age.max, ages.at(-1));
  assert.equal(fig.age.p50, ages[Math.ceil(ages.length / 2) - 1]);
  assert.equal(fig.age.p99, ages[Math.ceil(ages.length * 0.99) - 1]);
  assert.equal(fig.overdue, ages.filter((a) => a > 24 * H).length);
  assert.equal(backlogState(rows[20]!, now), "done");
  assert.deepEqual(fleetFigures(policy, [], now).age, { p50: 0, p99: 0, max: 0 });
});
