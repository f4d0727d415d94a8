import type { Command } from "commander";
import { checkFsSnapshot, fsSnapshotSpec } from "../../app/fs-snapshot.js";
import { checkGuardSources, type GuardPair, guard, splitGuardSources } from "../../app/guard.js";
import { ExitCode, LifeboatError } from "../../core/errors.js";
import type { CliContext } from "../shell/context.js";
import { ownPaths } from "./backup.js";

const collect = (v: string, prev: string[]) => [...prev, v];

/** Quotes a word for a POSIX shell when it needs it (the printed command is meant to be pasted). */
const shellWord = (w: string) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`);

interface GuardFlags {
  source: string[];
  tag: string[];
  fsSnapshot?: string;
  fsSnapshotCommand?: string;
  fsSnapshotCleanup?: string;
}

export function registerGuard(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("guard")
    .description("snapshot, run an upgrade command, snapshot again, and judge the difference")
    .requiredOption(
      "-s, --source <path-or-database>",
      "a file or folder the command may change, or a database: sqlite:PATH, postgres://..., mysql://... (repeatable)",
      collect,
      [],
    )
    .option("--tag <tag>", "extra tag for both snapshots (repeatable)", collect, [])
    .option(
      "--fs-snapshot <kind>",
      "read the files from file-system snapshots (btrfs); the one before the command is kept for an instant rollback if the guard fails",
    )
    .option("--fs-snapshot-command <cmd>", "make the snapshots with your own command, as for backup")
    .option("--fs-snapshot-cleanup <cmd>", "remove them with your own command, as for backup")
    .argument("<command...>", "the command to run (put it after --)")
    .addHelpText(
      "after",
      `
