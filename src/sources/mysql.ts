import { existsSync } from "node:fs";
import path from "node:path";
import { isLifeboatError, LifeboatError } from "../core/errors.js";
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
 * MariaDB/MySQL: `mariadb-dump` (or `mysqldump`) with --single-transaction: InnoDB tables are
 * read in one consistent snapshot while writers go on; routines, triggers and events are
 * included. The SQL text is streamed into the repository (no local copy). The dump has no
 * CREATE DATABASE/USE, so it restores into any database name.
 */

export type MysqlTarget = DbTarget;

export const MYSQL_PACKAGE_HINT =
  "install the Debian package mariadb-client (apt-get install mariadb-client), or set LIFEBOAT_MYSQL_BINDIR to the folder holding mariadb-dump/mysqldump";

/** `mysql://USER:PW@HOST:PORT/DB` (or mariadb://) → its parts; undefined for other arguments. */
export function parseMysqlUrl(arg: string): MysqlTarget | undefined {
  return parseDbUrl(arg, /^(mysql|mariadb):\/\//i, "mysql");
}

const where = (t: MysqlTarget) => `${t.host ?? "localhost"}${t.port ? `:${t.port}` : ""}`;

/** The first of `names` found in LIFEBOAT_MYSQL_BINDIR or PATH (the first name when none is). */
function findTool(names: string[]): string {
  const dirs = process.env.LIFEBOAT_MYSQL_BINDIR
    ? [process.env.LIFEBOAT_MYSQL_BINDIR]
    : (process.env.PATH ?? "").split(path.delimiter).filter(Boolean);
  for (const n of names) for (const d of dirs) if (existsSync(path.join(d, n))) return path.join(d, n);
  return names[0]!;
}
const dumpTool = () => findTool(["mariadb-dump", "mysqldump"]);
const clientTool = () => findTool(["mariadb", "mysql"]);

/** Connection options: user, host and port as arguments, the password in MYSQL_PWD (never argv). */
function connArgs(t: MysqlTarget): string[] {
  const a: string[] = [];
  if (t.host) a.push(`--host=${t.host}`);
  if (t.port) a.push(`--port=${t.port}`);
  if (t.host && t.host !== "localhost") a.push("--protocol=TCP");
  if (t.params.socket) a.push(`--socket=${t.params.socket}`);
  if (t.user) a.push(`--user=${t.user}`);
  return a;
}

function classifyMysql(toolName: string, t: MysqlTarget) {
  return (stderr: string, code: number | null, signal: NodeJS.Signals | null): LifeboatError => {
    const line = firstLine(stderr.replace(/^.*Deprecated program name.*$/gim, ""))
      .replace(/^[\w/.-]+: /, "")
      .replace(/^Got error: /, "");
    if (/access denied for user|\b1045\b|\b1698\b/i.test(stderr))
      return dbError(
        "AUTH_FAILED",
        `MariaDB/MySQL at ${where(t)} refused the login of ${t.user ?? "the default user"}: ${line}`,
        "check the user and password in the URL (or MYSQL_PWD / ~/.my.cnf)",
      );
    if (/can't connect|\b200[235]\b|unknown (mysql|mariadb) server host|lost connection/i.test(stderr))
      return dbError(
        "UNREACHABLE",
        `MariaDB/MySQL at ${where(t)} cannot be reached: ${line}`,
        "check host and port, and that the server is running and accepts TCP connections",
      );
    if (/unknown database|\b1049\b/i.test(stderr))
      return dbError("NOT_FOUND", `MariaDB/MySQL at ${where(t)}: ${line}`);
    return dbError(
      "SOURCE_UNREADABLE",
      `${path.basename(toolName)} failed (${signal ? `killed by ${signal}` : `exit code ${code}`}): ${line || "no message"}`,
    );
  };
}

function tool(command: string, args: string[], t: MysqlTarget): ToolSpec {
  return {
    command,
    args: [...connArgs(t), ...args],
    env: toolEnv(t.password !== undefined ? { MYSQL_PWD: t.password } : {}),
    missingHint: MYSQL_PACKAGE_HINT,
    classify: classifyMysql(command, t),
  };
}

/** A string literal that needs no escaping: the UTF-8 bytes in hex. */
const sqlString = (s: string) => `CONVERT(0x${Buffer.from(s, "utf8").toString("hex") || "00"} USING utf8mb4)`;
const quoteIdent = (s: string) => `\`${s.replace(/`/g, "``")}\``;
const fileNameOf = (db: string) => `${encodeURIComponent(db).replace(/\./g, "%2E")}.sql`;
const dbOfFileName = (f: string) => decodeURIComponent(path.posix.basename(f).replace(/\.sql$/, ""));

/** Runs SQL through the client; rows as arrays of tab-separated fields. */
async function query(t: MysqlTarget, sql: string, database?: string): Promise<string[][]> {
  const out = await runTool(
    tool(
      clientTool(),
      [
        `--connect-timeout=${t.params.connect_timeout ?? "10"}`,
        "--batch",
        "--skip-column-names",
        ...(database ? [`--database=${database}`] : []),
        "-e",
        sql,
      ],
      t,
    ),
  );
  return out
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split("\t"));
}

/**
 * Runs SQL on a MariaDB/MySQL server through its client (rows as arrays of tab-separated
 * fields), with the connection, password handling and error classification of this module.
 */
export function mysqlQuery(t: MysqlTarget, sql: string, database?: string): Promise<string[][]> {
  return query(t, sql, database);
}

/**
 * Runs one query through the client with `--xml` output (column names, and NULL told apart from
 * the text "NULL"), in the URL's database; returns the XML document as the client printed it.
 */
