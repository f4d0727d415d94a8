import { AsyncLocalStorage } from "node:async_hooks";
import { createHash } from "node:crypto";
import type pg from "pg";
import { LifeboatError } from "../../core/errors.js";
import { type LocalDb, openLocalDb } from "../local-state.js";
import { type AccountFields, type AccountState, restoreState } from "./account.js";

/**
 * The fleet's state: one row per account (timezone, window, next due time, settle time, newest
 * good snapshot, ...), a log of runs, drills and whole-service restore progress. The same SQL
 * runs on SQLite (the embedded default, one local file) and on PostgreSQL (many hosts, beside
 * pg-boss). Times are ms since the epoch; NULL stands for "never" (Infinity in the core).
 */

/** What the store keeps about an account beside its scheduling state. */
export interface AccountInfo {
  /** Fields from the account source (`path`, `priority`, `updated_at`, ...). */
  fields: Record<string, string>;
  /** Change-detection fingerprint of the newest good snapshot's data. */
  fingerprint?: string;
  /** The source's `updated_at` when that snapshot was taken. */
  updatedAt?: string;
  lastSnapshot?: string;
  lastError?: string;
  /** The repository holding the account's snapshots. */
  repository?: string;
}

export interface StoredAccount {
  state: AccountState;
  info: AccountInfo;
}

export type RunOutcome = "snapshot" | "unchanged" | "failed" | "missed";

export interface RunEvent {
  fleet: string;
  id: string;
  window: string;
  at: number;
  outcome: RunOutcome;
  snapshot?: string | undefined;
  seconds?: number | undefined;
  error?: string | undefined;
  worker?: string | undefined;
}

