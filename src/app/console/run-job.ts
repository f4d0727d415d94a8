import { forget } from "../../ops/forget/forget.js";
import { type Policy, parseDuration } from "../../ops/forget/policy.js";
import type { Repository } from "../../repo/repository.js";
import type { BackupResult } from "../../snapshot/commit.js";
import { takeSnapshot } from "../../snapshot/take.js";
import { databaseSource, parseDatabaseArg, preflightDatabase } from "../../sources/database.js";
import { backup } from "../backup.js";
import { expandHome, type Job } from "../config.js";
import type { TaskControl } from "./tasks.js";

export interface JobRunResult {
  snapshotId: string;
  /** As `lifeboat run` records it: 0, 3 (some files unreadable) or 4 (flagged as a wipe). */
  exitCode: number;
  summary: BackupResult["summary"];
  errors: BackupResult["errors"];
  anomalies: string[];
  /** Snapshots the job's `keep` policy removed afterwards. */
  forgotten: number;
  /** Set when the job asks for prune: the console leaves it to `lifeboat run`/the daemon. */
  note: string | null;
}

export function jobPolicy(keep: NonNullable<Job["keep"]>): Policy {
  const { within, ...rest } = keep;
  return { ...rest, ...(within ? { within: parseDuration(within) } : {}) };
}

/**
 * One run of a backup job, in this process through the library (what `lifeboat run NAME` does
 * by running the CLI): files or a database into a snapshot tagged `job:NAME`, then the job's
 * `keep` policy on its own snapshots.
 */
export async function runJobNow(
  repo: Repository,
  job: Job,
  ctl: TaskControl,
  onForget: (note: string) => Promise<void>,
): Promise<JobRunResult> {
  const tags = [...job.tags, `job:${job.name}`];
  const sources = (Array.isArray(job.backup) ? job.backup : [job.backup!]).map(expandHome);
  const db = parseDatabaseArg(sources[0]!);
  let result: BackupResult;
  if (db) {
    ctl.phase("checking the database");
    await preflightDatabase(db, { all: false });
    const source = databaseSource(db, { all: false });
    ctl.phase("backing up the database");
    try {
      result = await takeSnapshot(repo, source, {
        tags,
        onProgress: (p) => ctl.progress(p),
        signal: ctl.signal,
      });
    } finally {
      await source.cleanup();
    }
  } else {
    ctl.phase("backing up files");
    result = await backup(repo, sources, {
      excludes: job.exclude,
      tags,
      onProgress: (p) => ctl.progress(p),
      signal: ctl.signal,
    });
  }
  const anomalies = result.snapshot.anomalies ?? [];
  let forgotten = 0;
  if (job.keep) {
    ctl.phase("applying the retention policy");
    const f = await forget(repo, { policy: jobPolicy(job.keep), tags: [`job:${job.name}`] });
    forgotten = f.removed.length;
    await onForget(`${forgotten} snapshots removed by the job's keep policy`);
  }
  return {
    snapshotId: result.snapshotId,
    exitCode: anomalies.length > 0 ? 4 : result.errors.length > 0 ? 3 : 0,
    summary: result.summary,
    errors: result.errors.slice(0, 100),
    anomalies,
    forgotten,
    note: job.prune ? "prune is not run from the console: `lifeboat run` or the daemon prunes" : null,
  };
}
