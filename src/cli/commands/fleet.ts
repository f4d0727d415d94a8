import type { Command } from "commander";
import { eraseAccount, planErase } from "../../app/fleet/erase.js";
import type { FleetDef } from "../../app/fleet/fleet-config.js";
import { startMetrics } from "../../app/fleet/metrics.js";
import type { FleetRepos } from "../../app/fleet/repos.js";
import { restoreAll } from "../../app/fleet/restore-all.js";
import { type FleetLoop, openFleet, runFleet, startFleetLoop } from "../../app/fleet/runtime.js";
import { definitionToStore, type FleetFlags, selectFleets } from "../../app/fleet/select.js";
import { accountStatus, fleetStatus } from "../../app/fleet/status.js";
import { ExitCode, LifeboatError } from "../../core/errors.js";
import type { CliContext } from "../shell/context.js";
import { bytes, table } from "../shell/format.js";
import { cliFleetRepos, openAccountRepo } from "./fleet-repos.js";

function parseNow(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const t = Date.parse(s);
  if (Number.isNaN(t) || !/\d{4}-\d{2}-\d{2}T/.test(s))
    throw new LifeboatError(
      "USAGE",
      `--now ${JSON.stringify(s)} is not an ISO time`,
      "e.g. --now 2026-03-08T02:30:00Z",
    );
  return t;
}

const fleetOptions = (cmd: Command) =>
  cmd
    .option("--name <fleet>", "the fleet (from the config file, or with --accounts a new one)")
    .option(
      "--accounts <file|glob>",
      "accounts: a JSON-lines or CSV file (id,timezone,path,...), or a folder glob such as '/srv/mail/*'",
    )
    .option("--window <start-end>", "with --accounts: local window, default 01:00-05:00")
    .option("--rpo <duration>", "with --accounts: recovery point objective, default 24h")
    .option("--timezone <tz>", "with --accounts: timezone of accounts that give none")
    .option(
      "--kind <kind>",
      "with --accounts: folder (default); rows, imap and dav fleets need their server in a config file",
    )
    .option(
      "--state <file>",
      "the fleet's SQLite state file (default the shared $XDG_STATE_HOME/lifeboat/state.db, or a fleet-NAME.db an earlier version left)",
    )
    .option(
      "--queue <url>",
      "with --accounts: postgres://... to schedule and queue in PostgreSQL (many hosts)",
    )
    .option("--concurrency <n>", "with --accounts: runs at once on this host (default 4)")
    .option(
      "--repository <url>",
      "with --accounts: a repository of the fleet (repeatable: each account is placed in one and stays there; default -r)",
      (v: string, prev: string[] = []) => [...prev, v],
    );

const EXIT_CODES = `
Exit codes: 0 ok, 1 an account failed (the others went on), 2 bad usage or a bad fleet
definition, 3 an account source could not be listed or had bad accounts, 10 no repository,
12 wrong password, 13 no snapshot of the account, 16 queue or database unreachable.`;

