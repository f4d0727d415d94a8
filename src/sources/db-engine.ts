import { LifeboatError } from "../core/errors.js";
import type { DbTarget } from "./db-url.js";
import { mysqlQuery, parseMysqlUrl } from "./mysql.js";
import { parsePostgresUrl, pgConnect } from "./postgres.js";

/**
 * What drills and guards ask a PostgreSQL or MariaDB/MySQL server directly: the user tables of a
 * database, exact row counts, the engine's own table check, and dropping a scratch database.
 */

export type DumpEngine = "postgres" | "mysql";

/** The engine a snapshot's `source` restores into, for dump snapshots (undefined otherwise). */
export function dumpEngineOf(source: string | undefined): DumpEngine | undefined {
  if (source === "postgres") return "postgres";
  if (source === "mysql") return "mysql";
  return undefined;
}

export const ENGINE_LABEL: Record<DumpEngine, string> = { postgres: "PostgreSQL", mysql: "MariaDB/MySQL" };

/** A server to create scratch databases on: `postgres://USER:PW@HOST:PORT/` or `mysql://...`. */
export interface ScratchServer {
  engine: DumpEngine;
  /** Connection; `database` unset. For PostgreSQL, a database in the URL becomes the maintenance database. */
  target: DbTarget;
  /** `scheme://USER@HOST:PORT` (no password, no database). */
  display: string;
}

export function parseScratchServer(url: string, what = "--scratch-db"): ScratchServer {
  const pg = parsePostgresUrl(url);
  const my = pg ? undefined : parseMysqlUrl(url);
  const t = pg ?? my;
  if (!t)
    throw new LifeboatError(
      "USAGE",
      `${what} takes a server URL: postgres://USER:PASSWORD@HOST:PORT/ or mysql://USER:PASSWORD@HOST:PORT/`,
    );
  const engine: DumpEngine = pg ? "postgres" : "mysql";
  const params = { ...t.params };
  if (engine === "postgres" && t.database && params.maintenance_db === undefined)
    params.maintenance_db = t.database;
  const display = t.display.replace(/^([a-z]+:\/\/[^/]*).*$/i, "$1");
  return { engine, target: { ...t, database: undefined, params, display }, display };
}

/** The server's connection with `database` selected. */
export function onDatabase(t: DbTarget, database: string): DbTarget {
  return { ...t, database, display: `${t.display.replace(/^([a-z]+:\/\/[^/]*).*$/i, "$1")}/${database}` };
}

const pgIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;
const myIdent = (s: string) => `\`${s.replace(/`/g, "``")}\``;
/** A MariaDB string literal that needs no escaping. */
const myString = (s: string) => `CONVERT(0x${Buffer.from(s, "utf8").toString("hex") || "00"} USING utf8mb4)`;
const msg = (e: unknown) => (e as Error).message;

