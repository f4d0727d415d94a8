import type { Command } from "commander";
import { lifecycleRule, parseRetention } from "../../backend/retention.js";
import { LifeboatError } from "../../core/errors.js";
import type { CliContext } from "../shell/context.js";
import { requireObjectLock } from "../shell/object-lock.js";

interface SetFlags {
  days?: string;
  mode?: string;
}

export function registerRetention(program: Command, ctx: (c: Command) => CliContext): void {
  const retention = program
    .command("retention")
    .description("show or change the Object Lock retention the repository applies to everything written")
    .addHelpText(
      "after",
      `
A repository on an S3 bucket with Object Lock can remember a retention: then every command
that writes (backup, copy, pg wal-push, replicate, prune's repacks, ...) locks each object it
writes for that many days, on every host, with or without --retention-days. Nobody can delete
or overwrite a locked object before its date (governance: except an administrator who may lift
it; compliance: nobody). Sessions and prune plans are never locked. A lifeboat too old to know
this refuses to write to the repository (exit 18) instead of writing unlocked objects.

Examples:
  lifeboat retention show
  lifeboat retention set --days 30 --mode compliance
  lifeboat retention show --json | jq .lifecycle > lifecycle.json
  aws s3api put-bucket-lifecycle-configuration --bucket B --lifecycle-configuration file://lifecycle.json

Exit codes: 0 done; 2 bad --days/--mode, or storage without Object Lock; 18 a lifeboat that does
not know retention.`,
    );

  retention
    .command("show")
    .description("print the retention and the bucket lifecycle rule that goes with it")
    .addHelpText(
      "after",
      `
Examples:
  lifeboat retention show
  lifeboat retention show --json`,
    )
    .action(async (_f, cmd: Command) => {
      const c = ctx(cmd);
      const repo = await c.openRepo({ retentionOption: false });
      try {
        const r = repo.retention;
        const bucket = await repo.backend.versions?.state().catch(() => undefined);
        const lifecycle = r ? lifecycleRule(r) : undefined;
        c.out.emit({
          message_type: "retention",
          retention: r ?? null,
          bucket: bucket ?? null,
          lifecycle: lifecycle ?? null,
        });
        if (!r) {
          c.out.result("no retention: objects are written unlocked");
          c.out.info("lock everything written from now on with `lifeboat retention set --days N`");
          return;
        }
        c.out.result(
          `every object but sessions and prune plans is locked for ${r.days} days (${r.mode}) when written`,
        );
        if (bucket)
          c.out.info(
            `bucket: versioning ${bucket.versioning ? "on" : "off"}, Object Lock ${bucket.objectLock === undefined ? "unknown" : bucket.objectLock ? "on" : "off"}`,
          );
        c.out.info(
          `bucket lifecycle rule that goes with it (docs/backends.md):\n${JSON.stringify(lifecycle, null, 2)}`,
        );
      } finally {
        await repo.close();
      }
    });

  retention
    .command("set")
    .description("lock everything written from now on for N days (recorded in the repository)")
    .option("--days <n>", "days each object stays locked after it is written")
    .option(
      "--mode <mode>",
      "governance (an administrator can lift it) or compliance (nobody can)",
      "governance",
    )
    .addHelpText(
      "after",
      `
Objects already written keep the date they were locked with. There is no way to turn the
retention off from lifeboat: someone holding the password must not be able to unlock what is
written next.

Examples:
  lifeboat retention set --days 30
  lifeboat retention set --days 90 --mode compliance`,
    )
    .action(async (flags: SetFlags, cmd: Command) => {
      const c = ctx(cmd);
      if (flags.days === undefined)
        throw new LifeboatError(
          "USAGE",
          "retention set needs --days",
          "e.g. lifeboat retention set --days 30",
        );
      let wanted: ReturnType<typeof parseRetention>;
      try {
        wanted = parseRetention(flags.days, flags.mode);
      } catch (e) {
        throw new LifeboatError(
          "USAGE",
          (e as Error).message.replace("--retention-days", "--days").replace("--retention-mode", "--mode"),
          (e as LifeboatError).hint,
        );
      }
      if (!wanted) throw new LifeboatError("USAGE", "retention set needs --days", "e.g. --days 30");
      const repo = await c.openRepo({ retentionOption: false });
      try {
        await requireObjectLock(repo.backend);
        const before = repo.retention;
        await repo.setRetention(wanted);
        c.out.emit({ message_type: "retention", retention: wanted, previous: before ?? null });
        c.out.info(
          `every object written from now on is locked for ${wanted.days} days (${wanted.mode})${before ? ` (was ${before.days} days, ${before.mode})` : ""}`,
        );
        if (before && before.days > wanted.days) c.out.info("objects already written keep their longer lock");
      } finally {
        await repo.close();
      }
    });
}
