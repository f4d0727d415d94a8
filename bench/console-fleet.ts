/**
 * `npm run bench:console-fleet [-- COUNT]`: what the console's fleet pages cost for a fleet of
 * COUNT accounts (default 1,000,000) in the embedded SQLite state. The rows are real scheduler
 * states (never run, done, failed, late) written through the store; then the queries behind
 * `GET /api/fleets/F` (counts per state and backlog, one grouped pass) and
 * `GET /api/fleets/F/accounts` (a page of 50, sorted by state, id, age; a page deep in the
 * list; a search; a state filter) are timed, each the median of 3 runs. Memory stays that of
 * one page: the rows never come into the process.
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { accountPage, fleetCounts } from "../src/app/fleet/account-page.js";
import { addAccount, failed, fleetPolicy, started, succeeded } from "../src/app/fleet/index.js";
import { FleetStore, type StoredAccount } from "../src/app/fleet/store.js";

const count = Number(process.argv[2] ?? 1_000_000);
const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-bench-console-fleet-"));
const policy = fleetPolicy({ name: "mail", rpo: "24h" });
const ZONES = ["Europe/Berlin", "Asia/Tokyo", "America/New_York", "Pacific/Auckland", "UTC", "Asia/Kolkata"];
const T0 = Date.parse("2026-03-01T00:00:00Z");
const NOW = T0 + 3 * 86_400_000;

function row(i: number): StoredAccount {
  const id = `user-${String(i).padStart(7, "0")}`;
  let s = addAccount(policy, { id, timezone: ZONES[i % ZONES.length]! }, T0);
  const kind = i % 10;
  let lastError: string | undefined;
  if (kind > 0) {
    const at = kind === 9 ? T0 + 3600_000 : NOW - 3600_000; // kind 9: late (a day and more ago)
    s = started(s, at);
    s = succeeded(policy, s, { key: s.current.key, at: at + 1000 }).state;
    if (kind === 8) {
      // Backed up once, then its next run failed.
      s = started(s, at + 2000);
      s = failed(policy, s, { key: s.current.key, at: at + 3000 }).state;
      lastError = "connection refused";
    }
  }
  return { state: s, info: { fields: {}, ...(lastError ? { lastError } : {}) } };
}

const median = async (fn: () => Promise<unknown>) => {
  const t: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  return t.sort((a, b) => a - b)[1]!;
};

try {
  const store = await FleetStore.sqlite(path.join(dir, "fleet-mail.db"));
  const t0 = performance.now();
  for (let i = 0; i < count; i += 10_000) {
    const batch: StoredAccount[] = [];
    for (let j = i; j < Math.min(count, i + 10_000); j++) batch.push(row(j));
    await store.tx(() => store.put("mail", batch));
  }
  const fill = (performance.now() - t0) / 1000;
  const q = { now: NOW, rpoMs: policy.rpoMs, offset: 0, limit: 50, order: "asc" as const };
  const results: [string, number, string][] = [];
  const time = async (what: string, fn: () => Promise<string>) => {
    let note = "";
    const ms = await median(async () => {
      note = await fn();
    });
    results.push([what, ms, note]);
  };
  await time("counts per state and backlog (GET /api/fleets/F)", async () =>
    JSON.stringify((await fleetCounts(store, "mail", NOW, policy.rpoMs)).states),
  );
  await time("page 1 of 50, sorted by state (worst first)", async () => {
    const p = await accountPage(store, "mail", { ...q, sort: "state" });
    return `${p.total} accounts`;
  });
  await time("page 1 of 50, sorted by id", async () => {
    const p = await accountPage(store, "mail", { ...q, sort: "id" });
    return p.rows[0]!.state.account.id;
  });
  await time("page 1 of 50, oldest data first", async () => {
    const p = await accountPage(store, "mail", { ...q, sort: "age" });
    return p.rows[0]!.state.account.id;
  });
  await time("a page at 90 % of the list, sorted by id", async () => {
    const p = await accountPage(store, "mail", { ...q, sort: "id", offset: Math.floor(count * 0.9) });
    return p.rows[0]?.state.account.id ?? "";
  });
  await time("search `12345` (part of an id)", async () => {
    const p = await accountPage(store, "mail", { ...q, sort: "id", q: "12345" });
    return `${p.total} found`;
  });
  await time("filter state=failing, sorted by id", async () => {
    const p = await accountPage(store, "mail", { ...q, sort: "id", state: "failing" });
    return `${p.total} failing`;
  });
  await store.close();
  const size = (await fs.stat(path.join(dir, "fleet-mail.db"))).size;
  console.log(
    `${count.toLocaleString("en-US")} accounts in SQLite (${(size / 2 ** 20).toFixed(0)} MiB, written in ${fill.toFixed(1)} s), Node ${process.version}, load average ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}, RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB\n`,
  );
  console.log("| query | ms (median of 3) | answer |\n|---|---:|---|");
  for (const [what, ms, note] of results) console.log(`| ${what} | ${ms.toFixed(0)} | ${note} |`);
} finally {
  await fs.rm(dir, { recursive: true, force: true });
}
