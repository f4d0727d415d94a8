import type { Command } from "commander";
import { LifeboatError } from "../../core/errors.js";
import { repairIndex } from "../../ops/repair/repair-index.js";
import { repairSnapshots } from "../../ops/repair/repair-snapshots.js";
import { undelete } from "../../ops/repair/undelete.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";

export function registerRepair(program: Command, ctx: (c: Command) => CliContext): void {
  const repair = program
    .command("repair")
    .description("rebuild the index from the packs, rewrite snapshots around lost data, undo deletes")
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
  repair
    .command("undelete")
    .description("bring back objects someone deleted on a versioned S3 bucket (remove their delete markers)")
    .option("-n, --dry-run", "list what delete markers hide; change nothing")
    .option("--since <time>", "only markers written at or after this ISO time (e.g. when the attack began)")
    .addHelpText(
      "after",
      `
On a bucket with versioning (every Object Lock bucket has it), a plain DeleteObject does not
remove anything: it adds a delete marker that hides the object, whose bytes stay (and, under
retention, cannot be removed). lifeboat never leaves markers itself (it deletes versions), so
markers come from someone else: stolen credentials, a lifecycle rule with an Expiration, an
older lifeboat. This lists every object hidden that way and removes the markers, which brings
the objects back as they were. It needs no password (the config and keys may be hidden too).
Afterwards run \`lifeboat check\` and \`lifeboat snapshots\`.

Examples:
  lifeboat repair undelete --dry-run
  lifeboat repair undelete --since 2026-11-30T22:00:00Z

Exit codes: 0 done (also when nothing was hidden); 2 storage that keeps no versions, or a bad
--since; 1 the storage refused (e.g. s3:DeleteObjectVersion not allowed).`,
    )
    .action(async (flags: { dryRun?: boolean; since?: string }, cmd: Command) => {
      const c = ctx(cmd);
      let since: Date | undefined;
      if (flags.since !== undefined) {
        since = new Date(flags.since);
        if (Number.isNaN(since.getTime()))
          throw new LifeboatError(
            "USAGE",
            `--since ${JSON.stringify(flags.since)} is not a time`,
            "give an ISO time, e.g. --since 2026-11-30T22:00:00Z",
          );
      }
      const backend = await c.backend(c.repoLocation().url);
      try {
        const dryRun = flags.dryRun === true;
        const r = await undelete(backend, { dryRun, ...(since ? { since } : {}) });
        c.out.emit({ message_type: "summary", action: "repair-undelete", dry_run: dryRun, ...r });
        const folders = new Map<string, number>();
        for (const o of r.hidden) {
          const f = o.name.includes("/") ? `${o.name.split("/")[0]}/` : o.name;
          folders.set(f, (folders.get(f) ?? 0) + 1);
        }
        for (const o of r.hidden.slice(0, 50))
          c.out.info(
            `${dryRun ? "hidden" : "brought back"}: ${o.name} (${bytes(o.size)}, written ${o.written}, deleted ${o.deletedAt})`,
          );
        if (r.hidden.length > 50) c.out.info(`... and ${r.hidden.length - 50} more`);
        const by = [...folders].map(([f, n]) => `${n} in ${f}`).join(", ");
        c.out.info(
          `${dryRun ? "would bring back" : "brought back"} ${r.hidden.length} object(s) (${bytes(r.bytes)})${by ? `: ${by}` : ""}; ${r.emptyMarkers.length} delete marker(s) with nothing behind them ${dryRun ? "would be " : ""}removed`,
        );
        if (r.hidden.length > 0 && !dryRun)
          c.out.info("next: `lifeboat check`, then `lifeboat snapshots` to see what came back");
      } finally {
        await backend.close();
      }
    });
}
