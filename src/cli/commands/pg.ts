import { promises as fs } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { ExitCode, isLifeboatError, LifeboatError } from "../../core/errors.js";
import { Repository } from "../../repo/repository.js";
import { baseBackup, preflightBaseBackup } from "../../sources/pg-pitr/base-backup.js";
import { checkWal, expireWal } from "../../sources/pg-pitr/check.js";
import { pitrRestore } from "../../sources/pg-pitr/restore.js";
import { DEFAULT_CLUSTER, listWal, walFetch, walPush } from "../../sources/pg-pitr/wal-archive.js";
import { parsePostgresUrl } from "../../sources/postgres.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";
import { flushOutput } from "../shell/output.js";

/** wal-fetch exits with this when it could not fetch (not "not archived"): PostgreSQL treats an
 * exit code above 125 as fatal and stops recovery, instead of taking the file as missing and
 * ending recovery early. */
const FETCH_FAILED = 126;

/** Opens the repository without reading its index (wal-push/wal-fetch run once per file). */
async function openLight(c: CliContext): Promise<Repository> {
  const loc = c.repoLocation();
  const backend = await c.backend(loc.url);
  if (!(await Repository.exists(backend))) throw Repository.notFound(backend);
  const repo = await Repository.open(backend, await c.password(), { loadIndex: false });
  await c.applyRetentionOption(repo);
  return repo;
}

