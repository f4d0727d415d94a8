import assert from "node:assert/strict";
import { test } from "node:test";
import { applyPolicy, guardDecisions } from "./policy.js";

process.env.TZ = "UTC";

interface S {
  id: string;
  time: string;
  tags: string[];
  flagged: boolean;
}

/** Daily snapshots from `from` for `n` days; the day at index `wipe` is flagged. */
function series(from: string, n: number, wipe: number): S[] {
  const out: S[] = [];
  for (let i = 0; i < n; i++) {
    const t = new Date(Date.parse(`${from}T03:00:00Z`) + i * 86_400_000).toISOString();
    out.push({ id: `d${String(i).padStart(2, "0")}`, time: t, tags: [], flagged: i === wipe });
  }
  return out;
}

const keptIds = (s: S[], acked: Set<string> = new Set(), pinned: Set<string> = new Set(), keepBefore = 3) =>
  guardDecisions(
    applyPolicy(s, { daily: 7 }),
    (x) => x.flagged && !acked.has(x.id),
    (x) => pinned.has(x.id) && !acked.has(x.id),
    keepBefore,
  )
    .filter((d) => d.keep)
    .map((d) => d.snapshot.id)
    .sort();

test("a wipe followed by a month of daily backups: --keep-daily 7 still keeps the pre-wipe data", () => {
  // Days 0-9 normal, day 10 the wipe (flagged), then 30 more days of (empty) backups.
  const s = series("2026-03-01", 41, 10);
  const plain = applyPolicy(s, { daily: 7 })
    .filter((d) => d.keep)
    .map((d) => d.snapshot.id);
  assert.ok(!plain.includes("d09"), "without the guard the policy alone would drop the pre-wipe data");
  assert.deepEqual(keptIds(s), ["d07", "d08", "d09", "d10", "d34", "d35", "d36", "d37", "d38", "d39", "d40"]);
});

test("after acknowledging the flag, the policy alone decides", () => {
  const s = series("2026-03-01", 41, 10);
  assert.deepEqual(keptIds(s, new Set(["d10"])), ["d34", "d35", "d36", "d37", "d38", "d39", "d40"]);
});

test("the oldest unacknowledged flag counts; flagged snapshots are not counted as good", () => {
  const s = series("2026-03-01", 20, 5);
  s[4]!.flagged = true; // two flagged in a row: d04 and d05
  const k = keptIds(s, new Set(), new Set(), 2);
  assert.ok(k.includes("d02") && k.includes("d03"), k.join());
  assert.ok(k.includes("d04") && k.includes("d05"), k.join());
  assert.ok(!k.includes("d01"), k.join());
});

test("pinned snapshots are kept until acknowledged; reasons say why", () => {
  const s = series("2026-03-01", 20, -1);
  const d = guardDecisions(
    applyPolicy(s, { last: 1 }),
    () => false,
    (x) => x.id === "d03",
    3,
  );
  const d03 = d.find((x) => x.snapshot.id === "d03")!;
  assert.equal(d03.keep, true);
  assert.deepEqual(d03.reasons, ["pinned, not acknowledged"]);
  assert.equal(d.filter((x) => x.keep).length, 2);
});