export function registerFleet(program: Command, ctx: (c: Command) => CliContext): void {
  const fleet = program
    .command("fleet")
    .description("back up every account of a service in its own night; status, erase, whole-service restore")
    .addHelpText("after", "\nSee docs/fleet.md for fleet definitions, scheduling and the PostgreSQL queue.");

  fleetOptions(
    fleet.command("run").description("back up the accounts that are due (continuously, or once with --once)"),
  )
    .option("--once", "do what is due now and exit (as from cron)")
    .option("--now <iso-time>", "act as if it were this time (simulated clock; implies --once)")
    .option("--catch-up", "run accounts whose window was missed at once, not in their next window")
    .option("--metrics <host:port>", "serve Prometheus metrics at http://HOST:PORT/metrics")
    .option("--ui <host:port>", "serve the web console beside the fleet (docs/api.md), loopback unless TLS")
    .option("--tls-cert <file>", "with --ui: serve HTTPS with this certificate (PEM)")
    .option("--tls-key <file>", "with --ui: ... and this private key (PEM)")
    .option("--tick <seconds>", "without --once: how often to look for due accounts", "10")
    .option("--no-drills", "do not drill the night's sample of accounts")
    .addHelpText(
      "after",
      `
Each account is backed up once per window of its own timezone (default 01:00-05:00 local),
starting at a steady time in the first half; an account whose data has not changed since its
last snapshot is recorded as checked, without a new snapshot. What an account holds, by the
fleet's "kind": its folder, its rows of a shared PostgreSQL or MariaDB database, its IMAP
mailbox ("imap") or its CardDAV/CalDAV collections ("dav"), each mail/DAV account logging in with a
password from the fleet's "passwordCommand" (run with the account id as $1) or "passwordFile"
("{id}" in the path), or (IMAP) an OAuth2 token from "oauth2TokenCommand"; passwords and tokens
are never stored. A fleet with "repositories" (or repeated --repository) places each account
in one of them for good. Accounts come from a folder glob, a file
(JSON lines or CSV) or an SQL query against PostgreSQL or MariaDB/MySQL. State: a local
SQLite file, or PostgreSQL with "queue" (pg-boss), where any number of hosts run \`fleet run\`
as workers.
${EXIT_CODES}

Examples:
  lifeboat -r /srv/backup fleet run --name mail --accounts accounts.jsonl --window 01:00-05:00 --rpo 24h
  lifeboat fleet run --config /etc/lifeboat/fleet.json --once        from cron every 5 minutes
  lifeboat fleet run --config fleet.json --now 2026-03-08T02:30:00Z  a simulated tick
  lifeboat fleet run --config fleet.json --metrics 127.0.0.1:9464
  lifeboat fleet run --config fleet.json --ui 127.0.0.1:8080         with the web console`,
    )
    .action(
      async (
        flags: FleetFlags & {
          once?: boolean;
          now?: string;
          metrics?: string;
          ui?: string;
          tlsCert?: string;
          tlsKey?: string;
          tick: string;
          drills: boolean;
        },
        cmd: Command,
      ) => {
        const c = ctx(cmd);
        const now = parseNow(flags.now);
        const defs = await selectFleets(c.opts.config, flags);
        const once = flags.once === true || now !== undefined;
        const ac = new AbortController();
        process.removeAllListeners("SIGINT");
        process.removeAllListeners("SIGTERM");
        process.on("SIGINT", () => ac.abort());
        process.on("SIGTERM", () => ac.abort());
        let worst: number = ExitCode.ok;
        const opened: { def: FleetDef; f: Awaited<ReturnType<typeof openFleet>>; repos: FleetRepos }[] = [];
        for (const def of defs) {
          const repos = cliFleetRepos(c, def);
          opened.push({ def, f: await openFleet(def, { withQueue: true }), repos });
          // Every repository is opened up front: a wrong URL or password fails here, not per account.
          for (const k of repos.keys) await repos.open(k);
        }
        const metrics = flags.metrics
          ? await startMetrics(flags.metrics, () =>
              Promise.all(opened.map((o) => fleetStatus(o.def, o.f.store, now ?? Date.now()))),
            )
          : undefined;
        if (metrics) c.out.info(`metrics at ${metrics.url}`);
        // The console beside the fleet reads the same open stores (never the CLI's output).
        // (loaded only with --ui: the console's modules are not every fleet command's start-up cost)
        const ui = flags.ui
          ? await (await import("./ui.js")).startConsoleFromCli(
              c,
              {
                listen: flags.ui,
                ...(flags.tlsCert ? { tlsCert: flags.tlsCert } : {}),
                ...(flags.tlsKey ? { tlsKey: flags.tlsKey } : {}),
              },
              { fleets: opened.map((o) => ({ def: o.def, store: o.f.store })) },
            )
          : undefined;
        try {
          await Promise.all(
            opened.map(async ({ def, f, repos }) => {
              await f.store.setMeta(def.name, "definition", definitionToStore(def));
              const r = await runFleet(f, repos, {
                now,
                once,
                drills: flags.drills,
                tickMs: Math.max(1, Number(flags.tick)) * 1000,
                signal: ac.signal,
                onSync: (s) => {
                  for (const p of s.problems) c.out.warn(p);
                  if (s.problems.length > 0) worst = Math.max(worst, ExitCode.incomplete);
                  c.out.info(
                    `fleet ${def.name}: ${s.accounts} accounts (${s.added} new, ${s.changed} changed)`,
                  );
                  c.out.emit({
                    message_type: "fleet_sync",
                    fleet: def.name,
                    accounts: s.accounts,
                    added: s.added,
                    changed: s.changed,
                    problems: s.problems,
                  });
                },
                onEvent: (e) => {
                  if (e.outcome === "failed") {
                    worst = Math.max(worst, ExitCode.failure);
                    c.out.warn(`fleet ${e.fleet}: account ${e.account}: ${e.error}`);
                  }
                  if (c.out.verbose > 0 || e.outcome === "failed")
                    c.out.info(
                      `fleet ${e.fleet}: ${e.account} ${e.outcome}${e.snapshot ? ` ${e.snapshot.slice(0, 8)}` : ""}${e.seconds !== undefined ? ` in ${e.seconds.toFixed(2)}s` : ""}`,
                    );
                  c.out.emit({ message_type: "fleet_account", ...e });
                },
              });
              const st = await fleetStatus(def, f.store, now ?? Date.now());
              c.out.info(
                `fleet ${def.name}: ${r.counts.snapshot} snapshots, ${r.counts.unchanged} unchanged, ${r.counts.failed} failed, ${r.counts.missed} missed, ${r.counts.duplicate} duplicate deliveries; ${r.drills.drilled} drilled; ${r.seconds.toFixed(1)}s; over RPO: ${st.over_rpo}, never backed up: ${st.never_backed_up}`,
              );
              c.out.emit({
                message_type: "fleet_summary",
                fleet: def.name,
                ...r.counts,
                drills: r.drills,
                seconds: r.seconds,
                over_rpo: st.over_rpo,
                never_backed_up: st.never_backed_up,
              });
              if (st.over_rpo > 0) {
                const key = `${st.over_rpo}`;
                if ((await f.store.getMeta(def.name, "rpo-notified")) !== key) {
                  await c.notify({
                    event: "missed-schedule",
                    ok: false,
                    command: "fleet run",
                    message: `fleet ${def.name}: ${st.over_rpo} of ${st.accounts} accounts are over their RPO of ${st.rpo_hours} h (see lifeboat fleet status --name ${def.name})`,
                  });
                  await f.store.setMeta(def.name, "rpo-notified", key);
                }
              } else await f.store.setMeta(def.name, "rpo-notified", undefined);
            }),
          );
        } finally {
          await ui?.close();
          await metrics?.close();
          for (const o of opened) {
            await o.f.close();
            await o.repos.close();
          }
        }
        process.exitCode = worst;
      },
    );

  fleetOptions(
    fleet.command("status").description("how well each fleet is protected: RPO, backlog, failures, drills"),
  )
    .option("--account <id>", "one account: its window, next run, newest snapshot, runs and drills")
    .option("--now <iso-time>", "figures as of this time (simulated clock)")
    .addHelpText(
      "after",
      `
Per fleet: accounts protected / at risk / over RPO / never backed up, the backlog (due, running,
done, failed, missed), p50/p99/max age of the newest good snapshot, the last 24 hours of runs,
failures with their reason, and the share of accounts proven restorable by a drill in 30 days.
Reads only the fleet's state (no repository access).
${EXIT_CODES} 5: some account is over its RPO.

Examples:
  lifeboat fleet status --config fleet.json
  lifeboat fleet status --name mail --account ann --json`,
    )
    .action(async (flags: FleetFlags & { account?: string; now?: string }, cmd: Command) => {
      const c = ctx(cmd);
      const now = parseNow(flags.now) ?? Date.now();
      const defs = await selectFleets(c.opts.config, flags);
      let over = false;
      for (const def of defs) {
        const f = await openFleet(def);
        try {
          if (flags.account) {
            const a = await accountStatus(def, f.store, flags.account, now);
            if (!a) {
              if (defs.length > 1) continue;
              throw new LifeboatError(
                "USAGE",
                `fleet ${def.name} has no account ${flags.account}`,
                "check the id (accounts join at the next `fleet run`)",
              );
            }
            if (a.rpo === "over-rpo") over = true;
            if (c.out.json) c.out.emit({ message_type: "fleet_account_status", ...a });
            else {
              c.out.result(`fleet ${a.fleet}, account ${a.account} (${a.timezone}): ${a.rpo}, ${a.state}`);
              c.out.result(
                `  newest good: ${a.newest_good ?? "never"}${a.age_hours !== null ? ` (${a.age_hours} h ago)` : ""}, snapshot ${a.last_snapshot?.slice(0, 8) ?? "-"}`,
              );
              c.out.result(
                `  window: ${a.window} (${a.window_opens} - ${a.window_closes}), starts ${a.starts_at}`,
              );
              if (a.last_error) c.out.result(`  last error: ${a.last_error}`);
              c.out.result(
                `  repository: ${a.repository ?? "(global)"}; last drill: ${a.last_drill ? `${a.last_drill.at} ${a.last_drill.ok ? "ok" : "FAILED"}` : "none"}`,
              );
              for (const r of a.runs.slice(-5))
                c.out.result(
                  `  ${r.at} ${r.window} ${r.outcome}${r.snapshot ? ` ${r.snapshot.slice(0, 8)}` : ""}${r.error ? `: ${r.error}` : ""}`,
                );
            }
            continue;
          }
          const s = await fleetStatus(def, f.store, now);
          if (s.over_rpo > 0) over = true;
          if (c.out.json) {
            c.out.emit({ message_type: "fleet_status", ...s });
            continue;
          }
          c.out.result(`fleet ${s.fleet}: ${s.accounts} accounts, window ${s.window}, RPO ${s.rpo_hours} h`);
          c.out.result(
            table([
              ["protected", "at risk", "over RPO", "never", "age p50", "p99", "max"],
              [
                s.protected,
                s.at_risk,
                s.over_rpo,
                s.never_backed_up,
                `${s.age_hours.p50} h`,
                `${s.age_hours.p99} h`,
                `${s.age_hours.max} h`,
              ].map(String),
            ]),
          );
          const b = s.backlog;
          c.out.result(
            `backlog: ${b.due} due, ${b.running} running, ${b.done} done, ${b.failed} failed, ${b.missed} missed, ${b.new} new`,
          );
          const w = s.last_window;
          c.out.result(
            `last 24 h: ${w.runs} runs (${w.snapshots} snapshots, ${w.unchanged} unchanged, ${w.failed} failed), ${w.missed} missed windows, ${w.seconds}s from first start to last report`,
          );
          c.out.result(
            `drills: ${s.drills.proven_30d} accounts proven restorable in 30 days (${(s.drills.fraction_30d * 100).toFixed(1)} %)`,
          );
          for (const x of s.failures.slice(0, 20)) c.out.result(`  failing: ${x.account}: ${x.reason}`);
          if (s.failures.length > 20)
            c.out.result(`  ... and ${s.failures.length - 20} more (--json lists all)`);
        } finally {
          await f.close();
        }
      }
      if (over) process.exitCode = ExitCode.missedSchedule;
    });

  fleetOptions(
    fleet
      .command("erase")
      .description("forget every snapshot of one account and prune (dry run unless --yes)"),
  )
    .requiredOption("--account <id>", "the account to erase")
    .option("--yes", "really erase (without it: show what would be erased)")
    .addHelpText(
      "after",
      `
For an account that closed its contract or asked to be forgotten: every snapshot of it is
forgotten, its catalogue and fleet state dropped, then the repository is pruned. Data other
accounts share (deduplicated) stays. On Object Lock storage, objects under retention stay until
their retention ends; run \`lifeboat prune\` then to finish the erasure.
${EXIT_CODES}

Examples:
  lifeboat fleet erase --name mail --account ann          dry run
  lifeboat fleet erase --name mail --account ann --yes`,
    )
    .action(async (flags: FleetFlags & { account: string; yes?: boolean }, cmd: Command) => {
      const c = ctx(cmd);
      const defs = await selectFleets(c.opts.config, flags).catch((e) => {
        if (flags.name || flags.accounts) throw e;
        return [] as FleetDef[];
      });
      const def = defs[0];
      // Several repositories: the one the fleet's state (or, with no state, a catalogue) names.
      const repo = await openAccountRepo(c, flags.account, def?.name, def ? [def] : []);
      try {
        const plan = await planErase(repo, flags.account, def?.name);
        if (plan.snapshots.length === 0)
          throw new LifeboatError(
            "SNAPSHOT_NOT_FOUND",
            `account ${flags.account} has no snapshot in this repository`,
            "check the id and the repository; nothing was changed",
          );
        if (!flags.yes) {
          c.out.result(
            `would forget ${plan.snapshots.length} snapshot(s) of account ${flags.account}${def ? ` (fleet ${def.name})` : ""}, then prune:`,
          );
          for (const s of plan.snapshots) c.out.result(`  ${s.id.slice(0, 8)} ${s.time}`);
          c.out.result("nothing changed; run again with --yes to erase");
          c.out.emit({
            message_type: "fleet_erase_plan",
            account: flags.account,
            fleet: def?.name ?? null,
            snapshots: plan.snapshots,
            dry_run: true,
          });
          return;
        }
        const f = def ? await openFleet(def) : undefined;
        try {
          const r = await eraseAccount(repo, flags.account, {
            fleet: def?.name,
            store: f?.store,
            onStep: (m) => c.out.debug(m),
          });
          c.out.info(
            `erased account ${flags.account}: ${r.forgotten} snapshot(s) forgotten, ${r.packsDeleted} pack(s) deleted, ${bytes(r.bytesFreed)} freed`,
          );
          if (r.retained > 0)
            c.out.warn(
              `${r.retained} object(s) are under retention (Object Lock) and stay until it ends; run \`lifeboat prune\` after that to finish the erasure`,
            );
          for (const w of r.waiting)
            c.out.warn(`prune plan waiting: ${w}; run \`lifeboat prune\` later to finish the erasure`);
          c.out.emit({
            message_type: "fleet_erase",
            account: r.account,
            fleet: r.fleet ?? null,
            forgotten: r.forgotten,
            packs_deleted: r.packsDeleted,
            bytes_freed: r.bytesFreed,
            retained: r.retained,
            waiting: r.waiting,
          });
        } finally {
          await f?.close();
        }
      } finally {
        await repo.close();
      }
    });

  fleetOptions(
    fleet
      .command("restore")
      .description("whole-service restore: every account back, in priority order, in parallel, resumable"),
  )
    .requiredOption("--all", "every account of the fleet")
    .option(
      "--target <dir>",
      "restore under DIR/<account> instead of in place (folders to their paths, rows into the shared tables, mail and DAV accounts to their servers)",
    )
    .option("--parallel <n>", "accounts restored at once", "8")
    .option("--run <name>", "name of this restore run; the same name resumes it", "default")
    .option("--time <iso-time>", "each account's newest snapshot at or before this time")
    .addHelpText(
      "after",
      `
The day everything is lost: each account's newest snapshot (from its catalogue) is restored
— a folder account into its folder, a rows account into the shared tables for that account
alone, a mail or DAV account back into the account on its server (missing messages and items
added, nothing there changed or deleted) — in priority order (the fleet's "priority": an account field, higher first, or a file of
ids), several at once. Each result is recorded as it lands: after a crash, the same command
skips what is already back. Prints one line per account and the total time.
${EXIT_CODES}

Examples:
  lifeboat fleet restore --all --config fleet.json --parallel 16
  lifeboat fleet restore --all --name mail --target /mnt/recovered`,
    )
    .action(
      async (
        flags: FleetFlags & { target?: string; parallel: string; run: string; time?: string },
        cmd: Command,
      ) => {
        const c = ctx(cmd);
        const at = flags.time ? new Date(parseNow(flags.time)!) : undefined;
        const defs = await selectFleets(c.opts.config, flags);
        let failed = 0;
        for (const def of defs) {
          const f = await openFleet(def);
          const repos = cliFleetRepos(c, def);
          try {
            const r = await restoreAll(repos, def, f.store, {
              target: flags.target,
              parallel: Number(flags.parallel),
              run: flags.run,
              at,
              onAccount: (a) => {
                if (!a.ok) c.out.warn(`fleet ${def.name}: account ${a.account}: ${a.error}`);
                else
                  c.out.debug(
                    `fleet ${def.name}: ${a.account} ${a.skipped ? "already restored" : `restored in ${a.seconds.toFixed(2)}s`}`,
                  );
                c.out.emit({ message_type: "fleet_restore_account", fleet: def.name, ...a });
              },
            });
            failed += r.failed;
            c.out.info(
              `fleet ${def.name}: ${r.restored} accounts restored, ${r.skipped} already restored, ${r.failed} failed, of ${r.accounts}, in ${r.seconds.toFixed(1)}s`,
            );
            c.out.emit({
              message_type: "fleet_restore_summary",
              fleet: def.name,
              run: r.run,
              accounts: r.accounts,
              restored: r.restored,
              skipped: r.skipped,
              failed: r.failed,
              seconds: r.seconds,
            });
          } finally {
            await repos.close();
            await f.close();
          }
        }
        if (failed > 0) process.exitCode = ExitCode.failure;
      },
    );
}

