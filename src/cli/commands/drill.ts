import type { Command } from "commander";
import { drill } from "../../app/drill.js";
import { CorruptionError, formatItemError, LifeboatError } from "../../core/errors.js";
import type { DrillResult } from "../../ops/drill/drill.js";
import { parseDatabaseArg } from "../../sources/database.js";
import { type DumpEngine, parseScratchServer } from "../../sources/db-engine.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";
import { drillRef } from "./account-flags.js";
import { openAccountRepo } from "./fleet-repos.js";

const collect = (v: string, prev: string[]) => [...prev, v];

interface DrillFlags {
  source?: string;
  sample?: string;
  seed?: string;
  keepScratch?: boolean;
  scratchDb?: string;
  host?: string;
  tag: string[];
  path: string[];
  account?: string;
  fleet?: string;
}

/** Failures of the scratch folder on this machine, not of the backup. */

export function registerDrill(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("drill")
    .description(
      "prove a snapshot restores: restore it to a scratch folder, verify every byte, record the result",
    )
    .argument("[snapshot]", "snapshot id, unique prefix, or `latest`", "latest")
    .option("--account <id>", "a fleet account: drill its newest snapshot")
    .option("--fleet <name>", "with --account: of this fleet")
    .option(
      "--source <path-or-name>",
      "drill the newest snapshot of this path or source (a folder, sqlite:PATH, postgres://...)",
    )
    .option("--sample <n>", "restore only n files chosen at random (a quick drill of a big snapshot)")
    .option("--seed <text>", "with --sample: choose the same files again (the seed used is recorded)")
    .option(
      "--keep-scratch",
      "keep the scratch folder or scratch database (its path or name is printed) instead of removing it",
    )
    .option(
      "--scratch-db <url>",
      "PostgreSQL or MariaDB/MySQL snapshots: the server to restore into, postgres://USER:PW@HOST:PORT/ or mysql://USER:PW@HOST:PORT/ (env LIFEBOAT_DRILL_PG, LIFEBOAT_DRILL_MYSQL)",
    )
    .option("--host <name>", "with `latest`/--source: the newest snapshot of this host")
    .option("--tag <tag>", "with `latest`: the newest snapshot with this tag", collect, [])
    .option("--path <path>", "with `latest`: the newest snapshot of exactly these paths", collect, [])
    .addHelpText(
      "after",
      `
A drill restores the snapshot into a new folder under the system's temporary folder ($TMPDIR),
reads every restored file back and re-hashes it against the snapshot, and for SQLite snapshots
runs PRAGMA integrity_check (and compares row counts) on the restored database. The outcome —
when, which snapshot, files, bytes, restore seconds, failures — is stored in the repository
(drills/, encrypted) and shown by \`lifeboat status\`. The newest 50 drills of each series are kept.

PostgreSQL and MariaDB/MySQL snapshots are restored into a new scratch database
lifeboat_drill_<8 hex> on the server given by --scratch-db (or LIFEBOAT_DRILL_PG /
LIFEBOAT_DRILL_MYSQL), checked there (every table counted and compared with the tables the
backup listed; MariaDB: CHECK TABLE on each), and dropped afterwards, also on failure.

Exit codes: 0 the drill passed; 14 a file or database did not restore intact (the message names
the first one; \`lifeboat status --json\` and the record list up to 100); 1 the scratch folder
could not be written (e.g. disk full: set TMPDIR to a roomier place); 13 no such snapshot.

Examples:
  lifeboat drill                               the newest snapshot, every file
  lifeboat drill --source /srv/www             the newest snapshot of /srv/www
  lifeboat drill --source sqlite:/var/lib/app/app.db
  lifeboat drill --source postgres://app@db1:5432/shop --scratch-db postgres://postgres:pw@127.0.0.1:5432/
  lifeboat drill --sample 200                  200 random files of the newest snapshot
  lifeboat drill 4f2a91c0 --sample 20 --seed monday --keep-scratch
  lifeboat status                              when was each series last proven restorable

Scheduled (crontab: every Sunday at 04:00, a full drill; every night a sample):
  0 4 * * 0  lifeboat -r /srv/backup --password-file /etc/lifeboat.pw drill -q
  30 4 * * *  lifeboat -r /srv/backup --password-file /etc/lifeboat.pw drill --sample 100 -q
See docs/drills.md.`,
    )
    .action(async (ref: string, flags: DrillFlags, cmd: Command) => {
      const c = ctx(cmd);
      let sample: number | undefined;
      if (flags.sample !== undefined) {
        if (!/^\d+$/.test(flags.sample) || Number(flags.sample) < 1)
          throw new LifeboatError(
            "USAGE",
            `--sample ${JSON.stringify(flags.sample)} is not a number of files`,
            "give a whole number of at least 1, e.g. --sample 50",
          );
        sample = Number(flags.sample);
      }
      if (flags.seed !== undefined && sample === undefined)
        throw new LifeboatError("USAGE", "--seed goes with --sample");
      if (flags.source !== undefined && ref !== "latest")
        throw new LifeboatError("USAGE", "give a snapshot or --source, not both");
      const source =
        flags.source !== undefined ? (parseDatabaseArg(flags.source)?.name ?? flags.source) : undefined;
      // Scratch servers by engine: the environment's, then --scratch-db for its own engine.
      const scratchDb: Partial<Record<DumpEngine, string>> = {};
      if (process.env.LIFEBOAT_DRILL_PG) scratchDb.postgres = process.env.LIFEBOAT_DRILL_PG;
      if (process.env.LIFEBOAT_DRILL_MYSQL) scratchDb.mysql = process.env.LIFEBOAT_DRILL_MYSQL;
      if (flags.scratchDb !== undefined)
        scratchDb[parseScratchServer(flags.scratchDb).engine] = flags.scratchDb;
      const repo = flags.account ? await openAccountRepo(c, flags.account, flags.fleet) : await c.openRepo();
      let r: DrillResult;
      try {
        if (flags.account) ref = await drillRef(repo, flags.account, flags.fleet);
        r = await drill(repo, {
          snapshot: ref,
          ...(source !== undefined ? { source } : {}),
          filter: { host: flags.host, tags: flags.tag, paths: flags.path },
          ...(sample !== undefined ? { sample } : {}),
          ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
          keepScratch: flags.keepScratch === true,
          scratchDb,
          onProgress: c.out.progress("drill"),
        });
      } finally {
        await repo.close();
      }
      await c.notify({
        event: "drill",
        ok: r.record.ok,
        command: "drill",
        message: `drill of snapshot ${r.record.snapshot.slice(0, 8)} (${r.record.paths.join(" ")}): ${r.record.ok ? "passed" : "FAILED"}, ${r.record.files} files in ${r.record.seconds.toFixed(1)}s`,
        snapshot: r.record.snapshot,
        reasons: r.record.failures.slice(0, 10).map((f) => `${f.path}: ${f.reason}`),
      });
      report(c, r);
    });
}

