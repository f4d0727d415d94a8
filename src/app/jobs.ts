import { existsSync, readFileSync, renameSync } from "node:fs";
import path from "node:path";
import { LifeboatError } from "../core/errors.js";
import { mayStillRun, processIdentity } from "../core/process-identity.js";
import { parseDuration } from "../ops/forget/policy.js";
import { expandHome, type Job } from "./config.js";
import { type LocalDb, localStateDir, localStatePath, openLocalDb } from "./local-state.js";

/** What `lifeboat run` remembers between runs, per job (a row of the local state store). */
export interface JobState {
  lastRun?: string;
  lastSuccess?: string;
  lastExitCode?: number;
  /** When the missed-schedule notice was last sent (so it is sent once per lapse). */
  missedNotified?: string;
  /** A run in progress: when it started and the process running it (on this host). */
  runningSince?: string;
  runningPid?: number;
  /** Which process had that pid (core/process-identity.ts): pids are reused within minutes. */
  runningProc?: string;
}

/** The JSON file where versions before the shared state store kept the jobs' state. */
export function legacyJobsPath(dir = localStateDir()): string {
  return path.join(dir, "jobs.json");
}

/** Whether another live process of this host is running the job now. */
export function isRunningElsewhere(state: JobState | undefined): boolean {
  const pid = state?.runningPid;
  if (!pid || pid === process.pid) return false;
  return mayStillRun(pid, state?.runningProc);
}

/**
 * The jobs' table of the local state store (app/local-state.ts), beside the fleets' tables.
 * Every change is one transaction that reads the job's row and writes it back, so two
 * `lifeboat run` processes (or a run and the daemon, or the console) never lose each other's
 * updates.
 */
export class JobStore {
  private constructor(private readonly local: LocalDb) {}

  /** Opens the store, importing an earlier version's `jobs.json` once (renamed, never deleted). */
  static async open(file = localStatePath()): Promise<JobStore> {
    const local = await openLocalDb(file, "the state file");
    const s = new JobStore(local);
    try {
      await local.tx(() => {
        local.db.exec(
          "CREATE TABLE IF NOT EXISTS lifeboat_jobs (name TEXT PRIMARY KEY, state TEXT NOT NULL)",
        );
        // Inside the write transaction: of two processes starting at once, one imports.
        const legacy = legacyJobsPath(path.dirname(local.file));
        if (!existsSync(legacy)) return;
        let old: Record<string, JobState>;
        try {
          old = JSON.parse(readFileSync(legacy, "utf8")) as Record<string, JobState>;
        } catch (e) {
          throw new LifeboatError(
            "USAGE",
            `${legacy} cannot be imported into ${local.file}: ${(e as Error).message}`,
            `fix or move ${legacy} (it holds the jobs' last runs from an earlier version)`,
          );
        }
        const put = local.db.prepare("INSERT OR IGNORE INTO lifeboat_jobs (name, state) VALUES (?, ?)");
        for (const [name, st] of Object.entries(old ?? {})) put.run(name, JSON.stringify(st));
        renameSync(legacy, `${legacy}.imported`);
      });
    } catch (e) {
      local.release();
      throw e;
    }
    return s;
  }

  async all(): Promise<Record<string, JobState>> {
    const rows = await this.local.exclusive(
      () =>
        this.local.db.prepare("SELECT name, state FROM lifeboat_jobs").all() as {
          name: string;
          state: string;
        }[],
    );
    return Object.fromEntries(rows.map((r) => [r.name, JSON.parse(r.state) as JobState]));
  }

  /** Replaces one job's state by `fn(current)` in one transaction; `fn` returning undefined keeps it. */
  update(name: string, fn: (s: JobState | undefined) => JobState | undefined): Promise<JobState | undefined> {
    return this.local.tx(() => {
      const row = this.local.db.prepare("SELECT state FROM lifeboat_jobs WHERE name = ?").get(name) as
        | { state: string }
        | undefined;
      const cur = row ? (JSON.parse(row.state) as JobState) : undefined;
      const next = fn(cur);
      if (next === undefined) return cur;
      this.local.db
        .prepare(
          "INSERT INTO lifeboat_jobs (name, state) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET state = excluded.state",
        )
        .run(name, JSON.stringify(next));
      return next;
    });
  }

  /** Marks the job running if it is due and no other process runs it; false when it is not to run. */
  async claimDue(job: Job, now = Date.now()): Promise<boolean> {
    let claimed = false;
    await this.update(job.name, (s) => {
      if (!isDue(job, s, now) || isRunningElsewhere(s)) return undefined;
      claimed = true;
      const proc = processIdentity(process.pid);
      return {
        ...s,
        runningSince: new Date(now).toISOString(),
        runningPid: process.pid,
        ...(proc !== undefined ? { runningProc: proc } : {}),
      };
    });
    return claimed;
  }

  /** Records a finished run (`lifeboat run`, the daemon and the console's "run now"). */
  async recordRun(name: string, started: string, code: number): Promise<void> {
    // 3 (some files unreadable) and 4 (flagged) still saved a snapshot: the run happened.
    const saved = code === 0 || code === 3 || code === 4;
    await this.update(name, (prev) => {
      const { runningSince: _since, runningPid: _pid, runningProc: _proc, ...s } = prev ?? {};
      const next: JobState = { ...s, lastRun: started, lastExitCode: code };
      if (saved) {
        next.lastSuccess = started;
        delete next.missedNotified;
      }
      return next;
    });
  }

  close(): void {
    this.local.release();
  }
}

/** Every job's state (a short-lived connection: the console reads it per request). */
export async function readState(file = localStatePath()): Promise<Record<string, JobState>> {
  const store = await JobStore.open(file);
  try {
    return await store.all();
  } finally {
    store.close();
  }
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
