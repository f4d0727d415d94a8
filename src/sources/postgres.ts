import path from "node:path";
import type pg from "pg";
import { errnoCode, isLifeboatError, LifeboatError } from "../core/errors.js";
import type { Repository } from "../repo/repository.js";
import type { SnapshotWithId } from "../repo/snapshot.js";
import { listSnapshotFiles, readSnapshotFile, requireSource } from "../snapshot/snapshot-files.js";
import type { CleanupSource, VirtualEntry } from "../snapshot/source.js";
import {
  dbError,
  dumpOutput,
  failedRestore,
  feedTool,
  firstLine,
  runTool,
  type ToolSpec,
  toolEnv,
} from "./child-stream.js";
import { type DbTarget, parseDbUrl } from "./db-url.js";

/**
 * PostgreSQL: logical dumps. `pg_dump --format=custom` reads the whole database in one
 * repeatable-read transaction (one snapshot), and its stdout is streamed straight into the
 * repository: nothing is copied to local disk. The dump is uncompressed (`--compress=0`) so
 * successive dumps deduplicate; the repository compresses each blob with zstd.
 */

export type PgTarget = DbTarget;

export const PG_PACKAGE_HINT =
  "install the Debian package postgresql-client (apt-get install postgresql-client), or set LIFEBOAT_PG_BINDIR to the folder holding pg_dump";

