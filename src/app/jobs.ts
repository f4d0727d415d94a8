import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseDuration } from "../ops/forget/policy.js";
import { expandHome, type Job } from "./config.js";

/** What `lifeboat run` remembers between runs, per job ($XDG_STATE_HOME/lifeboat/jobs.json). */
export interface JobState {
  lastRun?: string;
  lastSuccess?: string;
  lastExitCode?: number;
  /** When the missed-schedule notice was last sent (so it is sent once per lapse). */
  missedNotified?: string;
}

export function statePath(): string {
  const state = process.env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state");
  return path.join(state, "lifeboat", "jobs.json");
}

export async function readState(file = statePath()): Promise<Record<string, JobState>> {
  try {
    return JSON.parse(await fs.readFile(file, "utf8")) as Record<string, JobState>;
  } catch {
    return {};
  }
}

/** Written to a temporary file and renamed: a crash never leaves half a state file. */
export async function writeState(state: Record<string, JobState>, file = statePath()): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  await fs.writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await fs.rename(tmp, file);
}

export function isDue(job: Job, state: JobState | undefined, now = Date.now()): boolean {
  if (!state?.lastRun) return true;
  return now - Date.parse(state.lastRun) >= parseDuration(job.every);
}

/** Whether a job has had no success for two of its periods: its schedule was missed. */
export function isOverdue(job: Job, state: JobState | undefined, now = Date.now()): boolean {
  const since = state?.lastSuccess ?? undefined;
  if (!since) return false;
  return now - Date.parse(since) > 2 * parseDuration(job.every);
}

/** The CLI arguments (after the global options) for one job's main step. */
export function jobArgv(job: Job): string[] {
  const global: string[] = [];
  if (job.repository) global.push("-r", expandHome(job.repository));
  if (job.passwordFile) global.push("--password-file", expandHome(job.passwordFile));
  const tags = [...job.tags, `job:${job.name}`].flatMap((t) => ["--tag", t]);
  if (job.pull) {
    return [
      ...global,
      "pull",
      job.pull,
      ...(job.sourcePasswordFile ? ["--source-password-file", expandHome(job.sourcePasswordFile)] : []),
      ...(job.oauth2TokenCommand ? ["--oauth2-token-command", job.oauth2TokenCommand] : []),
      ...tags,
    ];
  }
  const sources = (Array.isArray(job.backup) ? job.backup : [job.backup!]).map(expandHome);
  return [...global, "backup", ...sources, ...job.exclude.flatMap((e) => ["--exclude", e]), ...tags];
}

/** The `forget` arguments for a job's retention policy, or undefined when it has none. */
export function forgetArgv(job: Job): string[] | undefined {
  const k = job.keep;
  if (!k) return undefined;
  const global: string[] = [];
  if (job.repository) global.push("-r", expandHome(job.repository));
  if (job.passwordFile) global.push("--password-file", expandHome(job.passwordFile));
  const args = [...global, "forget"];
  const add = (flag: string, v: number | string | undefined) => {
    if (v !== undefined) args.push(flag, String(v));
  };
  add("--keep-last", k.last);
  add("--keep-hourly", k.hourly);
  add("--keep-daily", k.daily);
  add("--keep-weekly", k.weekly);
  add("--keep-monthly", k.monthly);
  add("--keep-yearly", k.yearly);
  add("--keep-within", k.within);
  for (const t of k.tags ?? []) args.push("--keep-tag", t);
  // Only this job's snapshots: they carry its name as a tag.
  args.push("--tag", `job:${job.name}`);
  if (job.prune) args.push("--prune");
  return args;
}
