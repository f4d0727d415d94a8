import type { Command } from "commander";
import { ExitCode } from "../../core/errors.js";
import { check, parseSubset } from "../../ops/check/check.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";
import { collectOldGenerationSooner } from "../shell/heap-flags.js";
import { flushOutput } from "../shell/output.js";

export function registerCheck(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("check")
    .description("verify the repository's structure, and with --read-data every stored byte")
    .option("--read-data", "download every pack and verify every blob (decrypt, decompress, re-hash)")
    .option(
      "--read-data-subset <part>",
      "verify only a part: N/M (the N-th of M parts) or X% (a random sample)",
    )
    .addHelpText(
      "after",
      `
check never changes the repository. On damage it names the pack, the blobs, and the
snapshots and files that need them, and exits with 14. A prune plan not carried out yet
(after a prune was interrupted, or while backups it waits for run) and blobs stored in two
packs are information, not damage: every pack is still read in full.

Examples:
  lifeboat check                          structure: trees, index, packs present
  lifeboat check --read-data              read and verify everything
  lifeboat check --read-data-subset 1/7   a seventh each day: everything once a week`,
    )
    .action(async (flags: { readData?: boolean; readDataSubset?: string }, cmd: Command) => {
      const c = ctx(cmd);
      collectOldGenerationSooner();
      const subset = flags.readDataSubset ? parseSubset(flags.readDataSubset) : undefined;
      const repo = await c.openRepo();
      try {
        const started = Date.now();
        const r = await check(repo, {
          readData: flags.readData === true || subset !== undefined,
          ...(subset ? { subset } : {}),
          onProgress: c.out.progress("check"),
        });
        const secs = (Date.now() - started) / 1000;
        c.out.emit({ message_type: "summary", ...r, seconds: secs, ok: r.problems.length === 0 });
        c.out.info(
          `${r.snapshots} snapshots, ${r.trees} trees, ${r.dataBlobs} data blobs in ${r.packs} packs`,
        );
        if (r.packsRead > 0) {
          c.out.info(`read and verified ${r.packsRead} packs (${bytes(r.bytesRead)}) in ${secs.toFixed(1)}s`);
        }
        if (r.unindexedPacks.length > 0) {
          c.out.info(
            `${r.unindexedPacks.length} pack(s) are not in any index (left by an interrupted backup; prune removes them)`,
          );
        }
        for (const p of r.pendingPlans) {
          const why =
            p.retained > 0
              ? `${p.retained} of its packs are under retention`
              : p.waitingFor > 0
                ? `it waits for ${p.waitingFor} backup(s) still running`
                : "the backups it waited for have ended (a prune was interrupted, or has not run since)";
          c.out.info(
            `prune plan ${p.plan.slice(0, 8)} (${p.created}, ${p.packs} pack(s)${p.packsGone ? `, ${p.packsGone} already deleted` : ""}) is not carried out yet: ${why}; the next prune carries it out`,
          );
        }
        if (r.duplicateBlobs > 0) {
          c.out.info(
            `${r.duplicateBlobs} blob(s) are stored in more than one pack (stored again by a backup while a prune plan doomed their pack, or by two backups at once): harmless, prune removes the extra copies with their pack or when it repacks`,
          );
        }
        for (const p of r.problems) {
          c.out.warn(`${p.object}: ${p.message}`);
          if (p.blobs.length > 0)
            c.out.warn(`  blobs: ${p.blobs.slice(0, 5).join(", ")}${p.blobs.length > 5 ? ", ..." : ""}`);
          for (const a of p.affected) {
            c.out.warn(
              `  needed by snapshot ${a.snapshot.slice(0, 8)} (${a.time}): ${a.paths.slice(0, 10).join(", ")}${a.paths.length > 10 ? `, and ${a.paths.length - 10} more` : ""}`,
            );
          }
          const meaning = p.kind.startsWith("damaged-") && p.blobs.length === 0 && p.affected.length === 0;
          for (const n of p.neededBy.slice(0, 10)) c.out.warn(meaning ? `  it is ${n}` : `  needed by ${n}`);
          if (p.neededBy.length > 10) c.out.warn(`  and ${p.neededBy.length - 10} more`);
        }
        if (r.problems.length > 0) {
          process.exitCode = ExitCode.corruption;
          flushOutput();
          process.stderr.write(
            `error: the repository is damaged: ${r.problems.length} problem(s) listed above\n  hint: files not listed still restore; copy the repository before any repair\n`,
          );
        } else {
          c.out.info("no errors were found");
        }
      } finally {
        await repo.close();
      }
    });
}
