import { LifeboatError } from "../core/errors.js";
import type { Repository } from "../repo/repository.js";
import type { SnapshotWithId } from "../repo/snapshot.js";
import type { CleanupSource } from "../snapshot/source.js";
import {
  type MysqlTarget,
  mysqlSource,
  mysqlSourceName,
  parseMysqlUrl,
  preflightMysql,
  restoreMysql,
} from "./mysql.js";
import {
  type PgTarget,
  parsePostgresUrl,
  postgresSource,
  postgresSourceName,
  preflightPostgres,
  restorePostgres,
} from "./postgres.js";
import { checkSqlitePath, parseSqliteArg, sqliteSource, sqliteSourceName } from "./sqlite.js";

/**
 * Database sources named on the command line: `sqlite:PATH`, `postgres://...`, `mysql://...`.
 * Each is backed up as its own snapshot whose `paths` is the source name (without password).
 */
export type DatabaseArg =
  | { engine: "sqlite"; path: string; name: string }
  | { engine: "postgres"; target: PgTarget; name: string }
  | { engine: "mysql"; target: MysqlTarget; name: string };

/** The database a command-line argument names, or undefined for an ordinary path or snapshot id. */
export function parseDatabaseArg(arg: string): DatabaseArg | undefined {
  const sqlitePath = parseSqliteArg(arg);
  if (sqlitePath !== undefined)
    return { engine: "sqlite", path: sqlitePath, name: sqliteSourceName(sqlitePath) };
  const pgTarget = parsePostgresUrl(arg);
  if (pgTarget) {
    const all = pgTarget.database === "*";
    if (all) pgTarget.database = undefined;
    return { engine: "postgres", target: pgTarget, name: postgresSourceName(pgTarget, all) };
  }
  const myTarget = parseMysqlUrl(arg);
  if (myTarget) return { engine: "mysql", target: myTarget, name: mysqlSourceName(myTarget) };
  return undefined;
}

export interface DatabaseOptions {
  /** postgres: every database of the server plus globals. */
  all: boolean;
}

/** Checks what can be checked before a repository is opened: the file, the tool, the login. */
export async function preflightDatabase(db: DatabaseArg, opts: DatabaseOptions): Promise<void> {
  if (opts.all && db.engine !== "postgres")
    throw new LifeboatError("USAGE", "--all goes with a postgres:// URL");
  if (db.engine === "sqlite") await checkSqlitePath(db.path);
  else if (db.engine === "postgres") await preflightPostgres(db.target, opts.all);
  else await preflightMysql(db.target);
}

export type DatabaseSource = CleanupSource;

export function databaseSource(db: DatabaseArg, opts: DatabaseOptions): DatabaseSource {
  if (db.engine === "postgres") return postgresSource(db.target, opts.all);
  if (db.engine === "mysql") return mysqlSource(db.target);
  return sqliteSource(db.path);
}

export interface DatabaseRestoreResult {
  database: string;
  /** The database of the snapshot that was restored. */
  from: string;
  bytes: number;
  tables: number;
}

/** `restore SNAPSHOT --target-db URL`: a dump snapshot into a new database. */
export async function restoreDatabase(
  repo: Repository,
  snap: SnapshotWithId,
  target: DatabaseArg,
  opts: { database?: string; noOwner?: boolean },
): Promise<DatabaseRestoreResult> {
  if (target.engine === "postgres") return restorePostgres(repo, snap, target.target, opts);
  if (target.engine === "mysql") return restoreMysql(repo, snap, target.target, opts);
  throw new LifeboatError("USAGE", "--target-db takes a postgres:// or mysql:// URL");
}