/** Minimal SQL access both engines give: `$1` placeholders, rows as objects. */
interface Sql {
  all(q: string, p?: unknown[]): Promise<Record<string, unknown>[]>;
  run(q: string, p?: unknown[]): Promise<number>;
  tx<T>(fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * Columns beside the JSON that the console's queries need (account-page.ts): whether the last
 * run failed (`info.lastError`), failed attempts in the window, a catch-up, and the outcome of
 * the newest settled window. Added to older state files by `init` (and filled from the JSON).
 */
const STATUS_COLUMNS: [string, string, string][] = [
  ["failing", "INTEGER NOT NULL DEFAULT 0", "CASE WHEN $info_lastError IS NOT NULL THEN 1 ELSE 0 END"],
  ["failures", "INTEGER NOT NULL DEFAULT 0", "CAST(COALESCE($state_failures, '0') AS INTEGER)"],
  ["catch_up", "INTEGER NOT NULL DEFAULT 0", "CASE WHEN $state_catchUpUntil IS NOT NULL THEN 1 ELSE 0 END"],
  ["last_outcome", "TEXT", "$state_last_outcome"],
];

const DDL = [
  `CREATE TABLE IF NOT EXISTS lifeboat_fleet_accounts (
    fleet TEXT NOT NULL, id TEXT NOT NULL, state TEXT NOT NULL, info TEXT NOT NULL,
    next_due DOUBLE PRECISION, settle_at DOUBLE PRECISION, newest_good DOUBLE PRECISION,
    start_at DOUBLE PRECISION NOT NULL, running_since DOUBLE PRECISION,
    ${STATUS_COLUMNS.map(([c, t]) => `${c} ${t}`).join(", ")},
    PRIMARY KEY (fleet, id))`,
  "MIGRATE",
  "CREATE INDEX IF NOT EXISTS lifeboat_fleet_next_due ON lifeboat_fleet_accounts (fleet, next_due)",
  "CREATE INDEX IF NOT EXISTS lifeboat_fleet_settle_at ON lifeboat_fleet_accounts (fleet, settle_at)",
  // The console's counts, state filters and sorts (account-page.ts) read this index alone, never
  // the rows' JSON: a pass over a million accounts is a pass over a small index.
  "CREATE INDEX IF NOT EXISTS lifeboat_fleet_age ON lifeboat_fleet_accounts (fleet, newest_good, id)",
  `CREATE INDEX IF NOT EXISTS lifeboat_fleet_status ON lifeboat_fleet_accounts
    (fleet, newest_good, failing, running_since, failures, next_due, settle_at, catch_up, last_outcome)`,
  `CREATE TABLE IF NOT EXISTS lifeboat_fleet_runs (
    fleet TEXT NOT NULL, id TEXT NOT NULL, win TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
    outcome TEXT NOT NULL, snapshot TEXT, seconds DOUBLE PRECISION, error TEXT, worker TEXT)`,
  "CREATE INDEX IF NOT EXISTS lifeboat_fleet_runs_at ON lifeboat_fleet_runs (fleet, at)",
  "CREATE INDEX IF NOT EXISTS lifeboat_fleet_runs_id ON lifeboat_fleet_runs (fleet, id, at)",
  `CREATE TABLE IF NOT EXISTS lifeboat_fleet_drills (
    fleet TEXT NOT NULL, id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, snapshot TEXT NOT NULL,
    ok INTEGER NOT NULL, error TEXT)`,
  "CREATE INDEX IF NOT EXISTS lifeboat_fleet_drills_at ON lifeboat_fleet_drills (fleet, at)",
  "CREATE INDEX IF NOT EXISTS lifeboat_fleet_drills_id ON lifeboat_fleet_drills (fleet, id, at)",
  `CREATE TABLE IF NOT EXISTS lifeboat_fleet_restores (
    fleet TEXT NOT NULL, run TEXT NOT NULL, id TEXT NOT NULL, ok INTEGER NOT NULL,
    snapshot TEXT, seconds DOUBLE PRECISION, error TEXT, PRIMARY KEY (fleet, run, id))`,
  `CREATE TABLE IF NOT EXISTS lifeboat_fleet_meta (
    fleet TEXT NOT NULL, k TEXT NOT NULL, v TEXT NOT NULL, PRIMARY KEY (fleet, k))`,
];

/** The advisory lock key of a fleet (PostgreSQL: dispatch and account sync take it). */
export const fleetLockKey = (fleet: string) =>
  createHash("sha256").update(`lifeboat fleet ${fleet}`).digest().readInt32BE(0);

const num = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? null : v);

/** SQLite: the process's one connection to the file (app/local-state.ts), shared with the jobs. */
async function sqliteSql(file: string): Promise<Sql> {
  let local: LocalDb;
  try {
    local = await openLocalDb(file, "the fleet state file");
  } catch (e) {
    if (!(e instanceof LifeboatError)) throw e;
    throw new LifeboatError(e.code, e.message, 'check its folder, or set "state" in the fleet definition');
  }
  const db = local.db;
  const named = (q: string) => q.replace(/\$(\d+)/g, "@p$1");
  const args = (p: unknown[]) => Object.fromEntries(p.map((v, i) => [`p${i + 1}`, v]));
  const cache = new Map<string, import("better-sqlite3").Statement>();
  const stmt = (q: string) => {
    let s = cache.get(q);
    if (!s) {
      s = db.prepare(named(q));
      cache.set(q, s);
    }
    return s;
  };
  // Outside a transaction of ours, a statement waits for another user's open transaction.
  return {
    all: (q, p = []) => local.exclusive(() => stmt(q).all(args(p)) as Record<string, unknown>[]),
    run: (q, p = []) => local.exclusive(() => stmt(q).run(args(p)).changes),
    tx: (fn) => local.tx(fn),
    close: async () => local.release(),
  };
}

/** PostgreSQL: a pool, and a transaction pinned to one client (shared with pg-boss's enqueue). */
export class PgSql implements Sql {
  private readonly current = new AsyncLocalStorage<pg.PoolClient>();
  constructor(readonly pool: pg.Pool) {}
  /** The transaction's client inside `tx`, the pool outside. */
  get client(): pg.Pool | pg.PoolClient {
    return this.current.getStore() ?? this.pool;
  }
  async all(q: string, p: unknown[] = []) {
    return (await this.client.query(q, p)).rows as Record<string, unknown>[];
  }
  async run(q: string, p: unknown[] = []) {
    return (await this.client.query(q, p)).rowCount ?? 0;
  }
  async tx<T>(fn: () => Promise<T>): Promise<T> {
    if (this.current.getStore()) return fn();
    const c = await this.pool.connect();
    try {
      await c.query("BEGIN");
      const r = await this.current.run(c, fn);
      await c.query("COMMIT");
      return r;
    } catch (e) {
      await c.query("ROLLBACK").catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  }
  async close() {
    await this.pool.end();
  }
}

export async function pgPool(url: string, max = 4): Promise<pg.Pool> {
  const { default: pgLib } = await import("pg");
  const pool = new pgLib.Pool({ connectionString: url, max, application_name: "lifeboat-fleet" });
  pool.on("error", () => {});
  try {
    const c = await pool.connect();
    c.release();
  } catch (e) {
    await pool.end().catch(() => {});
    throw new LifeboatError(
      "UNREACHABLE",
      `the fleet queue ${url.replace(/:[^:@/]*@/, ":***@")} cannot be reached: ${(e as Error).message}`,
      "check the fleet's queue URL and that PostgreSQL is running",
    );
  }
  return pool;
}

export function rowOf(r: Record<string, unknown>): StoredAccount {
  return {
    state: restoreState(JSON.parse(r.state as string) as AccountFields),
    info: JSON.parse(r.info as string) as AccountInfo,
  };
}

export class FleetStore {
  private constructor(
    readonly sql: Sql,
    readonly where: string,
  ) {}

