import { randomBytes } from "node:crypto";
import path from "node:path";
import { isLifeboatError, LifeboatError } from "../core/errors.js";
import type { Repository } from "../repo/repository.js";
import type { SnapshotWithId } from "../repo/snapshot.js";
import { listSnapshotFiles, readSnapshotFile, type SnapshotFile } from "../snapshot/snapshot-files.js";
import {
  type DumpEngine,
  dropScratchDatabase,
  ENGINE_LABEL,
  mysqlEngineCheck,
  onDatabase,
  parseScratchServer,
  pgEngineCheck,
  preflightScratch,
} from "../sources/db-engine.js";
import { restoreMysql } from "../sources/mysql.js";
import { pgToolVersion, restorePostgres } from "../sources/postgres.js";

/**
 * Drills of dump snapshots (PostgreSQL, MariaDB/MySQL): each database of the snapshot is
 * restored with the ordinary restore code into a new scratch database `lifeboat_drill_<8 hex>`
 * on a server the operator names, checked by the engine, and dropped again (also on failure).
 */

export interface DatabaseDrill {
  /** The database of the snapshot. */
  name: string;
  /** The scratch database it was restored into. */
  scratch: string;
  /** Restore time (seconds, wall clock). */
  seconds: number;
  bytes: number;
  /** Tables and rows found after the restore. */
  tables: number;
  rows: number;
  check: string;
}

export interface DatabaseDrillOutcome {
  files: number;
  bytes: number;
  seconds: number;
  failures: { path: string; reason: string }[];
  engineCheck: string | undefined;
  databases: DatabaseDrill[];
  /** Scratch databases kept (--keep-scratch), as URLs without password. */
  kept: string[];
  warnings: string[];
}

/** Errors that mean the scratch server, not the backup, is the problem: the drill did not run. */
const SERVER_PROBLEM = new Set(["UNREACHABLE", "AUTH_FAILED", "PERMISSION_DENIED"]);
const isDataLoss = (e: unknown) =>
  isLifeboatError(e) && (e.code === "CORRUPTION" || e.code === "NOT_FOUND" || e.code === "UNSAFE_PATH");

/** The dumps' file names are the %-encoded database names. */
const dbOfFile = (f: string, ext: string) => decodeURIComponent(path.posix.basename(f).slice(0, -ext.length));

/** Per-database table lists recorded at backup time (`meta.databases[].estimatedRows` keys). */
function expectedTables(snap: SnapshotWithId, file: SnapshotFile): string[] | undefined {
  const dbs = (snap.meta as { databases?: unknown } | undefined)?.databases;
  if (!Array.isArray(dbs)) return undefined;
  const mine = dbs.find(
    (d): d is { estimatedRows?: unknown } =>
      typeof d === "object" && d !== null && (d as { file?: unknown }).file === file.path,
  );
  const est = mine?.estimatedRows;
  return est && typeof est === "object" && !Array.isArray(est) ? Object.keys(est) : undefined;
}

export function missingScratchServer(snap: SnapshotWithId, engine: DumpEngine): LifeboatError {
  const env = engine === "postgres" ? "LIFEBOAT_DRILL_PG" : "LIFEBOAT_DRILL_MYSQL";
  const scheme = engine === "postgres" ? "postgres" : "mysql";
  return new LifeboatError(
    "USAGE",
    `snapshot ${snap.id.slice(0, 8)} is a ${ENGINE_LABEL[engine]} dump: a drill restores it into a scratch database, so pass --scratch-db ${scheme}://USER:PASSWORD@HOST:PORT/ (or set ${env})`,
  );
}