/** `postgres://USER[:PW]@HOST:PORT/DB` (or postgresql://) → its parts; undefined for other arguments. */
export function parsePostgresUrl(arg: string): PgTarget | undefined {
  return parseDbUrl(arg, /^postgres(ql)?:\/\//i, "postgres", "postgres");
}

const where = (t: PgTarget) => `${t.host ?? t.params.host ?? "local socket"}${t.port ? `:${t.port}` : ""}`;

function pgBin(name: string): string {
  const dir = process.env.LIFEBOAT_PG_BINDIR;
  return dir ? path.join(dir, name) : name;
}

/** Environment for libpq tools: the connection comes from PG* variables, never the command line. */
function pgEnv(t: PgTarget, database: string | undefined): NodeJS.ProcessEnv {
  return toolEnv({
    PGHOST: t.host ?? t.params.host,
    PGPORT: t.port ? String(t.port) : t.params.port,
    PGUSER: t.user ?? t.params.user,
    // Only set when the URL has one: PGPASSWORD / ~/.pgpass from the environment work otherwise.
    ...(t.password !== undefined ? { PGPASSWORD: t.password } : {}),
    PGDATABASE: database,
    PGSSLMODE: t.params.sslmode ?? process.env.PGSSLMODE,
    PGCONNECT_TIMEOUT: t.params.connect_timeout ?? process.env.PGCONNECT_TIMEOUT ?? "10",
    PGAPPNAME: "lifeboat",
  });
}

/** Turns a libpq tool's failure into one line and the right exit code. */
function classifyPg(tool: string, t: PgTarget) {
  return (stderr: string, code: number | null, signal: NodeJS.Signals | null): LifeboatError => {
    const line = firstLine(stderr).replace(/^(pg_dump|pg_dumpall|pg_restore|psql): (error: )?/, "");
    if (
      /password authentication failed|no password supplied|authentication failed|no pg_hba\.conf entry/i.test(
        stderr,
      )
    )
      return new LifeboatError(
        "AUTH_FAILED",
        `PostgreSQL at ${where(t)} refused the login of ${t.user ?? "the default user"}: ${line}`,
        "check the user and password in the URL (or PGPASSWORD / ~/.pgpass)",
      );
    if (
      /connection refused|could not connect|could not translate host|timeout expired|no route to host|network is unreachable/i.test(
        stderr,
      )
    )
      return new LifeboatError(
        "UNREACHABLE",
        `PostgreSQL at ${where(t)} cannot be reached: ${line}`,
        "check host and port, and that the server is running and accepts TCP connections",
      );
    if (/server version mismatch/i.test(stderr))
      return dbError(
        "SOURCE_UNREADABLE",
        `${tool} is older than the server at ${where(t)}: ${line}`,
        "install the postgresql-client package of the server's major version (or newer) and set LIFEBOAT_PG_BINDIR to its bin folder",
      );
    if (/database ".*" does not exist/i.test(stderr))
      return new LifeboatError("NOT_FOUND", `PostgreSQL at ${where(t)}: ${line}`);
    return dbError(
      "SOURCE_UNREADABLE",
      `${tool} failed (${signal ? `killed by ${signal}` : `exit code ${code}`}): ${line || "no message"}`,
    );
  };
}

function tool(name: string, args: string[], t: PgTarget, database: string | undefined): ToolSpec {
  return {
    command: pgBin(name),
    args,
    env: pgEnv(t, database),
    missingHint: PG_PACKAGE_HINT,
    classify: classifyPg(name, t),
  };
}

/** Checks that a PostgreSQL tool is installed; returns its version line. */
export async function pgToolVersion(name: string): Promise<string> {
  const t: PgTarget = {
    host: "",
    port: undefined,
    user: undefined,
    password: undefined,
    database: undefined,
    params: {},
    display: "",
  };
  return (await runTool(tool(name, ["--version"], t, undefined))).trim();
}

function pgError(t: PgTarget, e: unknown): LifeboatError {
  if (isLifeboatError(e)) return e;
  const code = errnoCode(e);
  const msg = (e as Error).message;
  if (code === "28P01" || code === "28000")
    return new LifeboatError(
      "AUTH_FAILED",
      `PostgreSQL at ${where(t)} refused the login of ${t.user ?? "the default user"}: ${msg}`,
      "check the user and password in the URL (or PGPASSWORD / ~/.pgpass)",
    );
  if (
    code === "ECONNREFUSED" ||
    code === "ETIMEDOUT" ||
    code === "ENOTFOUND" ||
    code === "EHOSTUNREACH" ||
    code === "ENETUNREACH" ||
    code === "EAI_AGAIN" ||
    code === "ECONNRESET" ||
    /timeout/i.test(msg)
  )
    return new LifeboatError(
      "UNREACHABLE",
      `PostgreSQL at ${where(t)} cannot be reached: ${msg}`,
      "check host and port, and that the server is running and accepts TCP connections",
    );
  if (code === "3D000") return new LifeboatError("NOT_FOUND", `PostgreSQL at ${where(t)}: ${msg}`);
  if (code === "42501") return new LifeboatError("PERMISSION_DENIED", `PostgreSQL at ${where(t)}: ${msg}`);
  return dbError("SOURCE_UNREADABLE", `PostgreSQL at ${where(t)}: ${msg}`);
}

/** A client connection for the small queries around a dump or restore (meta, create, drop). */
export async function pgConnect(t: PgTarget, database: string | undefined): Promise<pg.Client> {
  const socketDir = t.params.host;
  const { default: pgLib } = await import("pg"); // loaded on first use
  const client = new pgLib.Client({
    host: t.host ?? socketDir ?? process.env.PGHOST ?? "/var/run/postgresql",
    port: t.port ?? (t.params.port ? Number(t.params.port) : undefined),
    user: t.user ?? t.params.user,
    ...(t.password !== undefined ? { password: t.password } : {}),
    database: database ?? "postgres",
    connectionTimeoutMillis: 10_000,
    application_name: "lifeboat",
    ...(t.params.sslmode && t.params.sslmode !== "disable"
      ? { ssl: { rejectUnauthorized: t.params.sslmode === "verify-full" } }
      : {}),
  });
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (e) {
    await client.end().catch(() => {});
    throw pgError(t, e);
  }
  return client;
}

const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;
/** A libpq conninfo value, so a database name is never parsed as a connection string. */
const conninfoValue = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
/** Database names become file names: anything but an ordinary name character is %-encoded. */
const fileNameOf = (db: string) => `${encodeURIComponent(db).replace(/\./g, "%2E")}.dump`;
const dbOfFileName = (f: string) => decodeURIComponent(path.posix.basename(f).replace(/\.dump$/, ""));

interface DbFacts {
  name: string;
  file: string;
  sizeBytes: number;
  tables: number;
  /** Live-row estimates from the statistics collector (cheap; exact counts need a full scan). */
  estimatedRows: Record<string, number>;
}

async function dbFacts(t: PgTarget, name: string, file: string): Promise<DbFacts> {
  const c = await pgConnect(t, name);
  try {
    const size = await c.query<{ s: string }>("SELECT pg_database_size(current_database())::text AS s");
    const rows = await c.query<{ t: string; n: string }>(
      "SELECT quote_ident(schemaname) || '.' || quote_ident(relname) AS t, n_live_tup::text AS n FROM pg_stat_user_tables ORDER BY 1",
    );
    const estimatedRows: Record<string, number> = {};
    for (const r of rows.rows) estimatedRows[r.t] = Number(r.n);
    return { name, file, sizeBytes: Number(size.rows[0]?.s ?? 0), tables: rows.rows.length, estimatedRows };
  } finally {
    await c.end().catch(() => {});
  }
}

/** Tool installed, server reachable, login accepted, database there: checked before a repository is opened. */
export async function preflightPostgres(t: PgTarget, all: boolean): Promise<void> {
  await pgToolVersion("pg_dump");
  if (all) await pgToolVersion("pg_dumpall");
  else if (!t.database)
    throw new LifeboatError(
      "USAGE",
      "the postgres:// URL names no database",
      "add /DATABASE to the URL, or give --all for every database of the server",
    );
  const c = await pgConnect(t, t.database);
  await c.end().catch(() => {});
}

/** What snapshots of this source are recorded under (no password; `/*` for --all). */
export function postgresSourceName(t: PgTarget, all: boolean): string {
  return all ? `${t.display.replace(/^(postgres:\/\/[^/]*).*$/, "$1")}/*` : t.display;
}

/** The virtual source for `lifeboat backup postgres://...` (and `--all`). */
export function postgresSource(t: PgTarget, all: boolean): CleanupSource {
  const meta: Record<string, unknown> = { engine: "postgres" };
  const databases: DbFacts[] = [];
  return {
    name: postgresSourceName(t, all),
    type: "postgres",
    async *entries(): AsyncIterable<VirtualEntry> {
      meta.pgDumpVersion = await pgToolVersion("pg_dump");
      const c = await pgConnect(t, t.database);
      let names: string[];
      try {
        meta.serverVersion = (await c.query<{ v: string }>("SHOW server_version")).rows[0]?.v;
        names = all
          ? (
              await c.query<{ d: string }>(
                "SELECT datname AS d FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname",
              )
            ).rows.map((r) => r.d)
          : [t.database!];
      } finally {
        await c.end().catch(() => {});
      }
      if (all) {
        yield {
          kind: "file",
          path: "globals.sql",
          mode: 0o600,
          read: () => dumpOutput(tool("pg_dumpall", ["--globals-only", "--no-password"], t, t.database)),
        };
      }
      for (const name of names) {
        const file = all ? `databases/${fileNameOf(name)}` : fileNameOf(name);
        databases.push(await dbFacts(t, name, file));
        yield {
          kind: "file",
          path: file,
          mode: 0o600,
          read: () =>
            dumpOutput(tool("pg_dump", ["--format=custom", "--compress=0", "--no-password"], t, name)),
        };
      }
    },
    meta() {
      return { ...meta, databases };
    },
    async cleanup() {},
  };
}

export interface PgRestoreOptions {
  /** From a `--all` snapshot: which database to restore. */
  database?: string;
  /** pg_restore --no-owner --no-acl (when the roles of the source do not exist on the target). */
  noOwner?: boolean;
}

export interface PgRestoreResult {
  database: string;
  from: string;
  bytes: number;
  tables: number;
}

/**
 * Restores one database of a postgres snapshot into a new database on `target`: CREATE
 * DATABASE, then pg_restore --single-transaction --exit-on-error fed from the repository. On any
 * failure the database we created is dropped, and the error says so.
 */
export async function restorePostgres(
  repo: Repository,
  snap: SnapshotWithId,
  target: PgTarget,
  opts: PgRestoreOptions = {},
): Promise<PgRestoreResult> {
  requireSource(snap, ["postgres"], "a PostgreSQL snapshot");
  const newDb = target.database;
  if (!newDb)
    throw new LifeboatError("USAGE", "--target-db names no database", "postgres://USER[:PW]@HOST:PORT/NEWDB");
  const dumps = (await listSnapshotFiles(repo, snap)).filter((f) => f.path.endsWith(".dump"));
  const names = dumps.map((d) => dbOfFileName(d.path));
  let file = dumps[0];
  if (opts.database !== undefined) file = dumps[names.indexOf(opts.database)];
  else if (dumps.length > 1)
    throw new LifeboatError(
      "USAGE",
      `snapshot ${snap.id.slice(0, 8)} holds ${dumps.length} databases: ${names.join(", ")}`,
      "choose one with --database NAME",
    );
  if (!file)
    throw new LifeboatError(
      "NOT_FOUND",
      opts.database !== undefined
        ? `snapshot ${snap.id.slice(0, 8)} has no database ${opts.database} (it has ${names.join(", ") || "none"})`
        : `snapshot ${snap.id.slice(0, 8)} holds no database dump`,
    );
  await pgToolVersion("pg_restore");
  const admin = await pgConnect(target, target.params.maintenance_db ?? "postgres");
  let created = false;
  try {
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [newDb]);
    if (exists.rowCount)
      throw new LifeboatError(
        "ALREADY_EXISTS",
        `database ${newDb} already exists on ${where(target)}; restore never writes into an existing database`,
        "give a new database name in --target-db (or drop that database first)",
      );
    try {
      await admin.query(`CREATE DATABASE ${quoteIdent(newDb)} TEMPLATE template0`);
    } catch (e) {
      throw pgError(target, e);
    }
    created = true;
    let bytes = 0;
    const counted = async function* () {
      for await (const b of readSnapshotFile(repo, file)) {
        bytes += b.length;
        yield b;
      }
    };
    const args = [
      "--no-password",
      "--exit-on-error",
      "--single-transaction",
      ...(opts.noOwner ? ["--no-owner", "--no-acl"] : []),
      `--dbname=dbname=${conninfoValue(newDb)}`,
    ];
    await feedTool(tool("pg_restore", args, target, newDb), counted());
    const c = await pgConnect(target, newDb);
    let tables = 0;
    try {
      tables = Number(
        (
          await c.query<{ n: string }>(
            "SELECT count(*)::text AS n FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
          )
        ).rows[0]?.n ?? 0,
      );
    } finally {
      await c.end().catch(() => {});
    }
    created = false; // complete: keep it
    return { database: newDb, from: dbOfFileName(file.path), bytes, tables };
  } catch (e) {
    const err = isLifeboatError(e) ? e : pgError(target, e);
    if (!created) throw err;
    let dropped = false;
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(newDb)} WITH (FORCE)`);
      dropped = true;
    } catch {
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(newDb)}`);
        dropped = true;
      } catch {}
    }
    throw failedRestore(
      err,
      newDb,
      dropped,
      err.hint ??
        (/owner|role .* does not exist/i.test(err.message)
          ? "roles of the source are missing on the target: create them, or restore with --no-owner"
          : undefined),
      e,
    );
  } finally {
    await admin.end().catch(() => {});
  }
}
