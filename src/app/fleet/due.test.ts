import assert from "node:assert/strict";
import { test } from "node:test";
import { type AccountState, addAccount, changeAccount, isDue } from "./account.js";
import { retryDelay } from "./backoff.js";
import { due, pressure } from "./due.js";
import { failed, started, succeeded } from "./events.js";
import { fleetPolicy } from "./policy.js";
import { backlogState } from "./rpo.js";

const T = (iso: string) => Date.parse(iso);
const H = 3_600_000;
const MIN = 60_000;
const policy = fleetPolicy({ name: "mail" });
const JOIN = T("2025-06-01T12:00Z");

function account(id: string, newestGood?: number, zone = "Europe/Berlin"): AccountState {
  return addAccount(policy, { id, timezone: zone }, JOIN, { newestGood });
}

test("short capacity: the most overdue go first (RPO pressure), then the earlier start time", () => {
  const now = T("2025-06-02T02:30Z"); // 04:30 in Berlin: every start time has come
  const rows = [
    account("fresh", now - 20 * H),
    account("old", now - 40 * H),
    account("never"),
    account("older", now - 60 * H),
    account("tie-a", now - 30 * H),
    account("tie-b", now - 30 * H),
  ];
  for (const r of rows) assert.equal(isDue(r, now), true);
  const tick = due(policy, rows, now, 4);
  const tieFirst = rows[4]!.startAt <= rows[5]!.startAt ? "tie-a" : "tie-b";
  assert.deepEqual(
    tick.start.map((r) => r.state.account.id),
    ["never", "older", "old", tieFirst],
  );
  assert.deepEqual(tick.start.map((r) => r.pressure).slice(1), [2.5, 40 / 24, 30 / 24]);
  assert.equal(tick.start[0]!.pressure, Number.POSITIVE_INFINITY);
  assert.deepEqual(tick.waiting.map((s) => s.account.id).sort(), [
    "fresh",
    tieFirst === "tie-a" ? "tie-b" : "tie-a",
  ]);
  for (const r of tick.start) assert.equal(r.state.runningSince, now);
  // The full order is the same whatever the capacity or input order.
  const all = due(policy, rows.slice().reverse(), now).start.map((r) => r.state.account.id);
  assert.deepEqual(all.slice(0, 4), ["never", "older", "old", tieFirst]);
  assert.equal(pressure(policy, rows[0]!, now), 20 / 24);
});

test("rows not due yet are left alone; capacity 0 leaves everything waiting", () => {
  const a = account("a", JOIN);
  assert.deepEqual(due(policy, [a], a.startAt - 1000), { start: [], missed: [], changed: [], waiting: [] });
  const t = due(policy, [a], a.startAt, 0);
  assert.equal(t.start.length, 0);
  assert.deepEqual(t.waiting, [a]);
});

test("a failing account backs off and never blocks the others", () => {
  let bad = account("bad", JOIN);
  const good = Array.from({ length: 5 }, (_, i) => account(`good${i}`, JOIN));
  const now = Math.max(bad.startAt, ...good.map((g) => g.startAt));
  // The failing account is the most urgent (oldest snapshot); capacity for one run at a time.
  bad = { ...bad, newestGood: JOIN - 48 * H };
  let rows = [bad, ...good];
  const runs: { id: string; at: number }[] = [];
  for (let t = now; t < now + 30 * MIN; t += MIN) {
    const tick = due(policy, rows, t, 1);
    const run = tick.start[0];
    if (!run) continue;
    runs.push({ id: run.state.account.id, at: t });
    const next =
      run.state.account.id === "bad"
        ? failed(policy, run.state, { key: run.window.key, at: t + 10_000 }).state
        : succeeded(policy, run.state, { key: run.window.key, at: t + 10_000 }).state;
    rows = rows.map((r) => (r.account.id === run.state.account.id ? next : r));
  }
  // bad goes first (most urgent), then backs off: the good ones take the slot meanwhile, each
  // once, all within the first 7 minutes.
  assert.equal(runs[0]!.id, "bad");
  const goods = runs.filter((r) => r.id !== "bad");
  assert.deepEqual(goods.map((r) => r.id).sort(), ["good0", "good1", "good2", "good3", "good4"]);
  assert.ok(goods.every((r) => r.at < now + 7 * MIN));
  const bads = runs.filter((r) => r.id === "bad").map((r) => r.at);
  assert.ok(bads.length >= 3, `${bads.length} attempts`);
  for (let i = 1; i < bads.length; i++)
    assert.ok(bads[i]! - bads[i - 1]! >= (policy.retryBaseMs / 2) * 2 ** (i - 1), "backed off");
});

