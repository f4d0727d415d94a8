/**
 * The console's page of a fleet's accounts is answered by the state store's SQL (SQLite, and
 * PostgreSQL started here): its state and backlog expressions must agree with the scheduling
 * core's own functions row by row, and paging, search and sorting must hold for both engines.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { accountPage, accountState, fleetCounts } from "../../src/app/fleet/account-page.js";
import {
  type AccountState,
  addAccount,
  advance,
  backlogState,
  failed,
  fleetPolicy,
  started,
  succeeded,
} from "../../src/app/fleet/index.js";
import { FleetStore, pgPool, type StoredAccount } from "../../src/app/fleet/store.js";
import { removeTempDir, tempDir } from "../support/cli.js";
import { type PostgresServer, startPostgres } from "../support/db-servers.js";

const H = 3_600_000;
const T0 = Date.parse("2026-03-01T00:00:00Z");
const NOW = T0 + 5 * 24 * H + 2.5 * H;
const policy = fleetPolicy({ name: "mail", rpo: "24h" });
const ZONES = ["Europe/Berlin", "Asia/Tokyo", "America/New_York", "Pacific/Auckland", "UTC"];

/** 240 accounts in every situation: never run, running, failed, done, missed, late. */
function fleetRows(): StoredAccount[] {
  const out: StoredAccount[] = [];
  let seed = 7;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (let i = 0; i < 240; i++) {
    const id = `${i % 3 === 0 ? "Ann" : "bob"}_${String(i).padStart(4, "0")}`;
    let s: AccountState = addAccount(policy, { id, timezone: ZONES[i % ZONES.length]! }, T0);
    let lastError: string | undefined;
    let t = T0;
    const kind = i % 6;
    for (let day = 0; day < 5 && kind !== 0; day++) {
      t = Math.max(t, s.nextDue === Number.POSITIVE_INFINITY ? t : s.nextDue) + rnd() * H;
      if (t > NOW) break;
      s = advance(policy, s, t).state;
      if (kind === 5 && day > 1) continue; // stops being run: late, missed
      s = started(s, t);
      if (kind === 4 && day === 4) break; // running now
      if (kind === 3 && day >= 3) {
        s = failed(policy, s, { key: s.current.key, at: t + 60_000 }).state;
        lastError = "disk full";
      } else {
        s = succeeded(policy, s, { key: s.current.key, at: t + 60_000 }).state;
        lastError = undefined;
      }
      t += 24 * H;
    }
    if (s.runningSince === undefined) s = advance(policy, s, Math.min(NOW, t)).state;
    out.push({ state: s, info: { fields: {}, ...(lastError ? { lastError } : {}) } });
  }
  return out;
}

/** What the core says of each row: counts per state and per backlog state. */
async function fleetCountsOf(rows: StoredAccount[]) {
  const states = { protected: 0, late: 0, failing: 0, never: 0 };
  const backlog = { running: 0, failed: 0, due: 0, done: 0, missed: 0, new: 0 };
  for (const r of rows) {
    states[accountState(r.state.newestGood, r.info.lastError, policy.rpoMs, NOW)]++;
    backlog[backlogState(r.state, NOW)]++;
  }
  return { states, backlog };
}

let dir: string;
let pgServer: PostgresServer | undefined;
const stores: [string, FleetStore][] = [];

before(async () => {
  dir = await tempDir("lifeboat-account-page-");
  stores.push(["sqlite", await FleetStore.sqlite(path.join(dir, "fleet.db"))]);
  pgServer = await startPostgres();
  stores.push(["postgres", await FleetStore.postgres(await pgPool(pgServer.url("postgres")), "pg")]);
  const rows = fleetRows();
  for (const [, s] of stores) {
    await s.put("mail", rows);
    await s.put("other", rows.slice(0, 10));
    await s.addDrill("mail", rows[1]!.state.account.id, NOW - 2 * 24 * H, "x", true);
    await s.addDrill("mail", rows[2]!.state.account.id, NOW - 40 * 24 * H, "x", true);
    await s.addDrill("mail", rows[3]!.state.account.id, NOW - H, "x", false);
  }
});

after(async () => {
  for (const [, s] of stores) await s.close();
  await pgServer?.stop();
  await removeTempDir(dir);
});