function chunks<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/** Exact row counts of the plain tables of a PostgreSQL database (`schema.table` as quote_ident gives). */
export async function pgRowCounts(t: DbTarget): Promise<Record<string, number>> {
  const c = await pgConnect(t, t.database);
  try {
    const tables = await c.query<{ t: string }>(
      `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS t
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
        ORDER BY 1`,
    );
    const out: Record<string, number> = {};
    for (const { t: name } of tables.rows)
      out[name] = Number(
        (await c.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${name}`)).rows[0]?.n,
      );
    return out;
  } finally {
    await c.end().catch(() => {});
  }
}

/** Exact row counts of the base tables of a MariaDB/MySQL database. */
export async function mysqlRowCounts(t: DbTarget): Promise<Record<string, number>> {
  const db = t.database!;
  const tables = (
    await mysqlQuery(
      t,
      `SELECT table_name FROM information_schema.tables WHERE table_schema = ${myString(db)} AND table_type = 'BASE TABLE' ORDER BY table_name`,
    )
  ).map((r) => r[0]!);
  const out: Record<string, number> = {};
  for (const part of chunks(tables, 100)) {
    const sql = part
      .map((name) => `SELECT ${myString(name)}, COUNT(*) FROM ${myIdent(db)}.${myIdent(name)}`)
      .join(" UNION ALL ");
    for (const [name, n] of await mysqlQuery(t, sql)) out[name!] = Number(n);
  }
  return out;
}

export interface EngineCheck {
  /** "ok", or what is wrong. */
  check: string;
  tables: number;
  rows: number;
}

/**
 * Compares the tables found after a restore with the tables the backup recorded (`expected`,
 * when the snapshot's meta lists them): a table missing, or a plain table that was not backed
 * up, is a problem.
 */
function compareTables(
  found: { name: string; plain: boolean }[],
  expected: string[] | undefined,
  problems: string[],
): void {
  if (!expected) return;
  const have = new Set(found.map((f) => f.name));
  const want = new Set(expected);
  const missing = expected.filter((n) => !have.has(n));
  const extra = found.filter((f) => f.plain && !want.has(f.name)).map((f) => f.name);
  if (missing.length > 0)
    problems.push(
      `table${missing.length > 1 ? "s" : ""} ${missing.slice(0, 10).join(", ")} of the backup ${missing.length > 1 ? "are" : "is"} missing after restore`,
    );
  if (extra.length > 0)
    problems.push(
      `table${extra.length > 1 ? "s" : ""} ${extra.slice(0, 10).join(", ")} not in the backup's list`,
    );
}

/**
 * PostgreSQL: every user table (as `pg_stat_user_tables` lists them, the list a backup records)
 * is counted with `SELECT count(*)`, and the list is compared with the backup's.
 */
export async function pgEngineCheck(t: DbTarget, expected: string[] | undefined): Promise<EngineCheck> {
  let c: Awaited<ReturnType<typeof pgConnect>>;
  try {
    c = await pgConnect(t, t.database);
  } catch (e) {
    return { check: `cannot check the database: ${msg(e)}`, tables: 0, rows: 0 };
  }
  const problems: string[] = [];
  let rows = 0;
  let tables = 0;
  try {
    const rels = await c.query<{ t: string; kind: string; populated: boolean }>(
      `SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.relname) AS t, c.relkind::text AS kind,
              c.relispopulated AS populated
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid ORDER BY 1`,
    );
    const found = rels.rows.map((r) => ({ name: r.t, plain: r.kind === "r" }));
    compareTables(found, expected, problems);
    tables = found.length;
    for (const r of rels.rows) {
      if (r.kind === "m" && !r.populated) continue; // WITH NO DATA: nothing to count, as in the source
      try {
        const n = Number((await c.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${r.t}`)).rows[0]?.n);
        if (r.kind !== "p") rows += n; // a partitioned table's rows are its partitions'
      } catch (e) {
        problems.push(`SELECT count(*) FROM ${r.t}: ${msg(e)}`);
      }
    }
  } catch (e) {
    problems.push(`cannot check the database: ${msg(e)}`);
  } finally {
    await c.end().catch(() => {});
  }
  return { check: problems.length === 0 ? "ok" : problems.join("; "), tables, rows };
}

/**
 * MariaDB/MySQL: `CHECK TABLE` on every base table (each must say OK), `COUNT(*)` of each, and
 * the list compared with the backup's.
 */
export async function mysqlEngineCheck(t: DbTarget, expected: string[] | undefined): Promise<EngineCheck> {
  const db = t.database!;
  const problems: string[] = [];
  let rows = 0;
  let names: string[] = [];
  try {
    names = (
      await mysqlQuery(
        t,
        `SELECT table_name FROM information_schema.tables WHERE table_schema = ${myString(db)} AND table_type = 'BASE TABLE' ORDER BY table_name`,
      )
    ).map((r) => r[0]!);
    compareTables(
      names.map((name) => ({ name, plain: true })),
      expected,
      problems,
    );
    for (const part of chunks(names, 100)) {
      const out = await mysqlQuery(
        t,
        `CHECK TABLE ${part.map((n) => `${myIdent(db)}.${myIdent(n)}`).join(", ")}`,
      );
      // Rows: Table, Op, Msg_type, Msg_text. A table is fine when its status says OK; engines
      // that cannot check (a note saying so) are not a failure.
      const status = new Map<string, string>();
      for (const [table, , type, text] of out) {
        const name = (table ?? "").slice(db.length + 1);
        if (type === "status") status.set(name, text ?? "");
        else if (type === "error" || type === "Error" || type === "warning")
          problems.push(`CHECK TABLE ${name}: ${type}: ${text}`);
      }
      for (const [name, text] of status) if (text !== "OK") problems.push(`CHECK TABLE ${name}: ${text}`);
      const counts = part
        .map((n) => `SELECT ${myString(n)}, COUNT(*) FROM ${myIdent(db)}.${myIdent(n)}`)
        .join(" UNION ALL ");
      for (const [, n] of await mysqlQuery(t, counts)) rows += Number(n);
    }
  } catch (e) {
    problems.push(`cannot check the database: ${msg(e)}`);
  }
  return { check: problems.length === 0 ? "ok" : problems.join("; "), tables: names.length, rows };
}

/** Drops a scratch database; true when it is gone. */
export async function dropScratchDatabase(server: ScratchServer, name: string): Promise<boolean> {
  if (server.engine === "mysql") {
    await mysqlQuery(server.target, `DROP DATABASE IF EXISTS ${myIdent(name)}`);
    const left = await mysqlQuery(
      server.target,
      `SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ${myString(name)}`,
    );
    return left[0]?.[0] === "0";
  }
  const admin = await pgConnect(server.target, server.target.params.maintenance_db ?? "postgres");
  try {
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${pgIdent(name)} WITH (FORCE)`);
    } catch {
      await admin.query(`DROP DATABASE IF EXISTS ${pgIdent(name)}`); // before PostgreSQL 13
    }
    return (await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name])).rowCount === 0;
  } finally {
    await admin.end().catch(() => {});
  }
}

/** Checks that the scratch server can be reached and logged into (before anything is restored). */
export async function preflightScratch(server: ScratchServer): Promise<void> {
  if (server.engine === "mysql") {
    await mysqlQuery(server.target, "SELECT 1");
    return;
  }
  const c = await pgConnect(server.target, server.target.params.maintenance_db ?? "postgres");
  await c.end().catch(() => {});
}
