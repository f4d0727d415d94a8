import { type FleetStore, rowOf, type StoredAccount } from "./store.js";

/**
 * The console's view of a fleet's accounts, answered by the state store's own SQL (SQLite or
 * PostgreSQL): a page of a million accounts, its total and the counts per state never bring the
 * rows into memory. The state expressions here are the SQL twins of `accountState` below and
 * `backlogState` (rpo.ts), over the store's indexed status columns; a test checks they agree
 * row by row.
 */

/** The console's states, as for its sources (docs/api.md "Source states"), judged in this order. */
export type AccountState = "never" | "failing" | "late" | "protected";
export const ACCOUNT_STATES: readonly AccountState[] = ["failing", "late", "never", "protected"];
export type AccountSort = "state" | "id" | "age" | "next";

/**
 * `never`: no good snapshot or unchanged-check yet; `failing`: its last run failed (the error
 * stays until a good run); `late`: its newest good data is older than the RPO; else `protected`.
 */
export function accountState(
  newestGood: number | undefined,
  lastError: string | undefined,
  rpoMs: number,
  now: number,
): AccountState {
  if (newestGood === undefined) return "never";
  if (lastError !== undefined) return "failing";
  if (newestGood < now - rpoMs) return "late";
  return "protected";
}

/** Numbered parameters for one statement: `p(v)` gives `$n` (typed: PostgreSQL needs it). */
class Params {
  readonly values: unknown[] = [];
  constructor(...first: unknown[]) {
    this.values.push(...first);
  }
  p(v: unknown, type?: "double"): string {
    this.values.push(v);
    return type ? `CAST($${this.values.length} AS DOUBLE PRECISION)` : `$${this.values.length}`;
  }
}

/**
 * SQL of the console state (`accountState`) over the store's status columns (indexed, see
 * store.ts); `rank` orders them as ACCOUNT_STATES.
 */
function stateSql(ps: Params, now: number, rpoMs: number, rank = false): string {
  const v = (s: AccountState) => (rank ? String(ACCOUNT_STATES.indexOf(s)) : `'${s}'`);
  return `CASE WHEN newest_good IS NULL THEN ${v("never")} WHEN failing = 1 THEN ${v("failing")}
    WHEN newest_good < ${ps.p(now - rpoMs, "double")} THEN ${v("late")} ELSE ${v("protected")} END`;
}

/** SQL of `backlogState` (rpo.ts). NULL times are the core's Infinity (never reached). */
function backlogSql(ps: Params, now: number): string {
  const t = ps.p(now, "double");
  return `CASE WHEN running_since IS NOT NULL THEN 'running'
    WHEN failures > 0 THEN 'failed'
    WHEN next_due <= ${t} AND ${t} < settle_at AND next_due < settle_at THEN 'due'
    WHEN ${t} >= settle_at OR catch_up = 1 OR last_outcome = 'missed' THEN 'missed'
    WHEN last_outcome IS NOT NULL THEN 'done'
    ELSE 'new' END`;
}

export interface AccountPageQuery {
  now: number;
  rpoMs: number;
  offset: number;
  limit: number;
  /** Part of the id, any case. */
  q?: string | undefined;
  state?: AccountState | undefined;
  sort: AccountSort;
  order: "asc" | "desc";
}

/** One page of a fleet's accounts, filtered, searched and sorted by the store, and the total. */
export async function accountPage(
  store: FleetStore,
  fleet: string,
  o: AccountPageQuery,
): Promise<{ total: number; rows: StoredAccount[] }> {
  const where = (ps: Params) => {
    const w = ["fleet = $1"];
    if (o.q)
      w.push(
        `lower(id) LIKE ${ps.p(`%${o.q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`)} ESCAPE '\\'`,
      );
    if (o.state) w.push(`(${stateSql(ps, o.now, o.rpoMs)}) = ${ps.p(o.state)}`);
    return w.join(" AND ");
  };
  const cp = new Params(fleet);
  const total = await store.sql.all(
    `SELECT count(*) AS n FROM lifeboat_fleet_accounts WHERE ${where(cp)}`,
    cp.values,
  );
  const ps = new Params(fleet);
  const w = where(ps);
  const dir = o.order === "desc" ? "DESC" : "ASC";
  // "age ascending" reads as "oldest data first": accounts never backed up lead.
  const by: Record<AccountSort, () => string> = {
    state: () => `(${stateSql(ps, o.now, o.rpoMs, true)}) ${dir}`,
    id: () => `id ${dir}`,
    age: () => (o.order === "desc" ? "newest_good DESC NULLS LAST" : "newest_good ASC NULLS FIRST"),
    next: () => `next_due ${dir} NULLS LAST`,
  };
  const order = by[o.sort]();
  const rows = await store.sql.all(
    `SELECT state, info FROM lifeboat_fleet_accounts WHERE ${w}
     ORDER BY ${order}${o.sort === "id" ? "" : ", id"} LIMIT ${ps.p(o.limit)} OFFSET ${ps.p(o.offset)}`,
    ps.values,
  );
  return { total: Number(total[0]?.n ?? 0), rows: rows.map(rowOf) };
}

export interface FleetCounts {
  accounts: number;
  states: Record<AccountState, number>;
  backlog: Record<"running" | "failed" | "due" | "done" | "missed" | "new", number>;
  /** Accounts with a passing drill in the last 30 days. */
  proven30Days: number;
}

/** Counts per state and backlog state, grouped by the store (one pass over the fleet's rows). */
export async function fleetCounts(
  store: FleetStore,
  fleet: string,
  now: number,
  rpoMs: number,
): Promise<FleetCounts> {
  const ps = new Params(fleet);
  const rows = await store.sql.all(
    `SELECT ${stateSql(ps, now, rpoMs)} AS st, ${backlogSql(ps, now)} AS bl, count(*) AS n
     FROM lifeboat_fleet_accounts WHERE fleet = $1 GROUP BY 1, 2`,
    ps.values,
  );
  const out: FleetCounts = {
    accounts: 0,
    states: { protected: 0, late: 0, failing: 0, never: 0 },
    backlog: { running: 0, failed: 0, due: 0, done: 0, missed: 0, new: 0 },
    proven30Days: 0,
  };
  for (const r of rows) {
    const n = Number(r.n);
    out.accounts += n;
    out.states[r.st as AccountState] += n;
    out.backlog[r.bl as keyof FleetCounts["backlog"]] += n;
  }
  const proven = await store.sql.all(
    "SELECT count(DISTINCT id) AS n FROM lifeboat_fleet_drills WHERE fleet = $1 AND at >= $2 AND ok = 1",
    [fleet, now - 30 * 86_400_000],
  );
  out.proven30Days = Number(proven[0]?.n ?? 0);
  return out;
}
