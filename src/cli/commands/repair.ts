import type { Command } from "commander";
import { repairIndex } from "../../ops/repair/repair-index.js";
import { repairSnapshots } from "../../ops/repair/repair-snapshots.js";
import type { CliContext } from "../shell/context.js";

export function registerRepair(program: Command, ctx: (c: Command) => CliContext): void {
  const repair = program
    .command("repair")
    .description("rebuild the index from the packs, or rewrite snapshots around lost data")
    .addHelpText(
      "after",
      `
After damage (see \`lifeboat check\`), in this order:
  1. copy the repository somewhere first if you can;
  2. lifeboat repair index        the index again from what the packs say they hold;
  3. lifeboat repair snapshots    snapshots rewritten without the files whose data is gone.
A pack that check --read-data reports as damaged can be moved out of data/ before step 2;
the files that needed it are then listed as lost in step 3.`,
    );
  repair
    .command("index")
    .description("rebuild the index from the pack headers alone (replaces every index file)")
    .action(async (_flags: unknown, cmd: Command) => {
      const c = ctx(cmd);
      const repo = await c.openRepo();
      try {
        const r = await repairIndex(repo);
        c.out.emit({ message_type: "summary", action: "repair-index", ...r });
        c.out.info(`indexed ${r.blobs} blobs in ${r.packs} packs; replaced ${r.replaced} index file(s)`);
        for (const d of r.damaged) c.out.warn(`pack ${d.pack} left out: ${d.error}`);
        if (r.damaged.length > 0)
          c.out.info("run `lifeboat repair snapshots` to rewrite snapshots that needed the packs left out");
      } finally {
        await repo.close();
      }
    });
  repair
    .command("snapshots")
    .description("rewrite snapshots that reference lost data, keeping everything else restorable")
    .option("-n, --dry-run", "list what is lost; change nothing")
    .option("--forget", "remove each damaged original once its repaired copy is saved")
    .action(async (flags: { dryRun?: boolean; forget?: boolean }, cmd: Command) => {
      const c = ctx(cmd);
      const repo = await c.openRepo();
      try {
        const r = await repairSnapshots(repo, {
          dryRun: flags.dryRun === true,
          forget: flags.forget === true,
        });
        c.out.emit({
          message_type: "summary",
          action: "repair-snapshots",
          dry_run: flags.dryRun === true,
          snapshots: r,
        });
        for (const s of r) {
          c.out.info(
            `snapshot ${s.original.slice(0, 8)}: ${s.lost.length} path(s) lost${s.repaired ? `; repaired copy ${s.repaired.slice(0, 8)} (tagged "repaired")` : ""}`,
          );
          for (const p of s.lost.slice(0, 20)) c.out.info(`  lost: ${p}`);
          if (s.lost.length > 20) c.out.info(`  ... and ${s.lost.length - 20} more`);
        }
        if (r.length === 0) c.out.info("no snapshot references missing data");
        else if (!flags.forget && !flags.dryRun)
          c.out.info(
            "the damaged originals are kept; remove them with `lifeboat forget ID` or rerun with --forget",
          );
      } finally {
        await repo.close();
      }
    });
}
