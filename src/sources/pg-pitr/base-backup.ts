import path from "node:path";
import { LifeboatError } from "../../core/errors.js";
import type { Repository } from "../../repo/repository.js";
import type { Snapshot } from "../../repo/snapshot.js";
import type { BackupResult } from "../../snapshot/commit.js";
import { takeSnapshot } from "../../snapshot/take.js";
import { dbError, dumpOutput, firstLine, type ToolSpec, toolEnv } from "../child-stream.js";
import { PG_PACKAGE_HINT, type PgTarget, pgConnect, pgToolVersion } from "../postgres.js";
import { TarParser } from "./tar-reader.js";
import { DEFAULT_CLUSTER, findWal, readWalRecordBytes } from "./wal-archive.js";

/**
 * `lifeboat pg base-backup`: `pg_basebackup -D - -Ft -X none` streams the whole cluster as one
 * tar archive into a snapshot (source type `pg-base`, one file `base.tar`); nothing is copied to
 * local disk. The WAL it needs comes from the archive (`archive_command = lifeboat pg wal-push`):
 * with `-X none` the server waits until the backup's last WAL segment is archived before it
 * reports success, so a finished base backup always has its WAL in the repository.
 */

export const BASE_SOURCE_TYPE = "pg-base";
export const BASE_FILE = "base.tar";

/** What the snapshot meta of a base backup holds (see docs/pitr.md). */
export interface BaseBackupMeta {
  engine: "postgres";
  cluster: string;
  serverVersion: string;
  serverVersionNum: number;
  pgBasebackupVersion: string;
  systemId: string;
  walSegmentSize: number;
  timeline: number;
  startLsn: string;
  startWalFile: string;
  checkpointLsn: string;
  /** Server time the backup started (from backup_label). */
  startTime: string;
  label: string;
  /** From the archived .backup history file, when it was archived by the time the backup ended. */
  stopLsn?: string;
  stopWalFile?: string;
  stopTime?: string;
  tablespaceMap: boolean;
}

function pgBin(name: string): string {
  const dir = process.env.LIFEBOAT_PG_BINDIR;
  return dir ? path.join(dir, name) : name;
}

const where = (t: PgTarget) => `${t.host ?? t.params.host ?? "local socket"}${t.port ? `:${t.port}` : ""}`;

function basebackupTool(t: PgTarget): ToolSpec {
  return {
    command: pgBin("pg_basebackup"),
    args: [
      "-D",
      "-",
      "--format=tar",
      "--wal-method=none",
      "--checkpoint=fast",
      "--no-manifest",
      "--label=lifeboat base backup",
      "--no-password",
    ],
    env: toolEnv({
      PGHOST: t.host ?? t.params.host,
      PGPORT: t.port ? String(t.port) : t.params.port,
      PGUSER: t.user ?? t.params.user,
      ...(t.password !== undefined ? { PGPASSWORD: t.password } : {}),
      PGSSLMODE: t.params.sslmode ?? process.env.PGSSLMODE,
      PGCONNECT_TIMEOUT: t.params.connect_timeout ?? process.env.PGCONNECT_TIMEOUT ?? "10",
      PGAPPNAME: "lifeboat",
    }),
    missingHint: PG_PACKAGE_HINT,
    classify: (stderr, code, signal) => {
      const line = firstLine(stderr).replace(/^pg_basebackup: (error: )?/, "");
      if (/password authentication failed|no password supplied|no pg_hba\.conf entry/i.test(stderr))
        return new LifeboatError(
          "AUTH_FAILED",
          `PostgreSQL at ${where(t)} refused the replication login of ${t.user ?? "the default user"}: ${line}`,
          "the user needs the REPLICATION attribute and a `host replication` line in pg_hba.conf",
        );
      if (/connection refused|could not connect|could not translate host|timeout expired/i.test(stderr))
        return new LifeboatError("UNREACHABLE", `PostgreSQL at ${where(t)} cannot be reached: ${line}`);
      return dbError(
        "SOURCE_UNREADABLE",
        `pg_basebackup failed (${signal ? `killed by ${signal}` : `exit code ${code}`}): ${line || "no message"}`,
      );
    },
  };
}

interface ServerFacts {
  serverVersion: string;
  serverVersionNum: number;
  systemId: string;
  walSegmentSize: number;
  archiveMode: string;
  archiveCommand: string;
}

async function serverFacts(t: PgTarget): Promise<ServerFacts> {
  const c = await pgConnect(t, t.database ?? "postgres");
  try {
    const r = await c.query<Record<string, string>>(`
      SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n,
             (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
             (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS seg,
             current_setting('archive_mode') AS am, current_setting('archive_command') AS ac`);
    const row = r.rows[0]!;
    return {
      serverVersion: row.v!,
      serverVersionNum: Number(row.n),
      systemId: row.sysid!,
      walSegmentSize: Number(row.seg),
      archiveMode: row.am!,
      archiveCommand: row.ac!,
    };
  } catch (e) {
    if (e instanceof LifeboatError) throw e;
    throw dbError("SOURCE_UNREADABLE", `PostgreSQL at ${where(t)}: ${(e as Error).message}`);
  } finally {
    await c.end().catch(() => {});
  }
}