Files and folders go into one snapshot before and one after the command; each database gets
its own pair, taken as \`lifeboat backup\` takes it (PostgreSQL and MariaDB/MySQL guard
snapshots also record exact row counts).

Prints one verdict line and, when something went wrong, the exact command that rolls back
each affected source (files: restore --target /; SQLite: restore --target FILE; PostgreSQL
and MariaDB/MySQL: restore --target-db into a new database URL_restored).
Exit codes: 0 the command succeeded and the result looks normal; 4 the result looks like a
wipe (files gone, data shrunk, zeroed or turned random, a database lost more than half its
rows); otherwise the command's own exit code (1 if it was killed). All snapshots are then
pinned: forget keeps them until \`lifeboat ack\`.

With --fs-snapshot btrfs (root, btrfs-progs), files and folders are read from read-only btrfs
snapshots, as \`lifeboat backup --fs-snapshot btrfs\` reads them. If the guard fails, the
snapshot taken before the command is kept (renamed lifeboat-guard-...) until \`lifeboat ack\` of
either snapshot, and an instant rollback is printed beside the restore from the repository:
it copies the kept snapshot back with reflinks (cp --reflink=always), so no file data is copied
(docs/fs-snapshots.md, "Guards"). With --fs-snapshot-command, the snapshot is kept the same way
and its cleanup runs at \`ack\`.

Examples:
  lifeboat guard --source /var/lib/app --source /etc/app -- apt-get -y upgrade
  lifeboat guard --source sqlite:/var/lib/app/app.db -- ./migrate
  lifeboat guard --source /srv/app --source postgres://app:pw@127.0.0.1:5432/app -- ./deploy.sh
  sudo lifeboat guard --fs-snapshot btrfs --source /srv/app -- ./upgrade.sh`,
    )
    .action(async (command: string[], flags: GuardFlags, cmd: Command) => {
      const c = ctx(cmd);
      if (command.length === 0)
        throw new LifeboatError(
          "USAGE",
          "guard needs a command to run",
          "put it after --, e.g. -- apt-get upgrade",
        );
      const fsSnapshot = fsSnapshotSpec(flags);
      // Paths exist, databases answer: checked before the repository is opened.
      await checkGuardSources(flags.source);
      if (fsSnapshot) await checkFsSnapshot(splitGuardSources(flags.source).files, fsSnapshot);
      const repo = await c.openRepo();
      // A write-only key cannot restore: the rollback is for whoever holds a full key.
      const writeOnly = repo.keyKind === "write-only";
      let r: Awaited<ReturnType<typeof guard>>;
      try {
        r = await guard(repo, {
          sources: flags.source,
          command,
          tags: flags.tag,
          ...(fsSnapshot ? { fsSnapshot: { spec: fsSnapshot, ownPaths: ownPaths(c) } } : {}),
          onWarning: (m) => c.out.warn(m),
          onPhase: (p) =>
            c.out.debug(
              p === "before"
                ? "snapshot before"
                : p === "command"
                  ? `running ${command.join(" ")}`
                  : "snapshot after",
            ),
        });
      } finally {
        await repo.close();
      }
      const short = (id: string) => id.slice(0, 8);
      const repoArg = c.opts.repo ? `-r ${shellWord(c.opts.repo)} ` : "";
      const rollbackOf = (p: GuardPair) => `lifeboat ${repoArg}${p.restoreArgs.map(shellWord).join(" ")}`;
      // What to roll back: everything when the command failed, else the sources that look wrong.
      const affected = r.ok || r.exitCode !== 0 ? r.pairs : r.pairs.filter((p) => p.reasons.length > 0);
      const rollbacks = (affected.length > 0 ? affected : r.pairs).map(rollbackOf);
      const rollback = rollbacks.join(" && ");
      const single = r.pairs.length === 1 && r.pairs[0]!.type === "files";
      const fsSnap = r.fsSnapshot;
      const ms = (x: number) => Math.round(x * 10) / 10;
      c.out.emit({
        message_type: "summary",
        action: "guard",
        ok: r.ok,
        before: r.before.snapshotId,
        after: r.after.snapshotId,
        exit_code: r.exitCode,
        reasons: r.reasons,
        rollback,
        rollbacks,
        ...(writeOnly ? { rollback_needs_full_key: true } : {}),
        pairs: r.pairs.map((p) => ({
          source: p.source,
          type: p.type,
          paths: p.paths,
          before: p.before.snapshotId,
          after: p.after.snapshotId,
          reasons: p.reasons,
          rollback: rollbackOf(p),
        })),
        ...(fsSnap
          ? {
              fs_snapshot: {
                kind: fsSnap.before.kind,
                freeze_ms: ms(fsSnap.before.freezeMs),
                after_freeze_ms: ms(fsSnap.after.freezeMs),
                kept: fsSnap.kept ?? [],
                instant_rollback: fsSnap.rollback ?? null,
                instant_rollback_unavailable: fsSnap.rollbackUnavailable ?? null,
              },
            }
          : {}),
      });
      if (fsSnap)
        c.out.info(
          `froze the files in ${ms(fsSnap.before.freezeMs)} ms before the command and ${ms(fsSnap.after.freezeMs)} ms after it`,
        );
      const ids = r.pairs.map(
        (p) =>
          `${short(p.before.snapshotId)} (before) and ${short(p.after.snapshotId)} (after)${single ? "" : ` of ${p.source === "files" ? p.paths.join(" ") : p.source}`}`,
      );
      if (r.ok) c.out.result(`guard: OK — snapshots ${ids.join(", ")}; nothing unusual changed`);
      else {
        const pinned = r.pairs.flatMap((p) => [short(p.before.snapshotId), short(p.after.snapshotId)]);
        c.out.result(
          `guard: FAILED — ${r.reasons.join("; ")}; snapshots ${pinned.slice(0, -1).join(", ")} and ${pinned.at(-1)} are pinned`,
        );
        for (const cmdLine of rollbacks)
          c.out.result(
            `  to roll back${writeOnly ? " (with a full key: this host's key is write-only)" : ""}: ${cmdLine}`,
          );
        if (fsSnap?.rollback)
          c.out.result(`  to roll back the files instantly from the kept btrfs snapshot: ${fsSnap.rollback}`);
        if (fsSnap?.kept)
          c.out.result(
            `  the files as they were before the command are kept at ${fsSnap.kept.map((k) => k.at).join(", ")} until \`lifeboat ack ${short(r.before.snapshotId)}\`${fsSnap.rollbackUnavailable ? ` (no instant rollback: ${fsSnap.rollbackUnavailable})` : ""}`,
          );
        await c.notify({
          event: "guard",
          ok: false,
          command: "guard",
          message: `guard: ${r.reasons.join("; ")}`,
          snapshot: r.before.snapshotId,
          reasons: r.reasons,
          rollback,
        });
      }
      if (!r.ok) process.exitCode = r.exitCode !== 0 ? (r.exitCode ?? ExitCode.failure) : ExitCode.anomaly;
      // The verdict stands; a snapshot that could not be removed is reported after it.
      if (fsSnap?.cleanupError) {
        if (r.ok) throw fsSnap.cleanupError;
        c.out.warn(fsSnap.cleanupError.message);
      }
    });
}
