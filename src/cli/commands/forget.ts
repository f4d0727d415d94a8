import type { Command } from "commander";
import { LifeboatError } from "../../core/errors.js";
import { type ForgetResult, forget, forgetIds, type GroupKey } from "../../ops/forget/forget.js";
import { type Policy, parseDuration } from "../../ops/forget/policy.js";
import { findSnapshot } from "../../repo/find-snapshot.js";
import type { CliContext } from "../shell/context.js";
import { table } from "../shell/format.js";
import { forgetAccountCli } from "./account-flags.js";
import { openAccountRepo } from "./fleet-repos.js";
import { addPruneOptions, type PruneFlags, runPrune } from "./prune.js";

interface ForgetFlags extends PruneFlags {
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  keepWithin?: string;
  keepTag: string[];
  groupBy: string;
  host?: string;
  tag: string[];
  prune?: boolean;
  keepBeforeAnomaly: string;
  account?: string;
  fleet?: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

function count(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v))
    throw new LifeboatError(
      "USAGE",
      `--${name} ${JSON.stringify(v)} is not a count`,
      `give a whole number, e.g. --${name} 7`,
    );
  return Number(v);
}

function policyOf(f: ForgetFlags): Policy {
  let within: number | undefined;
  if (f.keepWithin) {
    try {
      within = parseDuration(f.keepWithin);
    } catch (e) {
      throw new LifeboatError(
        "USAGE",
        `--keep-within: ${(e as Error).message}`,
        "give e.g. --keep-within 30d",
      );
    }
  }
  const p: Policy = { tags: f.keepTag };
  const set = (k: keyof Policy, v: number | undefined) => {
    if (v !== undefined) (p as Record<string, unknown>)[k] = v;
  };
  set("last", count("keep-last", f.keepLast));
  set("hourly", count("keep-hourly", f.keepHourly));
  set("daily", count("keep-daily", f.keepDaily));
  set("weekly", count("keep-weekly", f.keepWeekly));
  set("monthly", count("keep-monthly", f.keepMonthly));
  set("yearly", count("keep-yearly", f.keepYearly));
  set("within", within);
  return p;
}

function groupKeys(s: string): GroupKey[] {
  if (s === "" || s === "none") return [];
  const keys = s.split(",").map((k) => k.trim());
  for (const k of keys)
    if (k !== "host" && k !== "paths" && k !== "tags")
      throw new LifeboatError(
        "USAGE",
        `--group-by: unknown key ${JSON.stringify(k)}`,
        "use host, paths, tags (comma-separated) or none",
      );
  return keys as GroupKey[];
}

