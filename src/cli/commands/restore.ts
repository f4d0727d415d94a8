import type { Command } from "commander";
import { ExitCode, formatItemError, isLifeboatError, LifeboatError } from "../../core/errors.js";
import { restore } from "../../ops/restore/restore.js";
import { findSnapshot } from "../../repo/find-snapshot.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { parseDatabaseArg, restoreDatabase } from "../../sources/database.js";
import { restoreSqlite } from "../../sources/sqlite.js";
import { planSqliteRestore, restoreReplica } from "../../sources/sqlite-replicate/restore.js";
import { anySegments } from "../../sources/sqlite-replicate/segments.js";
import type { CliContext } from "../shell/context.js";
import { bytes, jsonItemErrors } from "../shell/format.js";
import { collectOldGenerationSooner } from "../shell/heap-flags.js";
import { restoreAccountCli } from "./account-flags.js";
import { openAccountRepo } from "./fleet-repos.js";

const collect = (v: string, prev: string[]) => [...prev, v];

interface RestoreFlags {
  target?: string;
  include: string[];
  exclude: string[];
  verify?: boolean;
  host?: string;
  tag: string[];
  path: string[];
  targetDb?: string;
  database?: string;
  owner?: boolean;
  time?: string;
  xattrs: boolean;
  account?: string;
  fleet?: string;
  intoSharedDb?: boolean;
}