export function mysqlXmlQuery(t: MysqlTarget, sql: string): Promise<string> {
  return runTool(
    tool(
      clientTool(),
      [
        `--connect-timeout=${t.params.connect_timeout ?? "10"}`,
        "--xml",
        "--default-character-set=utf8mb4",
        ...(t.database ? [`--database=${t.database}`] : []),
        "-e",
        sql,
      ],
      t,
    ),
  );
}

/** Tools installed, server reachable, login accepted, database there: before any repository is opened. */
export async function preflightMysql(t: MysqlTarget): Promise<void> {
  if (!t.database)
    throw new LifeboatError("USAGE", "the mysql:// URL names no database", "add /DATABASE to the URL");
  await runTool(
    tool(dumpTool(), ["--version"], { ...t, host: undefined, port: undefined, user: undefined, params: {} }),
  );
  await query(t, "SELECT 1", t.database);
}

export function mysqlSourceName(t: MysqlTarget): string {
  return t.display;
}

/** The virtual source for `lifeboat backup mysql://...`. */
export function mysqlSource(t: MysqlTarget): CleanupSource {
  const meta: Record<string, unknown> = { engine: "mysql" };
  const db = t.database!;
  return {
    name: mysqlSourceName(t),
    type: "mysql",
    async *entries(): AsyncIterable<VirtualEntry> {
      const dump = dumpTool();
      meta.dumpTool = path.basename(dump);
      meta.serverVersion = (await query(t, "SELECT VERSION()"))[0]?.[0];
      const tables = await query(
        t,
        `SELECT table_name, engine, COALESCE(table_rows, 0) FROM information_schema.tables WHERE table_schema = ${sqlString(db)} AND table_type = 'BASE TABLE' ORDER BY table_name`,
      );
      const estimatedRows: Record<string, number> = {};
      const notTransactional: string[] = [];
      for (const [name, engine, rows] of tables) {
        estimatedRows[name!] = Number(rows);
        if (engine && !/^(InnoDB|XtraDB|RocksDB|Aria)$/i.test(engine))
          notTransactional.push(`${name} (${engine})`);
      }
      meta.databases = [{ name: db, file: fileNameOf(db), tables: tables.length, estimatedRows }];
      if (notTransactional.length > 0)
        meta.warnings = [
          `tables without transactions are not covered by --single-transaction and may be inconsistent: ${notTransactional.join(", ")}`,
        ];
      yield {
        kind: "file",
        path: fileNameOf(db),
        mode: 0o600,
        read: () =>
          dumpOutput(
            tool(
              dump,
              [
                "--single-transaction",
                "--routines",
                "--triggers",
                "--events",
                "--hex-blob",
                "--quick",
                "--skip-dump-date",
                "--default-character-set=utf8mb4",
                db,
              ],
              t,
            ),
          ),
      };
    },
    meta() {
      return meta;
    },
    async cleanup() {},
  };
}

export interface MysqlRestoreResult {
  database: string;
  from: string;
  bytes: number;
  tables: number;
}

/**
 * Restores the dump of a mysql snapshot into a new database: CREATE DATABASE, then the client
 * fed from the repository (it stops at the first error). On any failure the new database is
 * dropped, and the error says so.
 */
export async function restoreMysql(
  repo: Repository,
  snap: SnapshotWithId,
  target: MysqlTarget,
  opts: { database?: string } = {},
): Promise<MysqlRestoreResult> {
  requireSource(snap, ["mysql"], "a MariaDB/MySQL snapshot");
  const newDb = target.database;
  if (!newDb)
    throw new LifeboatError("USAGE", "--target-db names no database", "mysql://USER:PW@HOST:PORT/NEWDB");
  const dumps = (await listSnapshotFiles(repo, snap)).filter((f) => f.path.endsWith(".sql"));
  const names = dumps.map((d) => dbOfFileName(d.path));
  const file = opts.database !== undefined ? dumps[names.indexOf(opts.database)] : dumps[0];
  if (!file)
    throw new LifeboatError(
      "NOT_FOUND",
      `snapshot ${snap.id.slice(0, 8)} has no database ${opts.database ?? ""} (it has ${names.join(", ") || "none"})`,
    );
  const exists = await query(
    target,
    `SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ${sqlString(newDb)}`,
  );
  if (exists[0]?.[0] !== "0")
    throw new LifeboatError(
      "ALREADY_EXISTS",
      `database ${newDb} already exists on ${where(target)}; restore never writes into an existing database`,
      "give a new database name in --target-db (or drop that database first)",
    );
  await query(target, `CREATE DATABASE ${quoteIdent(newDb)}`);
  try {
    let bytes = 0;
    const counted = async function* () {
      for await (const b of readSnapshotFile(repo, file)) {
        bytes += b.length;
        yield b;
      }
    };
    await feedTool(
      tool(clientTool(), ["--binary-mode", "--default-character-set=utf8mb4", `--database=${newDb}`], target),
      counted(),
    );
    const tables = await query(
      target,
      `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ${sqlString(newDb)}`,
    );
    return { database: newDb, from: dbOfFileName(file.path), bytes, tables: Number(tables[0]?.[0] ?? 0) };
  } catch (e) {
    const err = isLifeboatError(e) ? e : dbError("STORAGE_ERROR", (e as Error).message);
    let dropped = false;
    try {
      await query(target, `DROP DATABASE IF EXISTS ${quoteIdent(newDb)}`);
      dropped = true;
    } catch {}
    throw failedRestore(err, newDb, dropped, err.hint, e);
  }
}
