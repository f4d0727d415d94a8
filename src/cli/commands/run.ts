import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { type Job, loadConfig } from "../../app/config.js";
import {
  forgetArgv,
  isDue,
  isOverdue,
  isRunningElsewhere,
  type JobState,
  JobStore,
  jobArgv,
} from "../../app/jobs.js";
import { ExitCode, LifeboatError } from "../../core/errors.js";
import type { CliContext } from "../shell/context.js";
import { openDaemonFleets } from "./fleet.js";

/** The command's entry: beside this module when bundled (dist/cli/main.js, see
 * scripts/bundle.mjs), one folder up as tsc wrote it (dist/src/cli/main.js). */
const here = path.dirname(fileURLToPath(import.meta.url));
const cliPath = existsSync(path.join(here, "main.js"))
  ? path.join(here, "main.js")
  : path.join(here, "..", "main.js");

/** Runs the CLI itself for one step of a job; its output goes where ours goes. */
function runCli(c: CliContext, args: string[]): Promise<number> {
  const pass = [c.out.json ? "--json" : "", c.out.quiet ? "-q" : ""].filter(Boolean);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, ...pass, ...args], { stdio: "inherit" });
    child.on("error", () => resolve(ExitCode.failure));
    child.on("close", (code) => resolve(code ?? ExitCode.interrupted));
  });
}

interface JobOutcome {
  job: string;
  code: number;
  forgetCode?: number;
}

/** Runs one job (its main step, then its retention) and records the run in the state store. */
async function runJob(c: CliContext, job: Job, store: JobStore): Promise<JobOutcome> {
  c.out.info(`job ${job.name}: lifeboat ${jobArgv(job).join(" ")}`);
  const started = new Date().toISOString();
  await store.update(job.name, (s) => ({ ...s, runningSince: started, runningPid: process.pid }));
  let code: number = ExitCode.interrupted;
  try {
    code = await runCli(c, jobArgv(job));
  } finally {
    await store.recordRun(job.name, started, code);
  }
  // 3 (some files unreadable) and 4 (flagged) still saved a snapshot: the run happened.
  const saved = code === 0 || code === ExitCode.incomplete || code === ExitCode.anomaly;
  const out: JobOutcome = { job: job.name, code };
  const forget = forgetArgv(job);
  if (saved && forget) out.forgetCode = await runCli(c, forget);
  return out;
}

function selectJobs(jobs: Job[], names: string[]): Job[] {
  if (jobs.length === 0)
    throw new LifeboatError(
      "USAGE",
      "the config file lists no jobs",
      "add a `jobs` list (see docs/config.md)",
    );
  for (const n of names)
    if (!jobs.some((j) => j.name === n))
      throw new LifeboatError(
        "USAGE",
        `no job named ${n}`,
        `jobs in the config: ${jobs.map((j) => j.name).join(", ")}`,
      );
  return names.length > 0 ? jobs.filter((j) => names.includes(j.name)) : jobs;
}

/** Sends one notice per lapse for jobs that have not succeeded for two of their periods. */
async function notifyOverdue(c: CliContext, jobs: Job[], store: JobStore): Promise<void> {
  const state = await store.all();
  for (const job of jobs) {
    if (!isOverdue(job, state[job.name]) || state[job.name]?.missedNotified) continue;
    // Marked in the same transaction that checks it: of two processes, one sends the notice.
    let s: JobState | undefined;
    await store.update(job.name, (cur) => {
      if (!isOverdue(job, cur) || cur?.missedNotified) return undefined;
      s = cur;
      return { ...cur, missedNotified: new Date().toISOString() };
    });
    if (!s) continue;
    await c.notify({
      event: "missed-schedule",
      ok: false,
      command: "daemon",
      message: `job ${job.name} has not succeeded since ${s.lastSuccess} (due every ${job.every}; last exit code ${s.lastExitCode})`,
    });
  }
}