export function registerRestore(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("restore")
    .description("restore a snapshot, or a path inside it, into a folder (or a database)")
    .argument(
      "[snapshot]",
      "SNAPSHOT or SNAPSHOT:PATH (SNAPSHOT is an id, a unique prefix, or `latest`), or a database source (sqlite:PATH, postgres://..., mysql://...) for its latest snapshot",
    )
    .option(
      "-t, --target <dir>",
      "folder to restore into (created if missing); for an SQLite snapshot, the database file",
    )
    .option(
      "-i, --include <pattern>",
      "restore only paths matching this gitignore-style pattern (repeatable)",
      collect,
      [],
    )
    .option(
      "-e, --exclude <pattern>",
      "skip paths matching this gitignore-style pattern (repeatable)",
      collect,
      [],
    )
    .option(
      "--target-db <url>",
      "for a PostgreSQL or MariaDB/MySQL snapshot: the NEW database to create and restore into (postgres://.../NEWDB, mysql://.../NEWDB)",
    )
    .option("--database <name>", "with --target-db, from a snapshot of several databases (--all): which one")
    .option(
      "--no-owner",
      "with --target-db postgres://: do not restore ownership and privileges (pg_restore --no-owner --no-acl)",
    )
    .option(
      "--time <time>",
      "sqlite:PATH only: the database as it was at this time (ISO-8601, e.g. 2026-11-26T09:15:00Z), from `lifeboat replicate` segments or snapshots",
    )
    .option(
      "--account <id>",
      "a fleet account: its newest snapshot (or the one at --time), no snapshot argument; a mail or DAV account without --target goes back into the account on its server",
    )
    .option("--fleet <name>", "with --account: of this fleet")
    .option(
      "--into-shared-db",
      "with --account, for a rows account: put its rows back into the shared tables, for that account alone",
    )
    .option("--verify", "read every restored file back and compare it with the snapshot")
    .option(
      "--no-xattrs",
      "do not restore extended attributes (as another user than root, trusted. and security. ones are always left out)",
    )
    .option("--host <name>", "with `latest`: the newest snapshot of this host")
    .option("--tag <tag>", "with `latest`: the newest snapshot with this tag", collect, [])
    .option("--path <path>", "with `latest`: the newest snapshot of these paths", collect, [])
    .addHelpText(
      "after",
      `
Restore is resumable: files already in the target with the right content are left as they
are, so running the same command again after an interruption finishes the job. Nothing is
ever written outside --target, whatever names or symlinks the snapshot holds.

SQLite snapshots restore to a file: written under a temporary name, checked with PRAGMA
integrity_check and the row counts recorded at backup time, then renamed into place.
Database dumps restore with --target-db into a database that must not exist yet: it is
created, the dump is streamed into pg_restore (one transaction) or the mariadb client, and if
anything fails the new database is dropped and the error says so. With --target DIR instead,
the dump files themselves are restored. See docs/databases.md.

For a database replicated with \`lifeboat replicate\`, \`restore sqlite:PATH\` restores the
newest state: the generation's full snapshot plus its WAL segments; --time T restores the state
as of T, to the granularity of the replication interval (docs/replication.md).

Examples:
  lifeboat restore latest --target /tmp/restore
  lifeboat restore 4f2a91c0:/home/ann/Documents --target ~/Documents-restored --verify
  lifeboat restore latest --target /tmp/r --include '*.pdf'
  lifeboat restore sqlite:/var/lib/app/app.db --target /tmp/app-restored.db
  lifeboat restore sqlite:/var/lib/app/app.db --time 2026-11-26T09:15:00Z --target /tmp/app.db
  lifeboat restore 7c1e22ab --target /tmp/app.db     # an SQLite snapshot by id
  lifeboat restore postgres://backup@db1:5432/shop --target-db postgres://postgres@127.0.0.1:5432/shop_copy
  lifeboat restore 'postgres://postgres@db1:5432/*' --database shop --no-owner --target-db postgres://postgres@db2/shop
  lifeboat restore mysql://root@127.0.0.1:3306/wiki --target-db mysql://root:pw@127.0.0.1:3306/wiki_restored
  lifeboat restore --account ann --target /tmp/ann            a fleet account's newest snapshot
  lifeboat restore --account ann --time 2026-11-26T00:00:00Z --target /tmp/ann
  lifeboat restore --account ann --into-shared-db             its rows back into the shared tables
  lifeboat --config fleet.json restore --account bob          a mail/DAV account: missing messages
                                                              or contacts back into the account`,
    )
    .action(async (spec: string | undefined, flags: RestoreFlags, cmd: Command) => {
      const c = ctx(cmd);
      collectOldGenerationSooner();
      if (flags.account) {
        if (spec !== undefined)
          throw new LifeboatError(
            "USAGE",
            "give a snapshot or --account, not both",
            "restore --account ID picks the account's snapshot itself",
          );
        const repo = await openAccountRepo(c, flags.account, flags.fleet);
        try {
          await restoreAccountCli(c, repo, { ...flags, account: flags.account });
        } finally {
          await repo.close();
        }
        return;
      }
      if (spec === undefined)
        throw new LifeboatError(
          "USAGE",
          "restore needs a snapshot (or --account ID)",
          "e.g. lifeboat restore latest --target /tmp/restore",
        );
      const db = parseDatabaseArg(spec);
      const colon = db ? -1 : spec.indexOf(":");
      const ref = db ? "latest" : colon >= 0 ? spec.slice(0, colon) : spec;
      const subpath = colon >= 0 ? spec.slice(colon + 1) || "/" : "/";
      if (!flags.target && !flags.targetDb)
        throw new LifeboatError(
          "USAGE",
          "restore needs --target DIR (or --target-db URL for a database dump)",
        );
      if (flags.target && flags.targetDb)
        throw new LifeboatError("USAGE", "give --target or --target-db, not both");
      const targetDb = flags.targetDb ? parseDatabaseArg(flags.targetDb) : undefined;
      if (flags.targetDb && (!targetDb || targetDb.engine === "sqlite"))
        throw new LifeboatError(
          "USAGE",
          "--target-db takes a postgres:// or mysql:// URL",
          "restore SQLite snapshots with --target FILE",
        );
      let time: Date | undefined;
      if (flags.time !== undefined) {
        if (db?.engine !== "sqlite")
          throw new LifeboatError(
            "USAGE",
            "--time goes with sqlite:PATH (a replicated or backed-up SQLite database)",
          );
        time = new Date(flags.time);
        if (Number.isNaN(time.getTime()))
          throw new LifeboatError(
            "USAGE",
            `--time ${JSON.stringify(flags.time)} is not a time like 2026-11-26T09:15:00Z`,
          );
      }
      // A restore of files (not of a database) starts its worker while the index is read.
      const repo = await c.openRepo({ warmRestorer: !db && !targetDb });
      try {
        if (db?.engine === "sqlite" && flags.target && subpath === "/") {
          if (time || (await anySegments(repo))) {
            await restoreReplicaCli(c, repo, db.name, time, flags);
            return;
          }
        }
        const snap = await findSnapshot(repo, ref, {
          host: flags.host,
          tags: flags.tag,
          paths: db ? [db.name] : flags.path,
        });
        if (targetDb) {
          c.out.info(
            `restoring ${snap.source ?? "file"} snapshot ${snap.id.slice(0, 8)} of ${snap.paths.join(" ")} (${snap.time}) into ${targetDb.name}`,
          );
          const started = Date.now();
          const r = await restoreDatabase(repo, snap, targetDb, {
            ...(flags.database !== undefined ? { database: flags.database } : {}),
            noOwner: flags.owner === false,
          });
          const secs = (Date.now() - started) / 1000;
          c.out.info(
            `restored database ${r.database} (${r.tables} tables) from ${bytes(r.bytes)} of dump in ${secs.toFixed(1)}s`,
          );
          c.out.emit({
            message_type: "summary",
            snapshot_id: snap.id,
            source: snap.source,
            database: r.database,
            from_database: r.from,
            tables: r.tables,
            bytes_read: r.bytes,
            seconds: secs,
          });
          return;
        }
        if (!flags.target) throw new LifeboatError("USAGE", "restore needs --target DIR");
        if (snap.source === "sqlite" && subpath === "/") {
          await restoreSqliteCli(c, repo, snap, flags.target);
          return;
        }
        c.out.info(
          `restoring snapshot ${snap.id.slice(0, 8)} of ${snap.paths.join(" ")} (${snap.time}) to ${flags.target}`,
        );
        const started = Date.now();
        const r = await restore(repo, snap, {
          target: flags.target,
          subpath,
          include: flags.include,
          exclude: flags.exclude,
          verify: flags.verify ?? false,
          xattrs: flags.xattrs,
          onProgress: c.out.progress("restore"),
        });
        const secs = (Date.now() - started) / 1000;
        for (const e of r.errors) c.out.warn(`failed: ${formatItemError(e)}`);
        for (const w of r.warnings) c.out.warn(w);
        c.out.info(
          `restored ${r.files} files (${r.filesSkipped} already in place), ${r.dirs} folders, ${r.symlinks} symlinks${r.special > 0 ? `, ${r.special} FIFOs and device nodes` : ""}, ${bytes(r.bytes)} written in ${secs.toFixed(1)}s`,
        );
        if (flags.verify) c.out.info(`verified ${r.verified} files against the snapshot`);
        c.out.emit({
          message_type: "summary",
          snapshot_id: snap.id,
          files_restored: r.files,
          files_skipped: r.filesSkipped,
          dirs: r.dirs,
          symlinks: r.symlinks,
          special: r.special,
          bytes_written: r.bytes,
          files_verified: r.verified,
          errors: jsonItemErrors(r.errors),
          warnings: r.warnings,
          seconds: secs,
        });
        if (r.errors.length > 0) {
          // Damaged data or a crafted snapshot is exit 14; anything else (the target) is 1.
          process.exitCode = r.errors.some((e) => ["DAMAGED", "UNSAFE_NAME", "MISMATCH"].includes(e.code))
            ? ExitCode.corruption
            : ExitCode.failure;
          c.out.warn(`${r.errors.length} path(s) could not be restored; everything else was restored`);
        }
      } finally {
        await repo.close();
      }
    });
}