function report(c: CliContext, r: DrillResult): void {
  const d = r.record;
  const what = `snapshot ${d.snapshot.slice(0, 8)} of ${d.paths.join(" ")} (${d.host}, ${d.snapshotTime ?? "?"})`;
  const rate = d.seconds > 0 ? ` (${(d.bytes / 1e6 / d.seconds).toFixed(1)} MB/s)` : "";
  const scope = d.sample ? `${d.sample.count} of ${d.sample.of} files (seed ${d.sample.seed})` : "every file";
  if (d.databases !== undefined) {
    c.out.info(`drill of ${what}: restore into scratch databases`);
    c.out.info(
      `restored ${d.databases.length} database${d.databases.length === 1 ? "" : "s"} from ${bytes(d.bytes)} of dump in ${d.seconds.toFixed(2)}s${rate}`,
    );
    for (const db of d.databases)
      c.out.info(
        `  ${db.name} -> ${db.scratch}: ${db.tables} tables, ${db.rows} rows, ${db.seconds.toFixed(2)}s, check ${db.check}`,
      );
  } else {
    c.out.info(`drill of ${what}: ${scope}`);
    c.out.info(
      `restored and verified ${d.files} file${d.files === 1 ? "" : "s"}, ${bytes(d.bytes)} in ${d.seconds.toFixed(2)}s${rate}`,
    );
  }
  if (d.engineCheck !== undefined) c.out.info(`database check: ${d.engineCheck}`);
  for (const w of r.warnings) c.out.warn(w);
  if (r.scratch)
    c.out.info(
      `${d.databases !== undefined ? "scratch database kept" : "scratch folder kept"}: ${r.scratch}`,
    );
  for (const f of d.failures.slice(1)) c.out.warn(`failed: ${f.path}: ${f.reason}`);
  if (d.failed > d.failures.length) c.out.warn(`... and ${d.failed - d.failures.length} more`);
  if (r.id) c.out.info(`${d.ok ? "passed" : "FAILED"}; recorded as drill ${r.id.slice(0, 8)}`);
  c.out.emit({
    message_type: "summary",
    action: "drill",
    drill_id: r.id ?? null,
    scratch: r.scratch ?? null,
    records_removed: r.recordsRemoved,
    mb_per_second: d.seconds > 0 ? Math.round((d.bytes / 1e6 / d.seconds) * 100) / 100 : null,
    ...d,
    /** Every failure with a code (`failures` is the record's first 100, as stored). */
    errors: r.errors,
  });
  if (d.ok) return;
  const failures = r.errors.filter((e) => e.code !== "ENGINE_CHECK");
  const first = failures[0];
  const hint = `the drill is recorded (\`lifeboat status\`); run \`lifeboat check --read-data\` to see everything affected`;
  if (first) {
    // The scratch folder could not be written (disk full, read-only): not the backup's fault.
    const local = failures.find((e) => e.code === "UNWRITABLE");
    if (local) {
      throw new LifeboatError(
        "STORAGE_ERROR",
        `drill could not write its scratch folder: ${formatItemError(local)}`,
        "set TMPDIR to a folder with room for the restore, or use --sample N",
      );
    }
    const more = failures.length > 1 ? ` (and ${failures.length - 1} more)` : "";
    throw new CorruptionError(`drill failed: ${first.path}`, `${first.message}${more}`, [], hint);
  }
  throw new CorruptionError(
    `drill failed: ${d.paths.join(" ")}`,
    `database check: ${d.engineCheck}`,
    [],
    d.databases !== undefined
      ? "the dump restored without error but the restored database does not match what was backed up: check the live database and its backups"
      : "the file restored exactly as it was backed up, so the database was already damaged (or inconsistent) when it was backed up: check the live database, then back it up again",
  );
}