export function registerRun(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("run")
    .description("run the jobs of the config file (backups, mail and calendar pulls, retention)")
    .argument("[jobs...]", "job names (default: all)")
    .option("--due", "only jobs whose period (`every`) has passed since they last ran")
    .option(
      "--config <file>",
      "config file (default $XDG_CONFIG_HOME/lifeboat/config.json or LIFEBOAT_CONFIG)",
    )
    .addHelpText(
      "after",
      `
Each job runs as its own lifeboat command (backup or pull, then forget with its \`keep\` policy);
the exit code is the worst of them. State (last run, last success) is kept in the local state
store $XDG_STATE_HOME/lifeboat/state.db (shared with the daemon and the fleets; a jobs.json of
an earlier version is imported once). See docs/config.md for the file format.

Examples:
  lifeboat run                 every job now
  lifeboat run --due           from cron every 5 minutes: each job at its own pace
  lifeboat run documents mail`,
    )
    .action(async (names: string[], flags: { due?: boolean }, cmd: Command) => {
      const c = ctx(cmd);
      const { config } = loadConfig(c.opts.config);
      const jobs = selectJobs(config.jobs, names);
      const store = await JobStore.open();
      try {
        let worst = 0;
        for (const job of jobs) {
          // Claimed in one transaction: a second `run --due` at the same time skips the job.
          if (flags.due && !(await store.claimDue(job))) {
            c.out.info(`job ${job.name}: not due yet`);
            continue;
          }
          const r = await runJob(c, job, store);
          c.out.emit({ message_type: "job", ...r });
          worst = Math.max(worst, r.code, r.forgetCode ?? 0);
        }
        await notifyOverdue(c, jobs, store);
        process.exitCode = worst;
      } finally {
        store.close();
      }
    });

  program
    .command("daemon")
    .description("keep running the config file's jobs on their schedules; notify missed schedules")
    .option(
      "--config <file>",
      "config file (default $XDG_CONFIG_HOME/lifeboat/config.json or LIFEBOAT_CONFIG)",
    )
    .option("--tick <duration>", "how often to look for due jobs and accounts, e.g. 30s, 1m", "60s")
    .option("--ui <host:port>", "also serve the web console here (see `lifeboat ui --help`)")
    .option("--tls-cert <file>", "with --ui: serve HTTPS with this certificate (PEM)")
    .option("--tls-key <file>", "... and this private key (PEM)")
    .option("--insecure-listen", "with --ui: allow plain HTTP on an address that is not loopback")
    .addHelpText(
      "after",
      `
Runs each job when its \`every\` has passed, one at a time, and sends a notice when a job has not
succeeded for two of its periods. The config file's \`fleets\` run in the same process, on the
same tick, each account in its own night (docs/fleet.md). Jobs and fleets share one state store,
$XDG_STATE_HOME/lifeboat/state.db (a fleet with its own \`state\` file or \`queue\` keeps its own).
SIGTERM or Ctrl-C stop it after the job and the account runs in progress.
Run it from systemd (Restart=always) or a login session.`,
    )
    .action(
      async (
        flags: { tick: string; ui?: string; tlsCert?: string; tlsKey?: string; insecureListen?: boolean },
        cmd: Command,
      ) => {
        const c = ctx(cmd);
        const m = /^(\d+)(s|m)$/.exec(flags.tick);
        if (!m)
          throw new LifeboatError("USAGE", `--tick ${flags.tick} is not like 30s or 1m`, "e.g. --tick 60s");
        const tickMs = Number(m[1]) * (m[2] === "m" ? 60_000 : 1000);
        const { config } = loadConfig(c.opts.config);
        const jobs = config.fleets.length > 0 && config.jobs.length === 0 ? [] : selectJobs(config.jobs, []);
        let stopping = false;
        let wake: (() => void) | undefined;
        const stop = () => {
          stopping = true;
          wake?.();
        };
        process.removeAllListeners("SIGINT");
        process.removeAllListeners("SIGTERM");
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
        // One state store (the jobs' table and the fleets' tables, one connection) and one tick
        // loop: each tick starts the next due job and ticks every fleet of the config file.
        const store = await JobStore.open();
        const fleets = config.fleets.length > 0 ? await openDaemonFleets(c) : undefined;
        // With --ui the console runs in this process and shows each job run as a task.
        let ui: Awaited<ReturnType<typeof import("./ui.js").startConsoleFromCli>> | undefined;
        if (flags.ui) {
          const { startConsoleFromCli } = await import("./ui.js");
          const { Tasks } = await import("../../app/console/tasks.js");
          ui = await startConsoleFromCli(
            c,
            {
              listen: flags.ui,
              tlsCert: flags.tlsCert,
              tlsKey: flags.tlsKey,
              insecureListen: flags.insecureListen,
            },
            { daemon: true, tasks: new Tasks() },
          );
        }
        const runOne = (job: Job) =>
          ui
            ? ui.tasks.track(
                { kind: "job", title: `backup job ${job.name}`, user: "daemon", repo: null, exclusive: true },
                async (ctl) => {
                  ctl.phase("running `lifeboat run` for the job (progress is in the daemon's log)");
                  return runJob(c, job, store);
                },
              )
            : runJob(c, job, store);
        /** The job in progress: one at a time, beside the fleets' runs; its end wakes the loop. */
        let running: Promise<void> | undefined;
        const startDueJob = async () => {
          const state = await store.all();
          for (const job of jobs) {
            if (!isDue(job, state[job.name]) || isRunningElsewhere(state[job.name])) continue;
            if (!(await store.claimDue(job))) continue;
            running = runOne(job)
              .then(
                (r) => c.out.emit({ message_type: "job", ...r }),
                (e: Error) => c.out.warn(`job ${job.name}: ${e.message}`),
              )
              .finally(() => {
                running = undefined;
                wake?.();
              });
            return;
          }
        };
        c.out.info(
          `daemon: ${jobs.length} job(s), ${fleets?.count ?? 0} fleet(s); looking for due work every ${flags.tick}`,
        );
        try {
          while (!stopping) {
            if (!running) await startDueJob();
            await fleets?.tick();
            await notifyOverdue(c, jobs, store);
            if (stopping) break;
            await new Promise<void>((resolve) => {
              wake = resolve;
              setTimeout(resolve, tickMs);
            });
          }
        } finally {
          await running;
          await fleets?.close();
          await ui?.close();
          store.close();
        }
        c.out.info("daemon: stopped");
      },
    );
}
