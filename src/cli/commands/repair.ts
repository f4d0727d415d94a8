import type { Command } from "commander";
import { ExitCode, LifeboatError } from "../../core/errors.js";
import { healFromCopy } from "../../ops/repair/heal.js";
import { repairIndex } from "../../ops/repair/repair-index.js";
import { repairSnapshots } from "../../ops/repair/repair-snapshots.js";
import { undelete } from "../../ops/repair/undelete.js";
import { Repository } from "../../repo/repository.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";
import { flushOutput } from "../shell/output.js";
import { fromRepoPassword } from "../shell/password.js";

export function registerRepair(program: Command, ctx: (c: Command) => CliContext): void {
  const repair = program
    .command("repair")
    .description(
      "heal packs from a copy, rebuild the index, rewrite snapshots around lost data, undo deletes",
    )
    .addHelpText(
      "after",
      `
After damage (see \`lifeboat check\`), in this order:
  1. copy the repository somewhere first if you can;
  2. lifeboat repair packs --from-repo COPY   with a second repository (a \`copy\` target):
                                  the lost data rebuilt from it, damaged packs dropped;
  3. lifeboat repair index        the index again from what the packs say they hold;
  4. lifeboat repair snapshots    snapshots rewritten without the files whose data is gone.
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
    .command("packs")
    .description("rebuild the data of missing or damaged packs from a second repository (a copy)")
    .option("--from-repo <url>", "the repository holding a copy (env LIFEBOAT_FROM_REPOSITORY)")
    .option("--from-password-file <file>", "its password file (env LIFEBOAT_FROM_PASSWORD_FILE)")
    .option(
      "--from-password-command <cmd>",
      "a command printing its password (env LIFEBOAT_FROM_PASSWORD_COMMAND)",
    )
    .option("-n, --dry-run", "find the damage and what the copy can give back; change nothing")
    .addHelpText(
      "after",
      `
Reads every pack (as \`check --read-data\`) to find the blobs this repository lost: those of
missing packs, damaged blobs, blobs the index lacks. The two repositories have different keys
and chunk boundaries, so healing goes by content: each file that holds a lost blob is read
from the copy (the copy of the same snapshot, else any snapshot with that path and size),
chunked with this repository's keys, and the chunks whose ids were lost are stored again; a
lost folder is rebuilt from the copy's folder at the same path; archived WAL and replication
segments come back from the copied records. Then the good blobs of damaged packs go into new
packs, one index file replaces the others without the bad packs, and the damaged packs are
deleted. Run it while no backup writes into this repository.

Blobs no copy holds are listed with the snapshots and files that need them; \`lifeboat repair
snapshots\` then rewrites those snapshots around them.

Examples:
  lifeboat repair packs --from-repo sftp:backup@offsite:/srv/lifeboat --from-password-file ~/.offsite.pw --dry-run
  lifeboat repair packs --from-repo /mnt/usb/lifeboat --from-password-file ~/.usb.pw

Exit codes: 0 everything lost was rebuilt (or nothing was lost); 14 some lost blobs are in no
copy (listed); 2 no --from-repo, or it is this repository; 10 no repository there; 12 wrong
password for either.`,
    )
    .action(
      async (
        flags: {
          fromRepo?: string;
          fromPasswordFile?: string;
          fromPasswordCommand?: string;
          dryRun?: boolean;
        },
        cmd: Command,
      ) => {
        const c = ctx(cmd);
        flags.fromRepo ??= process.env.LIFEBOAT_FROM_REPOSITORY;
        if (!flags.fromRepo)
          throw new LifeboatError(
            "USAGE",
            "repair packs needs the repository holding a copy",
            "give --from-repo URL (or LIFEBOAT_FROM_REPOSITORY)",
          );
        const backend = await c.backend(flags.fromRepo);
        if (!(await Repository.exists(backend))) throw Repository.notFound(backend);
        const other = await Repository.open(backend, await fromRepoPassword(flags));
        try {
          const repo = await c.openRepo();
          try {
            if (repo.config.id === other.config.id)
              throw new LifeboatError(
                "USAGE",
                "--from-repo is this repository itself",
                "give the repository that `lifeboat copy` copies into (another place, other keys)",
              );
            const dryRun = flags.dryRun === true;
            const r = await healFromCopy(repo, other, { dryRun, onStep: (m) => c.out.debug(m) });
            c.out.emit({ message_type: "summary", action: "repair-packs", dry_run: dryRun, ...r });
            for (const b of r.badPacks)
              c.out.info(
                `pack ${b.pack.slice(0, 12)}: ${b.why === "missing" ? "missing" : `${b.damagedBlobs} of ${b.blobs} blob(s) damaged`}`,
              );
            if (r.badPacks.length === 0 && r.lost === 0) {
              c.out.info("no pack is missing or damaged: nothing to heal");
              return;
            }
            c.out.info(
              `${r.lost} blob(s) lost; ${dryRun ? "the copy can give back" : "rebuilt from the copy"} ${r.healed} (${r.healedBlobs.data} data, ${r.healedBlobs.tree} tree) from ${r.filesRead} file(s) (${bytes(r.bytesRead)} read)${r.unneeded ? `; ${r.unneeded} nothing needs` : ""}`,
            );
            if (!dryRun)
              c.out.info(
                `kept ${r.salvaged} good blob(s) of damaged packs; dropped ${r.droppedPacks.length} pack(s) from the index`,
              );
            for (const u of r.unhealed.slice(0, 20)) {
              const where = u.neededBy
                .slice(0, 3)
                .map((n) => (n.snapshot ? `snapshot ${n.snapshot.slice(0, 8)} ${n.path}` : n.path))
                .join(", ");
              c.out.warn(`${u.type} blob ${u.blob.slice(0, 12)} is in no copy; needed by ${where}`);
            }
            if (r.unhealed.length > 20) c.out.warn(`... and ${r.unhealed.length - 20} more`);
            if (r.unhealed.length > 0) {
              process.exitCode = ExitCode.corruption;
              const message = `${r.unhealed.length} lost blob(s) are in no copy (listed above)`;
              const hint = `${dryRun ? "run without --dry-run to heal the rest, then " : ""}\`lifeboat repair snapshots\` rewrites the snapshots that need them around them`;
              flushOutput(); // the blobs "listed above" come first
              process.stderr.write(
                c.out.json
                  ? `${JSON.stringify({ message_type: "error", code: "CORRUPTION", message, hint })}\n`
                  : `error: ${message}\n  hint: ${hint}\n`,
              );
            } else if (!dryRun) c.out.info("healed: run `lifeboat check --read-data` to confirm");
          } finally {
            await repo.close();
          }
        } finally {
          await other.close();
        }
      },
    );
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
