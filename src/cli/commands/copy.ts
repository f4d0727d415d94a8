import type { Command } from "commander";
import { LifeboatError } from "../../core/errors.js";
import { copySnapshots } from "../../ops/copy/copy.js";
import { findSnapshot } from "../../repo/find-snapshot.js";
import { Repository } from "../../repo/repository.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";
import { fromRepoPassword } from "../shell/password.js";

interface CopyFlags {
  fromRepo?: string;
  fromPasswordFile?: string;
  fromPasswordCommand?: string;
  dryRun?: boolean;
}

export function registerCopy(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("copy")
    .description("copy snapshots from another repository into this one (re-using data it has)")
    .argument("[snapshots...]", "source snapshot ids (default: all)")
    .option("--from-repo <url>", "the repository to copy from (env LIFEBOAT_FROM_REPOSITORY)")
    .option("--from-password-file <file>", "its password file (env LIFEBOAT_FROM_PASSWORD_FILE)")
    .option(
      "--from-password-command <cmd>",
      "a command printing its password (env LIFEBOAT_FROM_PASSWORD_COMMAND)",
    )
    .option("-n, --dry-run", "list what would be copied")
    .addHelpText(
      "after",
      `
The destination is the usual repository (-r / LIFEBOAT_REPOSITORY); the source's password comes
from the --from-* options or LIFEBOAT_FROM_PASSWORD. The two repositories have different keys;
data is re-encrypted, and what the destination already holds is not stored again. Archived
PostgreSQL WAL (\`pg wal-push\`) and SQLite replication segments (\`replicate\`) are copied
too, so the copy alone can restore to a point in time. Copies remember their origin, so running
copy again copies only what is new. This is how to keep a second copy in another place: a USB
drive, another server, another cloud.

Example:
  lifeboat -r sftp:backup@offsite:/srv/lifeboat copy --from-repo /mnt/usb/lifeboat \\
      --from-password-file ~/.config/lifeboat/usb.pw`,
    )
    .action(async (ids: string[], flags: CopyFlags, cmd: Command) => {
      const c = ctx(cmd);
      const url = flags.fromRepo ?? process.env.LIFEBOAT_FROM_REPOSITORY;
      if (!url)
        throw new LifeboatError(
          "USAGE",
          "copy needs the repository to copy from",
          "give --from-repo URL (or LIFEBOAT_FROM_REPOSITORY)",
        );
      const backend = await c.backend(url);
      if (!(await Repository.exists(backend))) throw Repository.notFound(backend);
      const pw = await fromRepoPassword(flags);
      const src = await Repository.open(backend, pw);
      try {
        const dst = await c.openRepo();
        try {
          if (dst.config.id === src.config.id)
            throw new LifeboatError(
              "USAGE",
              "source and destination are the same repository",
              "give another --from-repo",
            );
          const snaps =
            ids.length > 0 ? await Promise.all(ids.map((id) => findSnapshot(src, id))) : undefined;
          const r = await copySnapshots(src, dst, {
            ...(snaps ? { snapshots: snaps } : {}),
            dryRun: flags.dryRun === true,
            onProgress: c.out.progress("copy"),
            onCopied: (from, to) =>
              c.out.info(`copied ${from.id.slice(0, 8)} (${from.time}) to ${to.slice(0, 8)}`),
          });
          c.out.emit({ message_type: "summary", action: "copy", dry_run: flags.dryRun === true, ...r });
          if (r.skipped.length > 0) c.out.info(`${r.skipped.length} snapshot(s) were copied before; skipped`);
          if (r.forgotten.length > 0)
            c.out.info(
              `${r.forgotten.length} snapshot(s) were forgotten in the source while being copied; skipped: ${r.forgotten.map((id) => id.slice(0, 8)).join(", ")}`,
            );
          const { wal, segments } = r.records;
          if (wal.copied + wal.skipped + segments.copied + segments.skipped > 0)
            c.out.info(
              `${flags.dryRun ? "would copy" : "copied"} ${wal.copied} archived WAL file(s) and ${segments.copied} SQLite replication segment(s)${wal.skipped + segments.skipped > 0 ? ` (${wal.skipped + segments.skipped} already there)` : ""}`,
            );
          c.out.info(
            `${flags.dryRun ? "would copy" : "copied"} ${flags.dryRun ? "" : `${r.copied.length} snapshot(s), added ${bytes(r.bytesAdded)} (${bytes(r.bytesStored)} stored)`}`,
          );
        } finally {
          await dst.close();
        }
      } finally {
        await src.close();
      }
    });
}