/**
 * The daemon's fleets: each opened once (the fleets without their own `state` or `queue` share
 * the daemon's state file), then ticked by the daemon's one loop beside its jobs. A fleet that
 * cannot open is reported and left out; the others run.
 */
export async function openDaemonFleets(
  c: CliContext,
): Promise<{ count: number; tick(): Promise<void>; close(): Promise<void> }> {
  const defs = await selectFleets(c.opts.config, {});
  const loops: { loop: FleetLoop; close(): Promise<void> }[] = [];
  for (const def of defs) {
    let f: Awaited<ReturnType<typeof openFleet>> | undefined;
    const repos = cliFleetRepos(c, def);
    try {
      f = await openFleet(def, { withQueue: true });
      for (const k of repos.keys) await repos.open(k);
      await f.store.setMeta(def.name, "definition", definitionToStore(def));
      const loop = await startFleetLoop(f, repos, {
        once: false,
        onSync: (s) => {
          for (const p of s.problems) c.out.warn(p);
        },
        onEvent: (e) => {
          if (e.outcome === "failed") c.out.warn(`fleet ${e.fleet}: account ${e.account}: ${e.error}`);
          c.out.emit({ message_type: "fleet_account", ...e });
        },
      });
      const opened = f;
      loops.push({
        loop,
        close: async () => {
          await opened.close();
          await repos.close();
        },
      });
    } catch (e) {
      c.out.warn(`fleet ${def.name}: ${(e as Error).message}`);
      await f?.close().catch(() => {});
      await repos.close().catch(() => {});
    }
  }
  return {
    count: loops.length,
    async tick() {
      for (const { loop } of loops)
        await loop.tick().catch((e: Error) => c.out.warn(`fleet ${loop.def.name}: ${e.message}`));
    },
    async close() {
      for (const { loop, close } of loops) {
        await loop.finish().catch((e: Error) => c.out.warn(`fleet ${loop.def.name}: ${e.message}`));
        await close();
      }
    },
  };
}
