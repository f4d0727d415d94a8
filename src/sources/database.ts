import { LifeboatError } from "../core/errors.js";
import type { VirtualSource } from "../ops/backup/virtual.js";
import type { Repository } from "../repo/repository.js";
import { checkSqlitePath, parseSqliteArg, sqliteSource, sqliteSourceName } from "./sqlite.js";

/**
 * Database sources named on the command line: `sqlite:PATH`, `postgres://...`, `mysql://...`.
 * Each is backed up as its own snapshot whose `paths` is the source name (without password).
 */
export type DatabaseArg = { engine: "sqlite"; path: string; name: string };

/** The database a command-line argument names, or undefined for an ordinary path or snapshot id. */
export function parseDatabaseArg(arg: string): DatabaseArg | undefined {
  const sqlitePath = parseSqliteArg(arg);
  if (sqlitePath !== undefined)
    return { engine: "sqlite", path: sqlitePath, name: sqliteSourceName(sqlitePath) };
  return undefined;
}

export interface DatabaseOptions {
  /** postgres: every database of the server plus globals. */
  all: boolean;
}

/** Checks what can be checked before a repository is opened: the file, the tool, the login. */
export async function preflightDatabase(db: DatabaseArg, opts: DatabaseOptions): Promise<void> {
  if (opts.all && db.engine !== "sqlite") return;
  if (opts.all) throw new LifeboatError("USAGE", "--all goes with a postgres:// URL");
  await checkSqlitePath(db.path);
}

export type DatabaseSource = VirtualSource & { cleanup(): Promise<void> };

export function databaseSource(db: DatabaseArg, _opts: DatabaseOptions, repo: Repository): DatabaseSource {
  return sqliteSource(db.path, repo);
}