/** Key: value lines of backup_label (and of .backup history files). */
export function parseLabel(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const i = line.indexOf(": ");
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 2).trim();
  }
  return out;
}

/** `0/2000028 (file 000000010000000000000002)` → the LSN and the file. */
function lsnAndFile(v: string | undefined): { lsn: string; file: string } | undefined {
  const m = /^([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/.exec(v ?? "");
  return m ? { lsn: m[1]!, file: m[2]! } : undefined;
}

/** The server is reachable, archives WAL, and pg_basebackup is installed. */
export async function preflightBaseBackup(t: PgTarget): Promise<ServerFacts> {
  await pgToolVersion("pg_basebackup");
  const facts = await serverFacts(t);
  if (facts.archiveMode === "off")
    throw new LifeboatError(
      "USAGE",
      `PostgreSQL at ${where(t)} has archive_mode = off: a base backup without archived WAL cannot be restored`,
      "set archive_mode = on and archive_command = 'lifeboat ... pg wal-push %p' (see docs/pitr.md), then restart the server",
    );
  return facts;
}

export interface BaseBackupOptions {
  cluster?: string;
  tags?: string[];
  host?: string;
  /** How long to look for the archived .backup file after the backup (ms). */
  stopFileWaitMs?: number;
}

export async function baseBackup(
  repo: Repository,
  t: PgTarget,
  facts: ServerFacts,
  opts: BaseBackupOptions = {},
): Promise<BackupResult & { snapshot: Snapshot }> {
  const cluster = opts.cluster ?? DEFAULT_CLUSTER;
  const pgBasebackupVersion = await pgToolVersion("pg_basebackup");
  let label: string | undefined;
  let labelParts: Buffer[] | undefined;
  let tablespaceMap = false;
  const parser = new TarParser(
    {
      entry(e) {
        if (e.name === "backup_label") labelParts = [];
        if (e.name === "tablespace_map") tablespaceMap = true;
      },
      data(piece) {
        labelParts?.push(Buffer.from(piece));
      },
      endEntry() {
        if (labelParts) label = Buffer.concat(labelParts).toString("utf8");
        labelParts = undefined;
      },
    },
    "pg_basebackup output",
  );
  async function* read(): AsyncIterable<Buffer> {
    for await (const b of dumpOutput(basebackupTool(t))) {
      await parser.push(b);
      yield b;
    }
    parser.end();
    if (label === undefined)
      throw dbError("SOURCE_UNREADABLE", "pg_basebackup's archive has no backup_label; not stored");
  }
  const source = {
    name: `${t.display.replace(/^(postgres:\/\/[^/]*).*$/, "$1")}`,
    type: BASE_SOURCE_TYPE,
    async *entries() {
      yield { kind: "file" as const, path: BASE_FILE, mode: 0o600, read };
    },
    async meta(): Promise<Record<string, unknown>> {
      const l = parseLabel(label ?? "");
      const start = lsnAndFile(l["START WAL LOCATION"]);
      if (!start) throw dbError("SOURCE_UNREADABLE", "backup_label has no START WAL LOCATION");
      const timeline = Number(l["START TIMELINE"] ?? Number.parseInt(start.file.slice(0, 8), 16));
      const meta: BaseBackupMeta = {
        engine: "postgres",
        cluster,
        serverVersion: facts.serverVersion,
        serverVersionNum: facts.serverVersionNum,
        pgBasebackupVersion,
        systemId: facts.systemId,
        walSegmentSize: facts.walSegmentSize,
        timeline,
        startLsn: start.lsn,
        startWalFile: start.file,
        checkpointLsn: (l["CHECKPOINT LOCATION"] ?? "").trim(),
        startTime: l["START TIME"] ?? "",
        label: l.LABEL ?? "",
        tablespaceMap,
      };
      const stop = await stopFacts(repo, cluster, start, facts.walSegmentSize, opts.stopFileWaitMs ?? 5000);
      return { ...meta, ...stop };
    },
  };
  return takeSnapshot(repo, source, {
    ...(opts.tags ? { tags: opts.tags } : {}),
    ...(opts.host ? { host: opts.host } : {}),
    anomaly: false,
  });
}

/** Stop position from the archived backup history file `<start file>.<offset>.backup`. */
async function stopFacts(
  repo: Repository,
  cluster: string,
  start: { lsn: string; file: string },
  segSize: number,
  waitMs: number,
): Promise<Partial<BaseBackupMeta>> {
  const lo = Number.parseInt(start.lsn.split("/")[1]!, 16);
  const offset = (lo % segSize).toString(16).toUpperCase().padStart(8, "0");
  const name = `${start.file}.${offset}.backup`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    const found = await findWal(repo, cluster, name);
    if (found[0]) {
      const l = parseLabel((await readWalRecordBytes(repo, found[0].record)).toString("utf8"));
      const stop = lsnAndFile(l["STOP WAL LOCATION"]);
      if (!stop) return {};
      return {
        stopLsn: stop.lsn,
        stopWalFile: stop.file,
        ...(l["STOP TIME"] ? { stopTime: l["STOP TIME"] } : {}),
      };
    }
    if (Date.now() > deadline) return {};
    await new Promise((r) => setTimeout(r, 250));
  }
}
