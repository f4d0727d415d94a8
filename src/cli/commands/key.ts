import type { Command } from "commander";
import { addWriteOnlyKey } from "../../repo/write-only-keys.js";
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
      const rows = [[" ", "ID", "Kind", "User", "Host", "Created"]];
      for (const k of keys)
        rows.push([k.current ? "*" : " ", k.id.slice(0, 8), k.kind, k.username, k.hostname, k.created]);
      c.out.result(table(rows));
    });

  key
    .command("add")
    .description(
      "add a password (the data is not re-encrypted); --write-only: one for a host that may add backups but not read or delete them",
    )
    .option(
      "--new-password-file <file>",
      "read the new password from this file (else LIFEBOAT_NEW_PASSWORD or a prompt)",
    )
    .option(
      "--write-only",
      "a write-only key: it adds blobs, index entries and snapshots, deduplicates against the index, and cannot read anything stored (restore, check, prune and drills need a full key)",
    )
    .addHelpText(
      "after",
      `
A write-only key is for a host that should back up but never read or delete backups: if the
host is compromised, the key cannot decrypt what is stored, and with an append-only server
(\`lifeboat serve --append-only\`) or Object Lock its storage credentials cannot delete it
either. Keep a full key elsewhere. The first write-only key converts the repository to format
version 2 (nothing stored is re-encrypted; the index files are re-sealed): older versions of
lifeboat then refuse it. See docs/format.md, "Write-only keys".`,
    )
    .action(async (f: { newPasswordFile?: string; writeOnly?: boolean }, cmd: Command) => {
      const c = ctx(cmd);
      const repo = await c.openRepo();
      try {
        if (f.writeOnly) {
          const r = await addWriteOnlyKey(repo, await newPw(f.newPasswordFile));
          c.out.info(
            `added write-only key ${r.id.slice(0, 8)}` +
              (r.indexFilesResealed + r.plansResealed > 0
                ? ` (re-sealed ${r.indexFilesResealed} index file(s) and ${r.plansResealed} prune plan(s) for it)`
                : ""),
          );
          c.out.emit({
            message_type: "key_added",
            id: r.id,
            kind: "write-only",
            index_files_resealed: r.indexFilesResealed,
            plans_resealed: r.plansResealed,
          });
          return;
        }
        const id = await repo.addKey(await newPw(f.newPasswordFile));
        c.out.info(`added key ${id.slice(0, 8)}`);
        c.out.emit({ message_type: "key_added", id, kind: "full" });
      } finally {
        await repo.close();
      }
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