export function registerForget(program: Command, ctx: (c: Command) => CliContext): void {
  addPruneOptions(
    program
      .command("forget")
      .description("remove snapshots by id or by a retention policy (data is freed by prune)")
      .argument("[snapshots...]", "snapshot ids (or unique prefixes) to remove")
      .option("-l, --keep-last <n>", "keep the n newest snapshots")
      .option("-H, --keep-hourly <n>", "keep the newest snapshot of each of the last n hours that have one")
      .option("-d, --keep-daily <n>", "... of the last n days")
      .option("-w, --keep-weekly <n>", "... of the last n ISO weeks")
      .option("-m, --keep-monthly <n>", "... of the last n months")
      .option("-y, --keep-yearly <n>", "... of the last n years")
      .option(
        "--keep-within <duration>",
        "keep everything within this long of the newest snapshot, e.g. 30d, 1y6m",
      )
      .option("--keep-tag <tag>", "keep snapshots with this tag (repeatable)", collect, [])
      .option(
        "-g, --group-by <keys>",
        "apply the policy per group of host, paths, tags (or none)",
        "host,paths",
      )
      .option("--host <name>", "only consider snapshots of this host")
      .option(
        "--tag <tag>",
        "only consider snapshots with this tag (repeatable: all must match)",
        collect,
        [],
      )
      .option(
        "--account <id>",
        "a fleet account: apply the policy to its own series (found in its catalogue)",
      )
      .option("--fleet <name>", "with --account: of this fleet")
      .option("-n, --dry-run", "show what would be kept and removed, and why; change nothing")
      .option("--prune", "run prune afterwards to free the space")
      .option(
        "--keep-before-anomaly <n>",
        "always keep the n newest snapshots before one flagged as anomalous, until it is acknowledged",
        "3",
      ),
  )
    .addHelpText(
      "after",
      `
Each rule keeps snapshots; a snapshot is removed only if no rule keeps it. Whatever the
policy, snapshots flagged as anomalous (see \`lifeboat snapshots\`) or pinned by \`guard\` are
kept, with the newest --keep-before-anomaly good ones before them, until \`lifeboat ack\`. Periods use local
time (set TZ to change it). A policy with no rule is refused, so nothing is removed by mistake.

Examples:
  lifeboat forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run
  lifeboat forget --keep-within 30d --keep-tag release --prune
  lifeboat forget 1a2b3c4d`,
    )
    .action(async (ids: string[], flags: ForgetFlags, cmd: Command) => {
      const c = ctx(cmd);
      const policy = policyOf(flags);
      const groupBy = groupKeys(flags.groupBy);
      const repo = flags.account ? await openAccountRepo(c, flags.account, flags.fleet) : await c.openRepo();
      try {
        let removed: string[];
        if (flags.account) {
          removed = await forgetAccountCli(c, repo, {
            account: flags.account,
            ...(flags.fleet ? { fleet: flags.fleet } : {}),
            policy,
            ids,
            dryRun: flags.dryRun === true,
          });
        } else if (ids.length > 0) {
          const snaps = [];
          for (const id of ids) snaps.push((await findSnapshot(repo, id)).id);
          removed = await forgetIds(repo, snaps, flags.dryRun === true);
          c.out.emit({ message_type: "summary", action: "forget", dry_run: flags.dryRun === true, removed });
          for (const id of removed)
            c.out.info(`${flags.dryRun ? "would remove" : "removed"} snapshot ${id.slice(0, 8)}`);
        } else {
          const r = await forget(repo, {
            policy,
            groupBy,
            ...(flags.host ? { host: flags.host } : {}),
            tags: flags.tag,
            dryRun: flags.dryRun === true,
            keepBeforeAnomaly: count("keep-before-anomaly", flags.keepBeforeAnomaly) ?? 3,
          });
          removed = r.removed;
          report(c, r, flags.dryRun === true);
        }
        if (flags.prune && !flags.dryRun && removed.length > 0) await runPrune(c, repo, flags);
        else if (flags.prune && flags.dryRun) await runPrune(c, repo, { ...flags, dryRun: true });
      } finally {
        await repo.close();
      }
    });
}

function report(c: CliContext, r: ForgetResult, dryRun: boolean): void {
  c.out.emit({
    message_type: "summary",
    action: "forget",
    dry_run: dryRun,
    groups: r.groups.map((g) => ({
      group: g.key,
      keep: g.decisions
        .filter((d) => d.keep)
        .map((d) => ({ id: d.snapshot.id, time: d.snapshot.time, reasons: d.reasons })),
      remove: g.decisions.filter((d) => !d.keep).map((d) => ({ id: d.snapshot.id, time: d.snapshot.time })),
    })),
    removed: r.removed,
    retained: r.retained,
  });
  for (const g of r.groups) {
    const key = Object.entries(g.key)
      .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(" ") : String(v)}`)
      .join(", ");
    c.out.info(`snapshots of ${key || "all"}:`);
    const rows = [["ID", "Time", "", "Reasons"]];
    for (const d of g.decisions)
      rows.push([
        d.snapshot.id.slice(0, 8),
        new Date(d.snapshot.time).toISOString().replace("T", " ").slice(0, 19),
        d.keep
          ? "keep"
          : dryRun
            ? "would remove"
            : r.retained.some((x) => x.id === d.snapshot.id)
              ? "retained"
              : "removed",
        d.reasons.join(", "),
      ]);
    c.out.info(table(rows));
  }
  c.out.info(`${dryRun ? "would remove" : "removed"} ${r.removed.length} snapshot(s)`);
  if (r.retained.length > 0) {
    const last = r.retained
      .map((x) => x.until ?? "")
      .sort()
      .at(-1);
    c.out.info(
      `${r.retained.length} snapshot(s) the policy removes are under retention${last ? ` until ${last} at the latest` : ""}: kept; a forget after that removes them`,
    );
  }
}