/** A word for /bin/sh, and `%` doubled for PostgreSQL's own %-escapes in restore_command. */
function shellWord(s: string): string {
  const q = /^[A-Za-z0-9_/.:=@+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
  return q.replace(/%/g, "%%");
}

const isUrl = (s: string) => /^[a-z][a-z0-9+.-]*:/i.test(s) && !/^[a-z]:[\\/]/i.test(s);

/**
 * The restore_command for a restored data folder: this same program with the same repository
 * and password source. A password given only in LIFEBOAT_PASSWORD is written to a file inside
 * the data folder (mode 0600), since PostgreSQL does not pass our environment on.
 */
async function restoreCommandFor(
  c: CliContext,
  dir: string,
  cluster: string,
): Promise<{ command: string; passwordFile?: string }> {
  const args = [process.execPath, path.resolve(process.argv[1]!)];
  const repo = c.repoLocation().url;
  args.push("-r", isUrl(repo) ? repo : path.resolve(repo));
  let passwordFile: string | undefined;
  const env = process.env;
  if (c.opts.passwordCommand) args.push("--password-command", c.opts.passwordCommand);
  else if (c.opts.passwordFile) args.push("--password-file", path.resolve(c.opts.passwordFile));
  else if (env.LIFEBOAT_PASSWORD_COMMAND) args.push("--password-command", env.LIFEBOAT_PASSWORD_COMMAND);
  else if (!env.LIFEBOAT_PASSWORD && env.LIFEBOAT_PASSWORD_FILE)
    args.push("--password-file", path.resolve(env.LIFEBOAT_PASSWORD_FILE));
  else {
    passwordFile = path.join(dir, "lifeboat-restore.password");
    args.push("--password-file", passwordFile);
  }
  args.push("pg", "wal-fetch");
  if (cluster !== DEFAULT_CLUSTER) args.push("--cluster", cluster);
  return { command: `${args.map(shellWord).join(" ")} %f %p`, ...(passwordFile ? { passwordFile } : {}) };
}

export function registerPg(program: Command, ctx: (c: Command) => CliContext): void {
  const pg = program
    .command("pg")
    .description("PostgreSQL point-in-time recovery: WAL archive, base backups, restore to a moment")
    .addHelpText(
      "after",
      `
Setup (postgresql.conf; see docs/pitr.md):
  wal_level = replica
  archive_mode = on
  archive_command = 'lifeboat -r /srv/repo --password-file /etc/lifeboat/pw pg wal-push %p'

Then:
  lifeboat pg base-backup --dsn postgres://postgres@127.0.0.1:5432   nightly
  lifeboat pg check                                                   WAL chain complete?
  lifeboat pg restore --time '2026-03-01 12:30:00+00' --target-dir /var/lib/postgresql/restored`,
    );

  pg.command("wal-push")
    .description("archive_command: store one WAL segment (or .history/.backup file) in the repository")
    .argument("<path>", "the file (%p)")
    .option("--cluster <name>", "archive name, when several servers share a repository", DEFAULT_CLUSTER)
    .addHelpText(
      "after",
      `
Pushing a file already archived with the same bytes succeeds; a different file under an
archived name fails (exit 1), as PostgreSQL expects. Any failure exits non-zero, so the server
keeps the file and retries.

Example (postgresql.conf):
  archive_command = 'lifeboat -r /srv/repo --password-file /etc/lifeboat/pw pg wal-push %p'`,
    )
    .action(async (file: string, flags: { cluster: string }, cmd: Command) => {
      const c = ctx(cmd);
      const repo = await openLight(c);
      try {
        const r = await walPush(repo, file, { cluster: flags.cluster });
        c.out.emit({ message_type: "summary", action: "wal-push", ...r });
        c.out.debug(`${r.name}: ${r.status} (${bytes(r.size)}, ${bytes(r.bytesStored)} stored, ${r.ms} ms)`);
      } finally {
        await repo.close();
      }
    });

  pg.command("wal-fetch")
    .description("restore_command: write an archived file to a path; exit 1 when it is not archived")
    .argument("<name>", "the file name (%f)")
    .argument("<path>", "where to write it (%p)")
    .option("--cluster <name>", "archive name", DEFAULT_CLUSTER)
    .addHelpText(
      "after",
      `
Exit codes: 0 written, 1 not archived (quietly: PostgreSQL asks for files that do not exist as
part of normal recovery), ${FETCH_FAILED} could not fetch (repository unreachable, wrong password,
damaged data): PostgreSQL stops recovery rather than ending it early.`,
    )
    .action(async (name: string, dest: string, flags: { cluster: string }, cmd: Command) => {
      const c = ctx(cmd);
      try {
        const repo = await openLight(c);
        try {
          const r = await walFetch(repo, name, dest, { cluster: flags.cluster });
          if (!r.found) {
            process.exitCode = ExitCode.failure;
            return;
          }
          c.out.emit({ message_type: "summary", action: "wal-fetch", name, size: r.size });
        } finally {
          await repo.close();
        }
      } catch (e) {
        const err = isLifeboatError(e)
          ? e
          : new LifeboatError("STORAGE_ERROR", String((e as Error)?.message ?? e));
        flushOutput();
        process.stderr.write(
          `error: wal-fetch ${name}: ${err.message}${err.hint ? `\n  hint: ${err.hint}` : ""}\n`,
        );
        process.exitCode = FETCH_FAILED;
      }
    });

  pg.command("wal-list")
    .description("list the archived WAL files")
    .option("--cluster <name>", "archive name", DEFAULT_CLUSTER)
    .action(async (flags: { cluster: string }, cmd: Command) => {
      const c = ctx(cmd);
      const repo = await openLight(c);
      try {
        const all = await listWal(repo, flags.cluster);
        for (const w of all) {
          const { name, kind, timeline, size, time, host } = w.record;
          c.out.emit({ message_type: "wal", name, kind, timeline, size, time, host, object: w.object });
          c.out.result(`${name.padEnd(40)} ${bytes(size).padStart(10)}  ${time}  ${host}`);
        }
      } finally {
        await repo.close();
      }
    });

  pg.command("base-backup")
    .description("stream pg_basebackup (tar, WAL from the archive) into a snapshot")
    .requiredOption("--dsn <url>", "postgres://USER[:PW]@HOST:PORT (a user with REPLICATION)")
    .option("--cluster <name>", "archive name", DEFAULT_CLUSTER)
    .option("--tag <tag...>", "tags for the snapshot")
    .addHelpText(
      "after",
      `
Runs pg_basebackup -D - -Ft -X none --checkpoint=fast; nothing is written to local disk. The
server waits until the WAL the backup needs is archived, so the server must archive with
\`lifeboat pg wal-push\` first (archive_mode = on).

Example:
  lifeboat pg base-backup --dsn postgres://postgres@127.0.0.1:5432 --tag nightly`,
    )
    .action(async (flags: { dsn: string; cluster: string; tag?: string[] }, cmd: Command) => {
      const c = ctx(cmd);
      const target = parsePostgresUrl(flags.dsn);
      if (!target) throw new LifeboatError("USAGE", "--dsn takes a postgres:// URL");
      const facts = await preflightBaseBackup(target);
      const repo = await c.openRepo();
      try {
        const r = await baseBackup(repo, target, facts, {
          cluster: flags.cluster,
          ...(flags.tag ? { tags: flags.tag } : {}),
        });
        const meta = r.snapshot.meta ?? {};
        c.out.emit({
          message_type: "summary",
          action: "pg-base-backup",
          snapshot_id: r.snapshotId,
          bytes: r.summary.bytes,
          bytes_added: r.summary.bytesAdded,
          bytes_stored: r.summary.bytesStored,
          duration_ms: r.summary.durationMs,
          meta,
        });
        c.out.info(
          `base backup ${r.snapshotId.slice(0, 8)}: ${bytes(r.summary.bytes)} (${bytes(r.summary.bytesStored)} stored) in ${(r.summary.durationMs / 1000).toFixed(1)}s, WAL from ${String(meta.startWalFile)} (timeline ${String(meta.timeline)})`,
        );
      } finally {
        await repo.close();
      }
    });

  pg.command("restore")
    .description("unpack the newest base backup before a time and set up recovery to that time")
    .requiredOption("--target-dir <dir>", "new (or empty) data folder")
    .option("--time <time>", "recovery target, with a time zone (default: all archived WAL)")
    .option("--base <snapshot>", "base backup to start from (default: newest finished before --time)")
    .option("--cluster <name>", "archive name", DEFAULT_CLUSTER)
    .option("--restore-command <cmd>", "restore_command to write instead of this program's wal-fetch")
    .addHelpText(
      "after",
      `
Then start PostgreSQL on the folder (as its owner); it fetches WAL with \`lifeboat pg wal-fetch\`,
stops at the target time and promotes:
  pg_ctl -D DIR -l DIR/recovery.log start

Example:
  lifeboat pg restore --time '2026-03-01 12:30:00+00' --target-dir /var/lib/postgresql/15/restored`,
    )
    .action(
      async (
        flags: { targetDir: string; time?: string; base?: string; cluster: string; restoreCommand?: string },
        cmd: Command,
      ) => {
        const c = ctx(cmd);
        const repo = await c.openRepo();
        try {
          const dir = path.resolve(flags.targetDir);
          const rc = flags.restoreCommand
            ? { command: flags.restoreCommand }
            : await restoreCommandFor(c, dir, flags.cluster);
          const r = await pitrRestore(repo, {
            targetDir: dir,
            ...(flags.time ? { time: flags.time } : {}),
            ...(flags.base ? { base: flags.base } : {}),
            cluster: flags.cluster,
            restoreCommand: rc.command,
          });
          if (rc.passwordFile) {
            await fs.writeFile(rc.passwordFile, `${await c.password()}\n`, { mode: 0o600, flag: "wx" });
            if (process.getuid?.() === 0) {
              const st = await fs.stat(path.join(dir, "PG_VERSION"));
              await fs.chown(rc.passwordFile, st.uid, st.gid);
            }
          }
          c.out.emit({
            message_type: "summary",
            action: "pg-restore",
            ...r,
            password_file: rc.passwordFile ?? null,
          });
          c.out.info(
            `restored base backup ${r.snapshot.slice(0, 8)} (${r.baseTime}) into ${r.targetDir}: ${r.files} files, ${bytes(r.bytes)} in ${(r.durationMs / 1000).toFixed(1)}s; recovery target: ${r.target}`,
          );
          c.out.info(
            `start it with: pg_ctl -D ${r.targetDir} -l ${path.join(r.targetDir, "recovery.log")} start`,
          );
          if (rc.passwordFile)
            c.out.info(
              `the repository password for restore_command is in ${rc.passwordFile}: delete it once recovery has finished`,
            );
        } finally {
          await repo.close();
        }
      },
    );

  pg.command("wal-expire")
    .description("delete archived WAL that no base backup needs (older than the oldest one kept)")
    .option("--cluster <name>", "archive name", DEFAULT_CLUSTER)
    .option("--dry-run", "only list what would be deleted")
    .addHelpText(
      "after",
      `
Run after \`lifeboat forget\` removed old base backups: WAL before the first segment of the
oldest remaining base backup cannot be used by any restore. History files are kept.

Example:
  lifeboat forget --keep-daily 7 --tag nightly && lifeboat pg wal-expire`,
    )
    .action(async (flags: { cluster: string; dryRun?: boolean }, cmd: Command) => {
      const c = ctx(cmd);
      const repo = await openLight(c);
      try {
        const r = await expireWal(repo, flags.cluster, { dryRun: flags.dryRun === true });
        c.out.emit({
          message_type: "summary",
          action: "pg-wal-expire",
          dry_run: flags.dryRun === true,
          ...r,
        });
        if (!r.keepFrom) c.out.info("no base backup: nothing expired");
        else
          c.out.info(
            `${flags.dryRun ? "would delete" : "deleted"} ${r.expired.length} WAL file(s) before ${r.keepFrom}; ${r.kept} kept`,
          );
        for (const n of r.expired) c.out.debug(n);
      } finally {
        await repo.close();
      }
    });

  pg.command("check")
    .description("is the WAL chain from the newest base backup complete (no missing segment)?")
    .option("--cluster <name>", "archive name", DEFAULT_CLUSTER)
    .action(async (flags: { cluster: string }, cmd: Command) => {
      const c = ctx(cmd);
      const repo = await openLight(c);
      try {
        const r = await checkWal(repo, flags.cluster);
        c.out.emit({ message_type: "summary", action: "pg-check", ...r });
        if (r.base)
          c.out.info(
            `base backup ${r.base.snapshot.slice(0, 8)} (${r.base.time}) from ${r.base.startWalFile}: ${r.segments} segments archived, newest ${r.newest ?? "none"}`,
          );
        for (const g of r.gaps) c.out.warn(`missing WAL segment ${g}`);
        for (const p of r.problems) c.out.warn(p);
        if (!r.ok) {
          throw new LifeboatError(
            "NOT_FOUND",
            r.gaps.length > 0
              ? `the WAL chain has ${r.gaps.length} gap(s): missing ${r.gaps.join(", ")}; recovery cannot go past the first one`
              : r.problems.join("; "),
            "check the server log for archive_command failures, and take a new base backup (`lifeboat pg base-backup`)",
          );
        }
        c.out.info("WAL chain complete");
      } finally {
        await repo.close();
      }
    });
}