  static async sqlite(file: string): Promise<FleetStore> {
    const s = new FleetStore(await sqliteSql(file), file);
    await s.init();
    return s;
  }

  static async postgres(pool: pg.Pool, where: string): Promise<FleetStore> {
    const s = new FleetStore(new PgSql(pool), where);
    await s.init();
    return s;
  }

  private async init(): Promise<void> {
    await this.sql.tx(async () => {
      if (this.sql instanceof PgSql) await this.sql.run("SELECT pg_advisory_xact_lock(7277801)");
      for (const q of DDL) {
        if (q === "MIGRATE") await this.migrate();
        else await this.sql.run(q);
      }
    });
  }

  tx<T>(fn: () => Promise<T>): Promise<T> {
    return this.sql.tx(fn);
  }

  /** Adds the status columns to a state written before them, filled from each row's JSON. */
  private async migrate(): Promise<void> {
    const pg = this.sql instanceof PgSql;
    const have = new Set(
      (
        await this.sql.all(
          pg
            ? "SELECT column_name AS name FROM information_schema.columns WHERE table_name = 'lifeboat_fleet_accounts' AND table_schema = current_schema()"
            : "SELECT name FROM pragma_table_info('lifeboat_fleet_accounts')",
        )
      ).map((r) => r.name as string),
    );
    const json = (v: string) => {
      const [col, ...key] = v.slice(1).split("_") as [string, ...string[]];
      return pg
        ? `(${col}::json${key
            .slice(0, -1)
            .map((k) => `->'${k}'`)
            .join("")}->>'${key.at(-1)}')`
        : `json_extract(${col}, '$.${key.join(".")}')`;
    };
    for (const [col, type, fill] of STATUS_COLUMNS) {
      if (have.has(col)) continue;
      await this.sql.run(`ALTER TABLE lifeboat_fleet_accounts ADD COLUMN ${col} ${type}`);
      await this.sql.run(
        `UPDATE lifeboat_fleet_accounts SET ${col} = ${fill.replace(/\$[a-z]+_[A-Za-z_]+/g, json)}`,
      );
    }
  }

  /** Inside `tx`: waits for the fleet's lock (PostgreSQL; SQLite transactions are serial anyway). */
  async lockFleet(fleet: string): Promise<void> {
    if (this.sql instanceof PgSql)
      await this.sql.all("SELECT pg_advisory_xact_lock($1)", [fleetLockKey(fleet)]);
  }

  /** Inside `tx`: takes the fleet's lock if free (one dispatcher at a time); false when held. */
  async tryLockFleet(fleet: string): Promise<boolean> {
    if (!(this.sql instanceof PgSql)) return true;
    const r = await this.sql.all("SELECT pg_try_advisory_xact_lock($1) AS ok", [fleetLockKey(fleet)]);
    return r[0]?.ok === true;
  }

  async close(): Promise<void> {
    await this.sql.close();
  }

  async all(fleet: string): Promise<StoredAccount[]> {
    return (
      await this.sql.all("SELECT state, info FROM lifeboat_fleet_accounts WHERE fleet = $1 ORDER BY id", [
        fleet,
      ])
    ).map(rowOf);
  }

