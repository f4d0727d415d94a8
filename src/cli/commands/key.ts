import type { Command } from "commander";
import type { CliContext } from "../shell/context.js";
import { table } from "../shell/format.js";
import { resolveNewPassword } from "../shell/password.js";

export function registerKey(program: Command, ctx: (c: Command) => CliContext): void {
  const key = program.command("key").description("manage the passwords (key files) of a repository");
  const newPw = (file: string | undefined) => resolveNewPassword(file);

  key
    .command("list")
    .description("list key files; * marks the one this password opened")
    .action(async (_f, cmd: Command) => {
      const c = ctx(cmd);
      const repo = await c.openRepo();
      const keys = await repo.listKeys();
      await repo.close();
      if (c.out.json) return c.out.emit(keys);
      const rows = [[" ", "ID", "User", "Host", "Created"]];
      for (const k of keys)
        rows.push([k.current ? "*" : " ", k.id.slice(0, 8), k.username, k.hostname, k.created]);
      c.out.result(table(rows));
    });

  key
    .command("add")
    .description("add a password (the data is not re-encrypted)")
    .option(
      "--new-password-file <file>",
      "read the new password from this file (else LIFEBOAT_NEW_PASSWORD or a prompt)",
    )
    .action(async (f: { newPasswordFile?: string }, cmd: Command) => {
      const c = ctx(cmd);
      const repo = await c.openRepo();
      const id = await repo.addKey(await newPw(f.newPasswordFile));
      await repo.close();
      c.out.info(`added key ${id.slice(0, 8)}`);
      c.out.emit({ message_type: "key_added", id });
    });

  key
    .command("remove")
    .description("remove a key file (not the one in use)")
    .argument("<id>", "key id or a unique prefix, from `lifeboat key list`")
    .action(async (prefix: string, _f, cmd: Command) => {
      const c = ctx(cmd);
      const repo = await c.openRepo();
      try {
        const { LifeboatError } = await import("../../core/errors.js");
        const ids = (await repo.listKeys()).map((k) => k.id).filter((k) => k.startsWith(prefix));
        if (ids.length !== 1) {
          throw new LifeboatError(
            "KEY_ERROR",
            ids.length === 0 ? `no key id starts with ${prefix}` : `${prefix} matches ${ids.length} keys`,
            "see `lifeboat key list`",
          );
        }
        await repo.removeKey(ids[0]!);
        c.out.info(`removed key ${ids[0]!.slice(0, 8)}`);
        c.out.emit({ message_type: "key_removed", id: ids[0] });
      } finally {
        await repo.close();
      }
    });

  key
    .command("passwd")
    .description("change the password this command was opened with")
    .option(
      "--new-password-file <file>",
      "read the new password from this file (else LIFEBOAT_NEW_PASSWORD or a prompt)",
    )
    .action(async (f: { newPasswordFile?: string }, cmd: Command) => {
      const c = ctx(cmd);
      const repo = await c.openRepo();
      try {
        const old = repo.keyId;
        // Add first, then remove: at no moment is the repository without a working key.
        const id = await repo.addKey(await newPw(f.newPasswordFile));
        await repo.backend.delete(`keys/${old}`);
        c.out.info(`password changed (key ${old.slice(0, 8)} replaced by ${id.slice(0, 8)})`);
        c.out.emit({ message_type: "key_changed", old, id });
      } finally {
        await repo.close();
      }
    });
}