test("backoff: exponential, capped, jittered between half and all, deterministic", () => {
  const key = "2025-06-02T01:00[Europe/Berlin]";
  for (let n = 1; n <= 10; n++) {
    const full = Math.min(policy.retryCapMs, policy.retryBaseMs * 2 ** (n - 1));
    const d = retryDelay(policy, "alice", key, n);
    assert.ok(d >= full / 2 && d <= full, `failure ${n}: ${d} not in [${full / 2}, ${full}]`);
    assert.equal(d, retryDelay(policy, "alice", key, n));
  }
  assert.ok(retryDelay(policy, "alice", key, 30) <= H);
  // Accounts that fail together retry apart.
  const spread = new Set(Array.from({ length: 100 }, (_, i) => retryDelay(policy, `u${i}`, key, 3)));
  assert.ok(spread.size > 90);
});

test("retries stay inside the window; a window that ends failed is missed with its failure count", () => {
  let s = account("flaky", JOIN);
  const closes = s.current.closesAt;
  let attempts = 0;
  let missed: readonly { failures: number; key: string }[] = [];
  for (let t = s.startAt; t < closes + 2 * H; t += MIN) {
    const tick = due(policy, [s], t);
    if (tick.missed.length > 0) missed = tick.missed;
    const run = tick.start[0];
    if (run) {
      assert.ok(t < closes, "no attempt after the window closed");
      attempts++;
      s = failed(policy, run.state, { key: run.window.key, at: t + MIN }).state;
      if (s.current.key === run.window.key) assert.ok(s.nextDue <= closes);
    } else s = tick.changed[0] ?? s;
  }
  assert.ok(attempts >= 4, `${attempts} attempts`);
  assert.equal(missed.length, 1);
  assert.equal(missed[0]!.failures, attempts);
  assert.equal(s.failures, 0, "a new window starts with a clean slate");
  assert.equal(s.last?.outcome, "missed");
});

test("a success after failures resets the count and settles the window as done", () => {
  const s = account("a", JOIN);
  const f = failed(policy, started(s, s.startAt), { key: s.current.key, at: s.startAt + MIN }).state;
  assert.equal(f.failures, 1);
  assert.ok(f.retryAt! > s.startAt && f.nextDue === f.retryAt);
  const ok = succeeded(policy, started(f, f.retryAt!), { key: f.current.key, at: f.retryAt! + MIN }).state;
  assert.equal(ok.failures, 0);
  assert.equal(ok.retryAt, undefined);
  assert.equal(ok.last?.outcome, "done");
  assert.equal(ok.newestGood, f.retryAt! + MIN);
});

test("a waiting row not looked at until after its window closed is settled as missed when it is", () => {
  const a = account("a", JOIN);
  const waiting = due(policy, [a], a.startAt, 0).waiting[0]!;
  assert.equal(waiting.settleAt, a.current.closesAt);
  assert.equal(backlogState(waiting, a.startAt), "due");
  // The dispatcher skipped it (no capacity, not among the most urgent); at settle_at it must look.
  assert.equal(backlogState(waiting, waiting.settleAt), "missed");
  const late = due(policy, [waiting], waiting.settleAt + 5 * MIN);
  assert.equal(late.start.length, 0);
  assert.deepEqual(
    late.missed.map((m) => m.key),
    [a.current.key],
  );
  assert.equal(late.changed[0]!.last?.outcome, "missed");
});

test("changeAccount follows a new timezone; a running account keeps its run and moves after it", () => {
  const a = account("a", JOIN);
  const moved = changeAccount(policy, a, { id: "a", timezone: "Asia/Tokyo" }, JOIN).state;
  assert.equal(moved.current.key, "2025-06-02T01:00[Asia/Tokyo]");
  const run = started(a, a.startAt);
  const stillRunning = changeAccount(policy, run, { id: "a", timezone: "Asia/Tokyo" }, a.startAt + MIN).state;
  assert.equal(stillRunning.current.key, a.current.key);
  assert.equal(stillRunning.nextDue, Number.POSITIVE_INFINITY);
  const after = succeeded(policy, stillRunning, { key: a.current.key, at: a.startAt + 2 * MIN }).state;
  assert.equal(after.current.key, "2025-06-03T01:00[Asia/Tokyo]");
  assert.throws(() => changeAccount(policy, a, { id: "b", timezone: "UTC" }, JOIN), /account b is not a/);
});
