import type { Command } from "commander";
import { Repository } from "../../repo/repository.js";
import type { CliContext } from "../shell/context.js";
import { requireObjectLock } from "../shell/object-lock.js";
import { resolveNewPassword } from "../shell/password.js";

export function registerInit(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("init")
    .description("create a new repository")
    .addHelpText(
      "after",
      `
The password (from --password-file, --password-command, LIFEBOAT_PASSWORD[_FILE], or asked
twice on a terminal) is the only way to read the repository: keep a copy somewhere safe.

With --retention-days N (s3: only, on a bucket created with Object Lock) the repository
remembers the retention: every command that writes locks what it writes for N days, with or
without the option (see \`lifeboat retention --help\`).

Examples:
  lifeboat init -r /mnt/usb/backup --password-file ~/.lifeboat-pass
  lifeboat init -r s3:s3.eu-west-1.amazonaws.com/locked-bucket/host1 --retention-days 30 --retention-mode compliance
  LIFEBOAT_REPOSITORY=/srv/backup LIFEBOAT_PASSWORD_FILE=/etc/lifeboat.pass lifeboat init`,
    )
    .action(async (_o, cmd: Command) => {
      const c = ctx(cmd);
      const loc = c.repoLocation();
      const backend = await c.backend(loc.url);
      if (await Repository.exists(backend)) throw Repository.alreadyExists(backend);
      const password = await resolveNewPassword(undefined, {
        passwordFile: c.opts.passwordFile,
        passwordCommand: c.opts.passwordCommand,
      });
      const retention = c.retentionOption();
      if (retention) await requireObjectLock(backend);
      const repo = await Repository.init(backend, password, retention ? { retention } : {});
      c.out.info(`created lifeboat repository ${repo.config.id.slice(0, 10)} at ${repo.backend.location}`);
      if (retention)
        c.out.info(
          `every object but sessions and prune plans is locked for ${retention.days} days (${retention.mode}) by every writer; change it with \`lifeboat retention set\``,
        );
      c.out.info("Keep the password safe: without it nobody, not even you, can restore this data.");
      c.out.emit({ message_type: "initialized", id: repo.config.id, repository: repo.backend.location });
      await repo.close();
    });
}