async function restoreSqliteCli(
  c: CliContext,
  repo: Repository,
  snap: SnapshotWithId,
  target: string,
): Promise<void> {
  c.out.info(`restoring SQLite snapshot ${snap.id.slice(0, 8)} of ${snap.paths.join(" ")} (${snap.time})`);
  const started = Date.now();
  const r = await restoreSqlite(repo, snap, target);
  reportSqliteRestore(c, snap.id, r, started, {});
}

/** The lines a finished SQLite restore prints (plain and replicated alike). */
function reportSqliteRestore(
  c: CliContext,
  snapshotId: string,
  r: { file: string; bytes: number; integrity: string; tables: Record<string, number> },
  started: number,
  extra: Record<string, unknown>,
): void {
  const secs = (Date.now() - started) / 1000;
  const rows = Object.values(r.tables).reduce((a, b) => a + b, 0);
  c.out.info(
    `restored ${r.file}: ${bytes(r.bytes)}, integrity_check ok, ${Object.keys(r.tables).length} tables, ${rows} rows, in ${secs.toFixed(1)}s`,
  );
  c.out.emit({
    message_type: "summary",
    snapshot_id: snapshotId,
    source: "sqlite",
    file: r.file,
    ...extra,
    bytes_written: r.bytes,
    integrity_check: r.integrity,
    tables: r.tables,
    seconds: secs,
  });
}