export async function drillDatabase(
  repo: Repository,
  snap: SnapshotWithId,
  engine: DumpEngine,
  servers: Partial<Record<DumpEngine, string>>,
  options: { keepScratch?: boolean } = {},
): Promise<DatabaseDrillOutcome> {
  const serverUrl = servers[engine];
  if (!serverUrl) {
    const other = Object.values(servers).find((u) => u !== undefined);
    if (other === undefined) throw missingScratchServer(snap, engine);
    const given = parseScratchServer(other);
    throw new LifeboatError(
      "USAGE",
      `snapshot ${snap.id.slice(0, 8)} is a ${ENGINE_LABEL[engine]} dump but the scratch server ${given.display} is ${ENGINE_LABEL[given.engine]}: pass --scratch-db ${engine === "postgres" ? "postgres" : "mysql"}://USER:PASSWORD@HOST:PORT/`,
    );
  }
  const server = parseScratchServer(serverUrl);
  if (server.engine !== engine)
    throw new LifeboatError(
      "USAGE",
      `the scratch server for ${ENGINE_LABEL[engine]} snapshots, ${server.display}, is a ${ENGINE_LABEL[server.engine]} URL`,
      `set ${engine === "postgres" ? "LIFEBOAT_DRILL_PG" : "LIFEBOAT_DRILL_MYSQL"} to a ${engine === "postgres" ? "postgres" : "mysql"}:// URL`,
    );
  // Tool installed, server reachable, login accepted: otherwise the drill does not run at all
  // (and nothing is recorded), as when the repository cannot be read.
  if (engine === "postgres") await pgToolVersion("pg_restore");
  await preflightScratch(server);

  const out: DatabaseDrillOutcome = {
    files: 0,
    bytes: 0,
    seconds: 0,
    failures: [],
    engineCheck: undefined,
    databases: [],
    kept: [],
    warnings: [],
  };
  const fail = (p: string, reason: string) => out.failures.push({ path: p, reason });
  const ext = engine === "postgres" ? ".dump" : ".sql";
  let files: SnapshotFile[];
  try {
    files = await listSnapshotFiles(repo, snap);
  } catch (e) {
    if (!isDataLoss(e)) throw e;
    fail("/", (e as Error).message);
    return out;
  }
  const dumps = files.filter((f) => f.path.endsWith(ext));
  const others = files.filter((f) => !f.path.endsWith(ext));
  if (dumps.length === 0) fail("/", `the snapshot holds no database dump (*${ext})`);

  const t0 = process.hrtime.bigint();
  // Other files (pg_dumpall --globals-only of a --all snapshot) are read and authenticated.
  for (const f of others) {
    try {
      for await (const b of readSnapshotFile(repo, f)) out.bytes += b.length;
      out.files++;
    } catch (e) {
      if (!isDataLoss(e)) throw e;
      fail(`/${f.path}`, (e as Error).message);
    }
  }
  out.seconds += Number(process.hrtime.bigint() - t0) / 1e9;

  const checks: string[] = [];
  for (const dump of dumps) {
    const name = dbOfFile(dump.path, ext);
    const scratch = `lifeboat_drill_${randomBytes(4).toString("hex")}`;
    const target = onDatabase(server.target, scratch);
    let keep = false;
    let mayDrop = true;
    try {
      const started = process.hrtime.bigint();
      let r: { bytes: number };
      try {
        r =
          engine === "postgres"
            ? await restorePostgres(repo, snap, target, { database: name, noOwner: true })
            : await restoreMysql(repo, snap, target, { database: name });
      } catch (e) {
        out.seconds += Number(process.hrtime.bigint() - started) / 1e9;
        if (isLifeboatError(e) && e.code === "ALREADY_EXISTS") mayDrop = false; // not ours
        if (isLifeboatError(e) && SERVER_PROBLEM.has(e.code)) throw e;
        fail(`/${dump.path}`, (e as Error).message);
        continue;
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      out.seconds += seconds;
      out.bytes += r.bytes;
      out.files++;
      const expected = expectedTables(snap, dump);
      const c =
        engine === "postgres"
          ? await pgEngineCheck(target, expected)
          : await mysqlEngineCheck(target, expected);
      if (c.check !== "ok") checks.push(dumps.length > 1 ? `${name}: ${c.check}` : c.check);
      out.databases.push({
        name,
        scratch,
        seconds: Math.round(seconds * 1000) / 1000,
        bytes: r.bytes,
        tables: c.tables,
        rows: c.rows,
        check: c.check,
      });
      keep = options.keepScratch === true;
      if (keep) out.kept.push(target.display);
    } finally {
      if (!keep && mayDrop) {
        const gone = await dropScratchDatabase(server, scratch).catch(() => false);
        if (!gone)
          out.warnings.push(
            `the scratch database ${scratch} on ${server.display} could not be dropped: drop it by hand`,
          );
      }
    }
  }
  if (dumps.length > 0)
    out.engineCheck =
      out.databases.length === 0
        ? "not run: the database did not restore"
        : checks.length === 0
          ? "ok"
          : checks.join("; ");
  return out;
}
