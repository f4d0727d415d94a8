import type { Command } from "commander";
import { Repository } from "../../repo/repository.js";
import type { CliContext } from "../shell/context.js";
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

Examples:
  lifeboat init -r /mnt/usb/backup --password-file ~/.lifeboat-pass
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
      const repo = await Repository.init(backend, password);
      c.out.info(`created lifeboat repository ${repo.config.id.slice(0, 10)} at ${repo.backend.location}`);
      c.out.info("Keep the password safe: without it nobody, not even you, can restore this data.");
      c.out.emit({ message_type: "initialized", id: repo.config.id, repository: repo.backend.location });
      await repo.close();
    });
}