  async get(fleet: string, id: string): Promise<StoredAccount | undefined> {
    const r = await this.sql.all(
      "SELECT state, info FROM lifeboat_fleet_accounts WHERE fleet = $1 AND id = $2",
      [fleet, id],
    );
    return r[0] ? rowOf(r[0]) : undefined;
  }

  async count(fleet: string): Promise<number> {
    const r = await this.sql.all("SELECT count(*) AS n FROM lifeboat_fleet_accounts WHERE fleet = $1", [
      fleet,
    ]);
    return Number(r[0]?.n ?? 0);
  }

  /**
   * What one tick looks at (docs/fleet-simulation.md, "The dispatcher"): every row whose window
   * chance ended, and the `limit` most urgent rows whose next due time has come, each once.
   */
  async dueRows(fleet: string, now: number, limit: number): Promise<StoredAccount[]> {
    const settle = await this.sql.all(
      "SELECT id, state, info FROM lifeboat_fleet_accounts WHERE fleet = $1 AND settle_at <= $2",
      [fleet, now],
    );
    const urgent = await this.sql.all(
      `SELECT id, state, info FROM lifeboat_fleet_accounts WHERE fleet = $1 AND next_due <= $2
       ORDER BY newest_good ASC NULLS FIRST, start_at, id LIMIT $3`,
      [fleet, now, Math.max(1, limit)],
    );
    const seen = new Set<string>();
    const out: StoredAccount[] = [];
    for (const r of [...settle, ...urgent]) {
      if (seen.has(r.id as string)) continue;
      seen.add(r.id as string);
      out.push(rowOf(r));
    }
    return out;
  }

  /** Rows whose run has held its lease for longer than `leaseMs` (its worker died). */
  async expiredRuns(fleet: string, before: number): Promise<StoredAccount[]> {
    return (
      await this.sql.all(
        "SELECT state, info FROM lifeboat_fleet_accounts WHERE fleet = $1 AND running_since IS NOT NULL AND running_since < $2",
        [fleet, before],
      )
    ).map(rowOf);
  }

  async runningCount(fleet: string): Promise<number> {
    const r = await this.sql.all(
      "SELECT count(*) AS n FROM lifeboat_fleet_accounts WHERE fleet = $1 AND running_since IS NOT NULL",
      [fleet],
    );
    return Number(r[0]?.n ?? 0);
  }

  async put(fleet: string, rows: Iterable<StoredAccount>): Promise<void> {
    for (const { state: s, info } of rows) {
      const { nextDue: _n, settleAt: _s, ...fields } = s;
      await this.sql.run(
        `INSERT INTO lifeboat_fleet_accounts (fleet, id, state, info, next_due, settle_at, newest_good, start_at, running_since,
           failing, failures, catch_up, last_outcome)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (fleet, id) DO UPDATE SET state = excluded.state, info = excluded.info,
           next_due = excluded.next_due, settle_at = excluded.settle_at, newest_good = excluded.newest_good,
           start_at = excluded.start_at, running_since = excluded.running_since, failing = excluded.failing,
           failures = excluded.failures, catch_up = excluded.catch_up, last_outcome = excluded.last_outcome`,
        [
          fleet,
          s.account.id,
          JSON.stringify(fields),
          JSON.stringify(info),
          num(s.nextDue),
          num(s.settleAt),
          num(s.newestGood),
          s.startAt,
          num(s.runningSince),
          info.lastError !== undefined ? 1 : 0,
          s.failures,
          s.catchUpUntil !== undefined ? 1 : 0,
          s.last?.outcome ?? null,
        ],
      );
    }
  }

  async remove(fleet: string, id: string): Promise<void> {
    await this.sql.run("DELETE FROM lifeboat_fleet_accounts WHERE fleet = $1 AND id = $2", [fleet, id]);
  }

  async addRun(e: RunEvent): Promise<void> {
    await this.sql.run(
      "INSERT INTO lifeboat_fleet_runs (fleet, id, win, at, outcome, snapshot, seconds, error, worker) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
      [
        e.fleet,
        e.id,
        e.window,
        e.at,
        e.outcome,
        e.snapshot ?? null,
        e.seconds ?? null,
        e.error ?? null,
        e.worker ?? null,
      ],
    );
  }

