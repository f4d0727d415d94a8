import { existsSync, promises as fs } from "node:fs";
import type { Command } from "commander";
import { backup, backupStream } from "../../app/backup.js";
import { createPasswordFile, defaultLocations } from "../../app/default-repo.js";
import {
  backupFrozen,
  checkFsSnapshot,
  type FrozenBackupResult,
  fsSnapshotSpec,
  lifeboatCacheDir,
  lifeboatStateDir,
} from "../../app/fs-snapshot.js";
import { openBackend } from "../../backend/open.js";
import { ExitCode, formatItemError, LifeboatError } from "../../core/errors.js";
import { displayName } from "../../core/names.js";
import { Repository } from "../../repo/repository.js";
import type { BackupResult } from "../../snapshot/commit.js";
import { takeSnapshot } from "../../snapshot/take.js";
import {
  type DatabaseArg,
  databaseSource,
  parseDatabaseArg,
  preflightDatabase,
} from "../../sources/database.js";
import { checkSourcePaths } from "../../sources/files/files-source.js";
import { reportAnomalies } from "../shell/anomaly-report.js";
import type { CliContext } from "../shell/context.js";
import { bytes, jsonItemErrors } from "../shell/format.js";

interface BackupFlags {
  exclude: string[];
  excludeFile: string[];
  oneFileSystem?: boolean;
  tag: string[];
  host?: string;
  parent?: string;
  force?: boolean;
  stdin?: boolean;
  stdinFilename: string;
  all?: boolean;
  xattrs: boolean;
  fsSnapshot?: string;
  fsSnapshotCommand?: string;
  fsSnapshotCleanup?: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerBackup(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("backup")
    .description("back up files and folders, stdin, or a live database into a new snapshot")
    .argument(
      "[paths...]",
      "files and folders to back up, or one database: sqlite:PATH, postgres://..., mysql://...",
    )
    .option(
      "-e, --exclude <pattern>",
      "skip paths matching a gitignore-style pattern (repeatable)",
      collect,
      [],
    )
    .option(
      "--exclude-file <file>",
      "read exclude patterns from a file, gitignore syntax (repeatable)",
      collect,
      [],
    )
    .option("-x, --one-file-system", "do not cross into other mounted filesystems")
    .option(
      "--no-xattrs",
      "do not back up extended attributes (user., trusted. and security. ones: ACLs, SELinux labels, file capabilities)",
    )
    .option("--tag <tag>", "add a tag to the snapshot (repeatable)", collect, [])
    .option("--host <name>", "host name recorded in the snapshot (default: this machine's)")
    .option(
      "--parent <snapshot>",
      "compare against this snapshot instead of the latest of the same host and paths",
    )
    .option("-f, --force", "read every file again, even those unchanged since the parent snapshot")
    .option("--stdin", "back up what arrives on standard input as one file")
    .option("--stdin-filename <name>", "file name for --stdin", "stdin")
    .option("--all", "postgres:// only: every database of the server, plus roles and tablespaces")
    .option(
      "--fs-snapshot <kind>",
      "read the files from a read-only file-system snapshot made for this backup, then removed: btrfs",
    )
    .option(
      "--fs-snapshot-command <cmd>",
      "make a snapshot with your own command (LVM, ZFS, ...): it prints the path to read (env LIFEBOAT_FS_SNAPSHOT_SOURCE, _NAME)",
    )
    .option(
      "--fs-snapshot-cleanup <cmd>",
      "remove the snapshot --fs-snapshot-command made (env as above, plus _PATH)",
    )
    .addHelpText(
      "after",
      `
Files whose size, mtime, ctime and inode match the parent snapshot are not read again.
Every entry of every folder is kept: names that are not UTF-8 byte for byte, symlinks, FIFOs,
device nodes, extended attributes (POSIX ACLs, SELinux labels, capabilities; see --no-xattrs).
Sockets are skipped with a warning. Unreadable files are listed; the snapshot is still saved,
marked incomplete, and the exit code is 3. With no repository given, a default one is created on first use under
$XDG_DATA_HOME/lifeboat/repo with a generated password file in $XDG_CONFIG_HOME/lifeboat/.

--fs-snapshot btrfs freezes the paths first: one read-only snapshot of each subvolume that holds
them (and of each subvolume nested below them), read in place of the live files, so the backup
is one point in time per subvolume while the files keep changing; it needs root and btrfs-progs.
The snapshot is removed after the backup, whatever happens (a crashed run's is removed at the
next start). The snapshot is read, the original is recorded: paths, and device numbers, so
unchanged files are not read again, with or without a snapshot. The summary and --json give
the freeze time. --fs-snapshot-command/--fs-snapshot-cleanup do the same with your commands
(LVM, ZFS, a storage array): recipes in docs/fs-snapshots.md. Exit 2: not btrfs, or options
that do not go together; 1: not root, btrfs-progs missing, the snapshot could not be made, or
it could not be removed after a saved backup (the next start removes it).

Databases are backed up hot and consistent, one database per snapshot (docs/databases.md):
  sqlite:PATH            SQLite's online backup API, one read transaction; the snapshot holds
                         the database file, so unchanged pages deduplicate between backups
  postgres://USER[:PW]@HOST:PORT/DB   pg_dump --format=custom, one transaction snapshot,
                         streamed (no local copy); --all adds pg_dumpall --globals-only and
                         every database (needs the Debian package postgresql-client)
  mysql://USER:PW@HOST:PORT/DB        mariadb-dump/mysqldump --single-transaction --routines
                         --triggers --events, streamed (Debian package mariadb-client)
Passwords in a URL are never stored in the snapshot; PGPASSWORD/PGPASSFILE and
MYSQL_PWD or ~/.my.cnf work too. A database that cannot be reached exits 16 (also for a
wrong database password), a missing dump tool exits 1 and names its package.

Examples:
  lifeboat backup ~/Documents                      # into the default repository
  lifeboat -r /mnt/usb/backup backup /etc /home --exclude node_modules/ --tag nightly
  pg_dump mydb | lifeboat backup --stdin --stdin-filename mydb.sql
  lifeboat backup sqlite:/var/lib/app/app.db
  lifeboat backup postgres://backup@db1:5432/shop --tag nightly
  lifeboat backup --all postgres://postgres@127.0.0.1:5432/postgres
  lifeboat backup mysql://root:secret@127.0.0.1:3306/wiki
  sudo lifeboat backup --fs-snapshot btrfs /srv/app /home
  sudo lifeboat backup /data --fs-snapshot-command /etc/lifeboat/zfs-snap \
    --fs-snapshot-cleanup /etc/lifeboat/zfs-snap   # see docs/fs-snapshots.md`,
    )
    .action(async (paths: string[], flags: BackupFlags, cmd: Command) => {
      const c = ctx(cmd);
      // Usage and paths are checked before any repository is opened or created.
      if (flags.stdin && paths.length > 0)
        throw new LifeboatError("USAGE", "--stdin takes no paths", "remove the paths or --stdin");
      const dbs = paths.map((p) => parseDatabaseArg(p));
      const db = dbs.find((d) => d !== undefined);
      const fsSnapshot = fsSnapshotSpec(flags);
      if (fsSnapshot && (db || flags.stdin))
        throw new LifeboatError(
          "USAGE",
          "--fs-snapshot and --fs-snapshot-command apply to files and folders, not to databases or --stdin",
          "leave them out: databases are read consistently on their own",
        );
      if (db) {
        if (paths.length > 1)
          throw new LifeboatError(
            "USAGE",
            "a database is backed up on its own: give one database per backup command",
            "run one `lifeboat backup` per database (and one for files)",
          );
        await backupDatabase(c, db, flags);
        return;
      }
      if (flags.all) throw new LifeboatError("USAGE", "--all goes with a postgres:// URL");
      if (!flags.stdin) await checkSourcePaths(paths);
      if (fsSnapshot) await checkFsSnapshot(paths, fsSnapshot);
      const repo = await openOrCreateDefault(c);
      let result: BackupResult;
      try {
        if (flags.stdin) {
          result = await backupStream(repo, process.stdin as AsyncIterable<Buffer>, flags.stdinFilename, {
            tags: flags.tag,
            ...(flags.host ? { host: flags.host } : {}),
            onProgress: c.out.progress("backup"),
          });
        } else {
          const options = {
            excludes: flags.exclude,
            excludeFiles: flags.excludeFile,
            oneFileSystem: flags.oneFileSystem ?? false,
            xattrs: flags.xattrs,
            tags: flags.tag,
            ...(flags.host ? { host: flags.host } : {}),
            ...(flags.parent ? { parent: flags.parent } : {}),
            force: flags.force ?? false,
            onProgress: c.out.progress("backup"),
            onWarning: (m: string) => c.out.warn(m),
          };
          result = fsSnapshot
            ? await backupFrozen(repo, paths, {
                ...options,
                fsSnapshot: { spec: fsSnapshot, ownPaths: ownPaths(c) },
              })
            : await backup(repo, paths, options);
        }
      } finally {
        await repo.close();
      }
      const frozen = "fsSnapshot" in result ? (result as FrozenBackupResult) : undefined;
      printSummary(c, result, frozen ? { fs_snapshot: fsSnapshotJson(c, frozen) } : {});
      if (result.errors.length > 0) process.exitCode = ExitCode.incomplete;
      await reportAnomalies(c, result);
      // The backup is saved; a snapshot that could not be removed still fails the run.
      if (frozen?.cleanupError) throw frozen.cleanupError;
    });
}

/** `backup sqlite:PATH | postgres://... | mysql://...`: one database into one snapshot. */
async function backupDatabase(c: CliContext, db: DatabaseArg, flags: BackupFlags): Promise<void> {
  if (flags.stdin) throw new LifeboatError("USAGE", "--stdin does not go with a database source");
  if (
    flags.exclude.length > 0 ||
    flags.excludeFile.length > 0 ||
    flags.oneFileSystem ||
    flags.parent ||
    !flags.xattrs
  )
    throw new LifeboatError(
      "USAGE",
      "--exclude, --exclude-file, --one-file-system, --no-xattrs and --parent apply to files, not databases",
    );
  // The database is checked (tool installed, server reachable, password right) before any
  // repository is opened or created.
  await preflightDatabase(db, { all: flags.all ?? false });
  const repo = await openOrCreateDefault(c);
  const source = databaseSource(db, { all: flags.all ?? false });
  let result: BackupResult;
  try {
    result = await takeSnapshot(repo, source, {
      tags: flags.tag,
      ...(flags.host ? { host: flags.host } : {}),
      onProgress: c.out.progress("backup"),
    });
  } finally {
    await source.cleanup();
    await repo.close();
  }
  const meta = result.snapshot.meta ?? {};
  if (Array.isArray(meta.warnings)) for (const w of meta.warnings) c.out.warn(String(w));
  const tables = meta.tables as Record<string, number> | undefined;
  if (tables) {
    const rows = Object.values(tables).reduce((a, b) => a + b, 0);
    c.out.info(`${source.name}: ${Object.keys(tables).length} tables, ${rows} rows`);
  } else if (Array.isArray(meta.databases)) {
    c.out.info(`${source.name}: ${meta.databases.length} database(s)`);
  }
  printSummary(c, result, { source: source.type, source_name: source.name, source_meta: meta });
  await reportAnomalies(c, result);
}

/** lifeboat's own files a backup from a file-system snapshot leaves out: its repository when it
 * is a local folder, and its state. */
export function ownPaths(c: CliContext): { path: string; what: string }[] {
  const url = c.repoLocation().url;
  const local =
    /^[a-z][a-z0-9+]+:/.test(url) && !url.startsWith("local:") ? undefined : url.replace(/^local:/, "");
  const cache = lifeboatCacheDir();
  return [
    ...(local ? [{ path: local, what: "repository" }] : []),
    { path: lifeboatStateDir(), what: "state" },
    // Only when it is there: most hosts have none, and a warning about nothing would be noise.
    ...(existsSync(cache) ? [{ path: cache, what: "cache" }] : []),
  ];
}

/** The freeze in the summary: a line for people, an object for --json. */
export function fsSnapshotJson(c: CliContext, r: FrozenBackupResult): Record<string, unknown> {
  const f = r.fsSnapshot;
  const ms = (x: number) => Math.round(x * 10) / 10;
  const what =
    f.kind === "btrfs"
      ? `${f.snapshots.length} btrfs subvolume(s)${f.nested.length > 0 ? ` (${f.nested.length} nested below the paths, each frozen a moment after the one above it: one point in time per subvolume)` : ""}`
      : `${f.snapshots.length} path(s) with --fs-snapshot-command`;
  c.out.info(
    `Froze ${what} in ${ms(f.freezeMs)} ms; read from the snapshot${f.snapshots.length > 1 ? "s" : ""}, then ${r.cleanupError ? "FAILED to remove it (see below)" : "removed"}`,
  );
  return {
    kind: f.kind,
    freeze_ms: ms(f.freezeMs),
    snapshots: f.snapshots.map((s) => ({ of: displayName(s.of), path: displayName(s.path), ms: ms(s.ms) })),
    nested_subvolumes: f.nested.map(displayName),
    mounts: f.mounts.map(displayName),
    removed: !r.cleanupError,
  };
}

function printSummary(c: CliContext, r: BackupResult, extra: Record<string, unknown> = {}): void {
  const s = r.summary;
  for (const e of r.errors) c.out.warn(`could not read ${formatItemError(e)}`);
  for (const p of r.snapshot.changedWhileReading)
    c.out.warn(`${displayName(p)} changed while it was read; the snapshot holds what was read`);
  if (extra.source) c.out.info(`Read ${bytes(s.bytes)} in ${s.files} file(s)`);
  else
    c.out.info(
      `Files: ${s.filesNew} new, ${s.filesChanged} changed, ${s.filesUnchanged} unchanged; ${s.dirs} folders`,
    );
  c.out.info(
    `Added to the repository: ${bytes(s.bytesAdded)} (${bytes(s.bytesStored)} stored) in ${(s.durationMs / 1000).toFixed(1)}s`,
  );
  c.out.info(
    `snapshot ${r.snapshotId.slice(0, 8)} saved${r.errors.length > 0 ? ` INCOMPLETE: ${r.errors.length} path(s) could not be read` : ""}`,
  );
  c.out.emit({
    message_type: "summary",
    snapshot_id: r.snapshotId,
    files_new: s.filesNew,
    files_changed: s.filesChanged,
    files_unmodified: s.filesUnchanged,
    dirs: s.dirs,
    total_files_processed: s.files,
    total_bytes_processed: s.bytes,
    data_blobs_added: s.blobsAdded,
    data_added: s.bytesAdded,
    data_stored: s.bytesStored,
    duration_ms: s.durationMs,
    incomplete: r.errors.length > 0,
    errors: jsonItemErrors(r.errors),
    changed_while_reading: r.snapshot.changedWhileReading.map(displayName),
    warnings: r.warnings,
    ...extra,
  });
}

/**
 * With no repository given, backup uses the default local one, creating it (and a generated
 * password file) on first use so that one command is enough to get a first backup.
 */
async function openOrCreateDefault(c: CliContext): Promise<Repository> {
  const loc = c.repoLocation();
  if (!loc.isDefault) return c.openRepo();
  const exists = await fs.stat(loc.url).then(
    () => true,
    () => false,
  );
  if (exists) return c.openRepo();
  const { passwordFile } = defaultLocations();
  const hasOwnPassword =
    c.opts.passwordFile ||
    c.opts.passwordCommand ||
    process.env.LIFEBOAT_PASSWORD ||
    process.env.LIFEBOAT_PASSWORD_FILE;
  const password = hasOwnPassword
    ? await c.password()
    : await fs.stat(passwordFile).then(
        () => c.password(),
        () => createPasswordFile(passwordFile),
      );
  const repo = await Repository.init(await openBackend(loc.url), password);
  c.out.info(`created the default repository at ${loc.url}`);
  if (!hasOwnPassword) {
    c.out.info(`its password is in ${passwordFile} (mode 0600).`);
    c.out.info(
      "Keep a copy of that file somewhere safe and separate: without it this backup cannot be restored.",
    );
  }
  c.out.emit({
    message_type: "initialized",
    repository: loc.url,
    password_file: hasOwnPassword ? null : passwordFile,
  });
  return repo;
}