/** `restore sqlite:PATH [--time T]` when replication segments exist (or a time is asked for). */
async function restoreReplicaCli(
  c: CliContext,
  repo: Repository,
  source: string,
  time: Date | undefined,
  flags: RestoreFlags,
): Promise<void> {
  // replicate replaces segments by merged ones as they age: one that vanished between the plan
  // and its read was replaced, and a new plan uses what replaced it.
  for (let attempt = 1; ; attempt++) {
    const plan = await planSqliteRestore(repo, source, time, { host: flags.host, tags: flags.tag });
    if (!plan) {
      throw new LifeboatError(
        "SNAPSHOT_NOT_FOUND",
        `no snapshot of ${source}${time ? ` at or before ${time.toISOString()}` : ""}`,
        "see `lifeboat snapshots --path` and the replication's generations (docs/replication.md)",
      );
    }
    const snap = plan.snapshot;
    if (plan.generation === undefined) {
      await restoreSqliteCli(c, repo, snap, flags.target!);
      return;
    }
    const levels = new Map<number, number>();
    for (const s of plan.segments) {
      const l = s.kind === "levels" ? s.info.level : 0;
      levels.set(l, (levels.get(l) ?? 0) + 1);
    }
    const byLevel = [...levels]
      .sort((a, b) => b[0] - a[0])
      .map(([l, n]) => `${n} of level ${l}`)
      .join(", ");
    c.out.info(
      `restoring ${source} as of ${plan.stateTime}: snapshot ${snap.id.slice(0, 8)} (${snap.time}) + ${plan.segments.length} WAL segments${byLevel ? ` (${byLevel})` : ""} of generation ${plan.generation}`,
    );
    const started = Date.now();
    let r: Awaited<ReturnType<typeof restoreReplica>>;
    try {
      r = await restoreReplica(repo, plan, flags.target!);
    } catch (e) {
      if (attempt < 3 && isLifeboatError(e) && e.code === "NOT_FOUND") {
        c.out.info("a segment was replaced meanwhile: planning again");
        continue;
      }
      throw e;
    }
    reportSqliteRestore(c, snap.id, r, started, {
      generation: plan.generation,
      segments_applied: r.segments,
      segments_by_level: Object.fromEntries(levels),
      state_time: plan.stateTime,
      requested_time: time?.toISOString() ?? null,
    });
    return;
  }
}
