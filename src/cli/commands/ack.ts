import type { Command } from "commander";
import { releaseGuardFsSnapshots } from "../../app/fs-snapshot.js";
import { acknowledge } from "../../ops/acks/acks.js";
import { findSnapshot } from "../../repo/find-snapshot.js";
import type { CliContext } from "../shell/context.js";

export function registerAck(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("ack")
    .description("acknowledge a flagged or pinned snapshot, so retention treats it normally again")
    .argument("<snapshot>", "snapshot id (or unique prefix)")
    .option("--note <text>", "why (kept in the repository with the acknowledgement)", "")
    .addHelpText(
      "after",
      `
A snapshot is flagged when it looks like a wipe compared with the one before (many files gone,
data shrunk, files zeroed, files turned random). Until it is acknowledged, forget keeps it and
the last good snapshots before it, whatever the policy. Acknowledge only after checking that
the change was intended. A file-system snapshot kept by a failed \`guard --fs-snapshot\` for its
instant rollback is removed when either of the guard's snapshots is acknowledged.

Example:
  lifeboat ack 1a2b3c4d --note "removed the old archive on purpose"`,
    )
    .action(async (ref: string, flags: { note: string }, cmd: Command) => {
      const c = ctx(cmd);
      const repo = await c.openRepo();
      try {
        const s = await findSnapshot(repo, ref);
        const a = await acknowledge(repo, s.id, flags.note);
        const released = await releaseGuardFsSnapshots(s.id);
        c.out.emit({
          message_type: "summary",
          action: "ack",
          snapshot: s.id,
          ack: a.id,
          anomalies: s.anomalies ?? [],
          fs_snapshots: released,
        });
        c.out.info(
          `acknowledged snapshot ${s.id.slice(0, 8)}${(s.anomalies ?? []).length > 0 ? ` (${(s.anomalies ?? []).join("; ")})` : ""}`,
        );
        for (const m of released) c.out.info(m);
      } finally {
        await repo.close();
      }
    });
}
