import type { Command } from "commander";
import { LifeboatError } from "../../core/errors.js";
import { parseDuration } from "../../ops/forget/policy.js";
import { type PruneResult, prune } from "../../ops/prune/prune.js";
import type { Repository } from "../../repo/repository.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";

export interface PruneFlags {
  maxUnused: string;
  grace?: string;
  dryRun?: boolean;
}

export function registerPrune(program: Command, ctx: (c: Command) => CliContext): void {
  addPruneOptions(
    program
      .command("prune")
      .description("delete data that no snapshot needs, safely while other backups run")
      .option("-n, --dry-run", "print what would be deleted and the space it frees; change nothing"),
  )
    .addHelpText(
      "after",
      `
Prune never deletes anything a running backup may still use. It marks unneeded packs in a
plan stored in the repository; the plan is carried out once every backup that was running
when it was made has finished (at once, when none was). Packs that a snapshot written in the
meantime needs are kept. Run it from one place at a time: a second prune exits with 17.

Examples:
  lifeboat forget --keep-daily 7 --keep-weekly 5 --prune
  lifeboat prune --dry-run
  lifeboat prune --max-unused 0        repack until no unused byte is left`,
    )
    .action(async (flags: PruneFlags, cmd: Command) => {
      const c = ctx(cmd);
      const repo = await c.openRepo();
      try {
        await runPrune(c, repo, flags);
      } finally {
        await repo.close();
      }
    });
}

export function addPruneOptions(cmd: Command): Command {
  return cmd
    .option(
      "--max-unused <percent>",
      "repack partly used packs until unused space is at most this share of the repository",
      "5%",
    )
    .option("--grace <duration>", "only carry out plans at least this old, e.g. 1h (default: none)");
}

function parsePercent(s: string): number {
  const m = /^(\d+(?:\.\d+)?)%?$/.exec(s.trim());
  const v = m ? Number(m[1]) : Number.NaN;
  if (!(v >= 0 && v <= 100))
    throw new LifeboatError(
      "USAGE",
      `--max-unused ${JSON.stringify(s)} is not a percentage`,
      "give e.g. 5% or 0",
    );
  return v;
}

export async function runPrune(c: CliContext, repo: Repository, flags: PruneFlags): Promise<PruneResult> {
  let graceMs = 0;
  if (flags.grace) {
    try {
      graceMs = parseDuration(flags.grace);
    } catch (e) {
      throw new LifeboatError("USAGE", `--grace: ${(e as Error).message}`, "give e.g. --grace 1h");
    }
  }
  const r = await prune(repo, {
    maxUnusedPercent: parsePercent(flags.maxUnused),
    graceMs,
    dryRun: flags.dryRun === true,
    onStep: (m) => c.out.debug(m),
  });
  const m = r.mark;
  c.out.emit({ message_type: "summary", action: "prune", dry_run: flags.dryRun === true, ...r });
  c.out.info(
    `${m.snapshots} snapshots, ${m.packs} packs, ${bytes(m.bytesTotal)} in packs of which ${bytes(m.bytesUnused)} unused`,
  );
  const verb = flags.dryRun ? "would" : "will";
  c.out.info(
    `${flags.dryRun ? "would plan" : "planned"}: delete ${m.unusedPacks.length} unused pack(s), repack ${m.repackPacks.length}, merge ${m.smallPacks.length} small (${bytes(m.bytesRepacked)} to copy), remove ${m.unindexedPacks.length} left by interrupted backups; ${verb} free ${bytes(m.bytesToFree)}`,
  );
  for (const s of r.swept) {
    c.out.info(
      `carried out plan ${s.plan.slice(0, 8)}: deleted ${s.deletedPacks} pack(s), freed ${bytes(s.bytesFreed)}${s.keptPacks ? `, kept ${s.keptPacks} a new snapshot needs` : ""}`,
    );
    if (s.retainedObjects.length > 0) {
      const dates = s.retainedObjects
        .map((o) => o.until ?? "")
        .filter((d) => d !== "")
        .sort();
      const held = s.retainedObjects.reduce((n, o) => n + o.bytes, 0);
      c.out.info(
        `  ${s.retainedObjects.length} object(s) (${bytes(held)}) are under retention${dates.length ? ` from ${dates[0]} to ${dates.at(-1)}` : ""}: kept${s.replacedBy ? ` in plan ${s.replacedBy.slice(0, 8)}` : ""}; a prune after that date deletes them`,
      );
      for (const o of s.retainedObjects.slice(0, 10))
        c.out.debug(`  locked: ${o.object}${o.until ? ` until ${o.until}` : ` (${o.mode ?? "locked"})`}`);
    }
  }
  for (const w of r.waiting)
    c.out.info(`plan ${w.plan.slice(0, 8)} not carried out yet: ${w.reason}; the next prune will`);
  if (r.temporaries.files > 0)
    c.out.info(
      `removed ${r.temporaries.files} temporary file(s) (${bytes(r.temporaries.bytes)}) that interrupted backups left over a day ago`,
    );
  return r;
}
