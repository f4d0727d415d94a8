import type { Command } from "commander";
import { ExitCode, LifeboatError } from "../../core/errors.js";
import { guard } from "../../ops/guard/guard.js";
import type { CliContext } from "../context.js";

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerGuard(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("guard")
    .description("snapshot, run an upgrade command, snapshot again, and judge the difference")
    .requiredOption(
      "-s, --source <path>",
      "a file or folder the command may change (repeatable)",
      collect,
      [],
    )
    .option("--tag <tag>", "extra tag for both snapshots (repeatable)", collect, [])
    .argument("<command...>", "the command to run (put it after --)")
    .addHelpText(
      "after",
      `
Prints one verdict line and, when something went wrong, the exact command that rolls back.
Exit codes: 0 the command succeeded and the result looks normal; 4 the result looks like a
wipe (files gone, data shrunk, zeroed or turned random); otherwise the command's own exit
code (1 if it was killed). Both snapshots are then pinned: forget keeps them until
\`lifeboat ack\`.

Example:
  lifeboat guard --source /var/lib/app --source /etc/app -- apt-get -y upgrade`,
    )
    .action(async (command: string[], flags: { source: string[]; tag: string[] }, cmd: Command) => {
      const c = ctx(cmd);
      if (command.length === 0)
        throw new LifeboatError(
          "USAGE",
          "guard needs a command to run",
          "put it after --, e.g. -- apt-get upgrade",
        );
      const repo = await c.openRepo();
      let r: Awaited<ReturnType<typeof guard>>;
      try {
        r = await guard(repo, {
          sources: flags.source,
          command,
          tags: flags.tag,
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
      const before = r.before.snapshotId.slice(0, 8);
      const after = r.after.snapshotId.slice(0, 8);
      const repoArg = c.opts.repo ? `-r ${c.opts.repo} ` : "";
      const rollback = `lifeboat ${repoArg}restore ${before} --target /`;
      c.out.emit({
        message_type: "summary",
        action: "guard",
        ok: r.ok,
        before: r.before.snapshotId,
        after: r.after.snapshotId,
        exit_code: r.exitCode,
        reasons: r.reasons,
        rollback,
      });
      if (r.ok)
        c.out.result(
          `guard: OK — snapshots ${before} (before) and ${after} (after); nothing unusual changed`,
        );
      else {
        c.out.result(`guard: FAILED — ${r.reasons.join("; ")}; snapshots ${before} and ${after} are pinned`);
        c.out.result(`  to roll back: ${rollback}`);
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
    });
}
