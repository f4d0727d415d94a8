import type { Command } from "commander";
import { ExitCode, LifeboatError } from "../../core/errors.js";
import { type DrillSummary, type RepositoryStatus, repositoryStatus } from "../../ops/drill/status.js";
import { parseDuration } from "../../ops/forget/policy.js";
import type { CliContext } from "../shell/context.js";
import { bytes, table } from "../shell/format.js";

/** A coarse age for people: 45s, 12m, 5h, 3d 4h. */
export function age(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}

const when = (iso: string) => new Date(iso).toISOString().replace("T", " ").slice(0, 16);

function drillCell(d: DrillSummary | undefined): string {
  if (!d) return "never";
  const verdict = d.ok ? "ok" : `FAILED (${d.failed || 1} problem${d.failed > 1 ? "s" : ""})`;
  return `${when(d.time)} (${age(d.ageSeconds)} ago) ${d.mode === "sample" ? "sample " : ""}${verdict}`;
}

function restoreCell(d: DrillSummary | undefined): string {
  if (!d) return "";
  const rate = d.mbPerSecond !== null ? `, ${d.mbPerSecond.toFixed(1)} MB/s` : "";
  return `${bytes(d.bytes)} in ${d.seconds.toFixed(d.seconds < 10 ? 2 : 1)}s${rate}`;
}

export function registerStatus(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("status")
    .description("per series: newest snapshot and its age, and when it was last proven restorable (drill)")
    .option(
      "--max-age <duration>",
      "a series whose newest snapshot is older than this missed its schedule: say so, notify, exit 5",
    )
    .addHelpText(
      "after",
      `
A series is the snapshots of one host and one set of paths (or one database source). For each:
how many snapshots, the newest and its age (and whether it is incomplete), the last restore
drill (when, passed or failed, restore time and MB/s) and the last one that passed. Then the
repository: snapshots, packs, prune plans waiting for running backups, sessions still running.
Reads only; nothing is changed.

Examples:
  lifeboat status
  lifeboat status --json | jq '.series[] | select(.lastOkDrill == null or .lastOkDrill.ageSeconds > 604800)'
  lifeboat drill && lifeboat status
  lifeboat status --max-age 26h --notify-url https://hooks.example/backup   (from cron, hourly)`,
    )
    .action(async (flags: { maxAge?: string }, cmd: Command) => {
      const c = ctx(cmd);
      let maxAge: number | undefined;
      if (flags.maxAge) {
        try {
          maxAge = parseDuration(flags.maxAge) / 1000;
        } catch (e) {
          throw new LifeboatError("USAGE", `--max-age: ${(e as Error).message}`, "e.g. --max-age 26h");
        }
      }
      const repo = await c.openRepo();
      let s: RepositoryStatus;
      try {
        s = await repositoryStatus(repo);
      } finally {
        await repo.close();
      }
      const late = maxAge === undefined ? [] : s.series.filter((x) => x.newest.ageSeconds > maxAge);
      if (late.length > 0) {
        process.exitCode = ExitCode.missedSchedule;
        for (const x of late)
          c.out.warn(
            `missed schedule: the newest snapshot of ${x.host} ${x.paths.join(" ")} is ${age(x.newest.ageSeconds)} old (limit ${flags.maxAge})`,
          );
        await c.notify({
          event: "missed-schedule",
          ok: false,
          command: "status",
          message: `${late.length} series missed their schedule (no snapshot within ${flags.maxAge})`,
          reasons: late.map((x) => `${x.host} ${x.paths.join(" ")}: newest ${age(x.newest.ageSeconds)} old`),
        });
      }
      c.out.emit({
        message_type: "status",
        ...s,
        missed_schedule: late.map((x) => ({ host: x.host, paths: x.paths })),
      });
      if (c.out.json) return;
      const live = s.liveSessions;
      c.out.result(
        `repository ${s.location}\n` +
          `  ${s.snapshots} snapshots in ${s.series.length} series, ${s.packs} packs (${bytes(s.packBytes)}), ` +
          `${s.prunePlans} prune plan${s.prunePlans === 1 ? "" : "s"} pending, ` +
          `${live.backup} backup${live.backup === 1 ? "" : "s"} and ${live.prune} prune${live.prune === 1 ? "" : "s"} running, ` +
          `${s.drills} drill record${s.drills === 1 ? "" : "s"}`,
      );
      if (s.series.length === 0) {
        c.out.result("no snapshots yet");
        return;
      }
      const rows = [["Host", "Paths", "Snaps", "Newest", "Age", "Last drill", "Restore", "Last passed"]];
      for (const x of s.series) {
        const okElsewhere =
          x.lastOkDrill && x.lastOkDrill.id !== x.lastDrill?.id
            ? `${when(x.lastOkDrill.time)} (${age(x.lastOkDrill.ageSeconds)} ago)`
            : x.lastOkDrill
              ? "(same)"
              : "never";
        rows.push([
          x.host,
          x.paths.join(" "),
          String(x.snapshots),
          `${x.newest.id.slice(0, 8)}${x.newest.incomplete ? " (incomplete)" : ""}`,
          age(x.newest.ageSeconds),
          drillCell(x.lastDrill),
          restoreCell(x.lastDrill),
          okElsewhere,
        ]);
      }
      c.out.result(`\n${table(rows)}`);
      for (const x of s.series) {
        const f = x.unresolvedFailure;
        if (!f) continue;
        c.out.result(
          `\n${x.host} ${x.paths.join(" ")}: drill of ${f.snapshot.slice(0, 8)} FAILED ${when(f.time)}` +
            (f.firstFailure ? `: ${f.firstFailure.path}: ${f.firstFailure.reason}` : "") +
            (f.engineCheck && f.engineCheck !== "ok" ? ` (database check: ${f.engineCheck})` : ""),
        );
      }
      const unproven = s.series.filter((x) => !x.newestProven).length;
      if (unproven > 0)
        c.out.info(
          `\n${unproven} series whose newest snapshot has not passed a full drill: run \`lifeboat drill --source PATH\``,
        );
    });
}