  async runs(fleet: string, since: number, id?: string): Promise<RunEvent[]> {
    const rows = await this.sql.all(
      `SELECT id, win, at, outcome, snapshot, seconds, error, worker FROM lifeboat_fleet_runs
       WHERE fleet = $1 AND at >= $2 ${id !== undefined ? "AND id = $3" : ""} ORDER BY at, id`,
      id !== undefined ? [fleet, since, id] : [fleet, since],
    );
    return rows.map((r) => ({
      fleet,
      id: r.id as string,
      window: r.win as string,
      at: Number(r.at),
      outcome: r.outcome as RunOutcome,
      snapshot: (r.snapshot as string | null) ?? undefined,
      seconds: r.seconds === null ? undefined : Number(r.seconds),
      error: (r.error as string | null) ?? undefined,
      worker: (r.worker as string | null) ?? undefined,
    }));
  }

  async addDrill(
    fleet: string,
    id: string,
    at: number,
    snapshot: string,
    ok: boolean,
    error?: string,
  ): Promise<void> {
    await this.sql.run(
      "INSERT INTO lifeboat_fleet_drills (fleet, id, at, snapshot, ok, error) VALUES ($1, $2, $3, $4, $5, $6)",
      [fleet, id, at, snapshot, ok ? 1 : 0, error ?? null],
    );
  }

  async drills(
    fleet: string,
    since: number,
  ): Promise<{ id: string; at: number; snapshot: string; ok: boolean; error?: string }[]> {
    const rows = await this.sql.all(
      "SELECT id, at, snapshot, ok, error FROM lifeboat_fleet_drills WHERE fleet = $1 AND at >= $2 ORDER BY at",
      [fleet, since],
    );
    return rows.map((r) => ({
      id: r.id as string,
      at: Number(r.at),
      snapshot: r.snapshot as string,
      ok: Number(r.ok) === 1,
      ...(r.error ? { error: r.error as string } : {}),
    }));
  }

  /** One account's drills, oldest first. */
  async accountDrills(
    fleet: string,
    id: string,
  ): Promise<{ at: number; snapshot: string; ok: boolean; error?: string }[]> {
    const rows = await this.sql.all(
      "SELECT at, snapshot, ok, error FROM lifeboat_fleet_drills WHERE fleet = $1 AND id = $2 ORDER BY at",
      [fleet, id],
    );
    return rows.map((r) => ({
      at: Number(r.at),
      snapshot: r.snapshot as string,
      ok: Number(r.ok) === 1,
      ...(r.error ? { error: r.error as string } : {}),
    }));
  }

  async restoreResults(fleet: string, run: string): Promise<Map<string, { ok: boolean; error?: string }>> {
    const rows = await this.sql.all(
      "SELECT id, ok, error FROM lifeboat_fleet_restores WHERE fleet = $1 AND run = $2",
      [fleet, run],
    );
    return new Map(
      rows.map((r) => [
        r.id as string,
        { ok: Number(r.ok) === 1, ...(r.error ? { error: r.error as string } : {}) },
      ]),
    );
  }

  async putRestore(
    fleet: string,
    run: string,
    id: string,
    ok: boolean,
    snapshot?: string,
    seconds?: number,
    error?: string,
  ): Promise<void> {
    await this.sql.run(
      `INSERT INTO lifeboat_fleet_restores (fleet, run, id, ok, snapshot, seconds, error) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (fleet, run, id) DO UPDATE SET ok = excluded.ok, snapshot = excluded.snapshot, seconds = excluded.seconds, error = excluded.error`,
      [fleet, run, id, ok ? 1 : 0, snapshot ?? null, seconds ?? null, error ?? null],
    );
  }

  async getMeta(fleet: string, k: string): Promise<string | undefined> {
    const r = await this.sql.all("SELECT v FROM lifeboat_fleet_meta WHERE fleet = $1 AND k = $2", [fleet, k]);
    return r[0]?.v as string | undefined;
  }

  async setMeta(fleet: string, k: string, v: string | undefined): Promise<void> {
    if (v === undefined)
      await this.sql.run("DELETE FROM lifeboat_fleet_meta WHERE fleet = $1 AND k = $2", [fleet, k]);
    else
      await this.sql.run(
        "INSERT INTO lifeboat_fleet_meta (fleet, k, v) VALUES ($1, $2, $3) ON CONFLICT (fleet, k) DO UPDATE SET v = excluded.v",
        [fleet, k, v],
      );
  }
}