for (const engine of ["sqlite", "postgres"]) {
  const store = () => stores.find(([e]) => e === engine)![1];

  test(`${engine}: counts per state and backlog agree with the core, row by row`, async () => {
    const rows = fleetRows();
    const want = { states: {} as Record<string, number>, backlog: {} as Record<string, number> };
    for (const r of rows) {
      const st = accountState(r.state.newestGood, r.info.lastError, policy.rpoMs, NOW);
      want.states[st] = (want.states[st] ?? 0) + 1;
      const b = backlogState(r.state, NOW);
      want.backlog[b] = (want.backlog[b] ?? 0) + 1;
    }
    const got = await fleetCounts(store(), "mail", NOW, policy.rpoMs);
    assert.equal(got.accounts, 240);
    for (const [k, n] of Object.entries(want.states)) assert.equal(got.states[k as "late"], n, `state ${k}`);
    for (const [k, n] of Object.entries(want.backlog))
      assert.equal(got.backlog[k as "due"], n, `backlog ${k}`);
    assert.ok(Object.keys(want.states).length >= 4, `every state occurs: ${JSON.stringify(want.states)}`);
    assert.ok(
      Object.keys(want.backlog).length >= 4,
      `most backlog states occur: ${JSON.stringify(want.backlog)}`,
    );
    assert.equal(got.proven30Days, 1, "one passing drill within 30 days");
    // Each state filter returns exactly the rows the core puts in it.
    for (const st of ["never", "failing", "late", "protected"] as const) {
      const page = await accountPage(store(), "mail", {
        now: NOW,
        rpoMs: policy.rpoMs,
        offset: 0,
        limit: 1000,
        state: st,
        sort: "id",
        order: "asc",
      });
      const ids = rows
        .filter((r) => accountState(r.state.newestGood, r.info.lastError, policy.rpoMs, NOW) === st)
        .map((r) => r.state.account.id)
        .sort();
      assert.equal(page.total, ids.length, st);
      assert.deepEqual(
        page.rows.map((r) => r.state.account.id),
        ids,
        st,
      );
    }
  });

  test(`${engine}: a state written before the status columns gets them, filled from its JSON`, async () => {
    const s = store();
    for (const q of [
      "DROP INDEX lifeboat_fleet_status",
      ...["failing", "failures", "catch_up", "last_outcome"].map(
        (c) => `ALTER TABLE lifeboat_fleet_accounts DROP COLUMN ${c}`,
      ),
    ])
      await s.sql.run(q);
    const reopened =
      engine === "sqlite"
        ? await FleetStore.sqlite(path.join(dir, "fleet.db"))
        : await FleetStore.postgres(await pgPool(pgServer!.url("postgres")), "pg");
    try {
      const want = await fleetCountsOf(fleetRows());
      const got = await fleetCounts(reopened, "mail", NOW, policy.rpoMs);
      assert.deepEqual(got.states, want.states);
      assert.deepEqual(got.backlog, want.backlog);
    } finally {
      await reopened.close();
    }
  });

  test(`${engine}: pages, search (any case, LIKE characters literal) and sorts`, async () => {
    const q = { now: NOW, rpoMs: policy.rpoMs, sort: "id" as const, order: "asc" as const };
    const p1 = await accountPage(store(), "mail", { ...q, offset: 0, limit: 50 });
    const p2 = await accountPage(store(), "mail", { ...q, offset: 50, limit: 50 });
    assert.equal(p1.total, 240, "only this fleet's rows");
    assert.equal(p1.rows.length, 50);
    assert.ok(p1.rows.at(-1)!.state.account.id < p2.rows[0]!.state.account.id, "pages follow each other");
    const ann = await accountPage(store(), "mail", { ...q, offset: 0, limit: 1000, q: "ANN_" });
    assert.equal(ann.total, 80);
    assert.ok(ann.rows.every((r) => r.state.account.id.startsWith("Ann_")));
    const none = await accountPage(store(), "mail", { ...q, offset: 0, limit: 10, q: "%" });
    assert.equal(none.total, 0, "% is a character, not a wildcard");
    const desc = await accountPage(store(), "mail", { ...q, order: "desc", offset: 0, limit: 1 });
    assert.equal(desc.rows[0]!.state.account.id, "bob_0239");
    const worst = await accountPage(store(), "mail", { ...q, sort: "state", offset: 0, limit: 240 });
    const rank = { failing: 0, late: 1, never: 2, protected: 3 };
    const ranks = worst.rows.map(
      (r) => rank[accountState(r.state.newestGood, r.info.lastError, policy.rpoMs, NOW)],
    );
    assert.deepEqual(
      ranks,
      [...ranks].sort((a, b) => a - b),
      "worst state first",
    );
    const oldest = await accountPage(store(), "mail", { ...q, sort: "age", offset: 0, limit: 240 });
    const ages = oldest.rows.map((r) => r.state.newestGood ?? Number.NEGATIVE_INFINITY);
    assert.deepEqual(
      ages,
      [...ages].sort((a, b) => a - b),
      "oldest data (and never) first",
    );
  });
}
