import { createHash } from "node:crypto";
import { seriesKey } from "../../ops/drill/drill.js";
import { summarizeDrill } from "../../ops/drill/status.js";
import { parseDuration } from "../../ops/forget/policy.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import type { Job } from "../config.js";
import type { JobState } from "../jobs.js";
import type { SizePoint, SourceRow, SourceState } from "./api-types.js";
import { type ConsoleRepo, displayLocation } from "./repos.js";

/**
 * The sources the console watches: every job of the config file (its snapshots carry the tag
 * `job:NAME`), and every other series of snapshots (one host and set of paths) found in a
 * repository. Each gets one state, judged in this order:
 *   never      no snapshot yet;
 *   failing    the job's last run failed after its newest snapshot, a snapshot is flagged as a
 *              wipe and not acknowledged, or the last drill failed and no full drill passed since;
 *   late       the newest snapshot is older than the RPO (twice the job's period; for a series
 *              without a job, `console.rpo`, default 2d);
 *   protected  otherwise.
 * The rows' shape is SourceRow (api-types.ts, as the API answers it).
 */
export type { SourceRow, SourceState } from "./api-types.js";

export interface SourceInputs {
  repos: ConsoleRepo[];
  jobs: Job[];
  jobState: Record<string, JobState>;
  defaultRpoMs: number;
  now?: number;
  /** A repository that cannot be read (storage down, wrong password) is left out and reported here. */
  onRepoError?: (repo: string, error: unknown) => void;
}

const jobTag = (name: string) => `job:${name}`;
const ageOf = (time: string, now: number) => Math.max(0, Math.round((now - Date.parse(time)) / 1000));

export function seriesId(repo: string, host: string, paths: string[]): string {
  return `series:${repo}:${createHash("sha256").update(seriesKey(host, paths)).digest("hex").slice(0, 12)}`;
}

/** Every source with its state (unsorted). */
export async function buildSources(inp: SourceInputs): Promise<SourceRow[]> {
  const now = inp.now ?? Date.now();
  const loaded = (
    await Promise.all(
      inp.repos.map(async (r) => {
        try {
          const [all, drills, marks] = await Promise.all([r.snapshots(), r.drillRecords(), r.acks()]);
          // A fleet's account snapshots are shown with their fleet (api-fleets.ts), not as sources.
          const snaps = all.filter((s) => s.account === undefined);
          return { r, snaps, drills, marks };
        } catch (e) {
          inp.onRepoError?.(r.spec.id, e);
          return undefined;
        }
      }),
    )
  ).filter((x) => x !== undefined);
  // Newest snapshot time per series per repository, for "copies in sync".
  const newestBySeries = new Map<string, { repo: string; location: string; time: string }[]>();
  for (const { r, snaps } of loaded) {
    const newest = new Map<string, string>();
    for (const s of snaps) newest.set(seriesKey(s.hostname, s.paths), s.time);
    for (const [k, time] of newest)
      newestBySeries.set(k, [
        ...(newestBySeries.get(k) ?? []),
        { repo: r.spec.id, location: displayLocation(r.spec.url), time },
      ]);
  }
  const rows: SourceRow[] = [];
  for (const { r, snaps, drills, marks } of loaded) {
    const groups = new Map<string, SnapshotWithId[]>();
    for (const s of snaps) {
      if (s.tags.some((t) => t.startsWith("job:"))) continue;
      const k = seriesKey(s.hostname, s.paths);
      groups.set(k, [...(groups.get(k) ?? []), s]);
    }
    const describe = (list: SnapshotWithId[]) => {
      const newest = list.at(-1);
      const key = newest ? seriesKey(newest.hostname, newest.paths) : undefined;
      const ds = key ? drills.filter((d) => seriesKey(d.host, d.paths) === key) : [];
      const last = ds.at(-1);
      const lastOk = ds.filter((d) => d.ok).at(-1);
      const lastOkFull = ds.filter((d) => d.ok && d.mode === "full").at(-1);
      const lastFailed = ds.filter((d) => !d.ok).at(-1);
      const unresolved =
        lastFailed && (!lastOkFull || lastOkFull.time < lastFailed.time) ? lastFailed : undefined;
      const flagged = list.filter((s) => (s.anomalies?.length ?? 0) > 0 && !marks.acked.has(s.id)).length;
      const copies = key
        ? (newestBySeries.get(key) ?? [])
            .filter((c) => c.repo !== r.spec.id)
            .map((c) => ({
              repo: c.repo,
              location: c.location,
              newestTime: c.time,
              inSync: newest !== undefined && c.time >= newest.time,
            }))
        : [];
      return {
        newest,
        last,
        lastOk,
        unresolved,
        flagged,
        copies,
        storedBytes: list.reduce((a, s) => a + (s.summary?.bytesStored ?? 0), 0),
      };
    };
    const row = (
      base: Pick<
        SourceRow,
        "id" | "kind" | "name" | "job" | "every" | "nextRun" | "lastRun" | "lastExitCode"
      >,
      list: SnapshotWithId[],
      rpoMs: number,
      jobFailed: string | undefined,
      fallbackPaths: string[],
    ): SourceRow => {
      const d = describe(list);
      const n = d.newest;
      let state: SourceState;
      let reason: string;
      const age = n ? ageOf(n.time, now) : 0;
      if (!n) {
        state = "never";
        reason = "no snapshot yet";
      } else if (jobFailed) {
        state = "failing";
        reason = jobFailed;
      } else if (d.flagged > 0) {
        state = "failing";
        reason = `${d.flagged} snapshot${d.flagged > 1 ? "s" : ""} flagged as a possible wipe, not acknowledged`;
      } else if (d.unresolved) {
        state = "failing";
        reason = `the restore drill of ${d.unresolved.time.slice(0, 16).replace("T", " ")} failed`;
      } else if (age * 1000 > rpoMs) {
        state = "late";
        reason = `newest snapshot is older than the RPO (${Math.round(rpoMs / 3600_000)}h)`;
      } else {
        state = "protected";
        reason = `newest snapshot within the RPO (${Math.round(rpoMs / 3600_000)}h)`;
      }
      return {
        ...base,
        repo: r.spec.id,
        location: displayLocation(r.spec.url),
        host: n?.hostname ?? null,
        paths: n ? [...n.paths].sort() : fallbackPaths,
        source: n?.source ?? "files",
        state,
        reason,
        snapshots: list.length,
        newest: n ? { id: n.id, time: n.time, ageSeconds: age, incomplete: n.incomplete } : null,
        rpoSeconds: Math.round(rpoMs / 1000),
        lastDrill: d.last ? summarizeDrill(d.last, now) : null,
        lastOkDrill: d.lastOk ? summarizeDrill(d.lastOk, now) : null,
        flagged: d.flagged,
        copies: d.copies,
        logicalBytes: n?.summary?.bytes ?? 0,
        storedBytes: d.storedBytes,
      };
    };
    for (const job of inp.jobs.filter((j) => r.spec.jobs.includes(j.name))) {
      const list = snaps.filter((s) => s.tags.includes(jobTag(job.name)));
      const st = inp.jobState[job.name];
      const period = parseDuration(job.every);
      const newestTime = list.at(-1)?.time;
      const saved = (c: number | undefined) => c === undefined || c === 0 || c === 3 || c === 4;
      const failed =
        st?.lastRun && !saved(st.lastExitCode) && (!newestTime || st.lastRun > newestTime)
          ? `the last run (${st.lastRun.slice(0, 16).replace("T", " ")}) failed with exit code ${st.lastExitCode}`
          : undefined;
      const next = st?.lastRun
        ? new Date(Math.max(now, Date.parse(st.lastRun) + period)).toISOString()
        : new Date(now).toISOString();
      const sourcePaths = job.backup
        ? Array.isArray(job.backup)
          ? job.backup
          : [job.backup]
        : [job.pull ?? ""];
      rows.push(
        row(
          {
            id: `job:${job.name}`,
            kind: "job",
            name: job.name,
            job: job.name,
            every: job.every,
            nextRun: next,
            lastRun: st?.lastRun ?? null,
            lastExitCode: st?.lastExitCode ?? null,
          },
          list,
          2 * period,
          failed,
          sourcePaths,
        ),
      );
    }
    for (const list of groups.values()) {
      const n = list.at(-1)!;
      rows.push(
        row(
          {
            id: seriesId(r.spec.id, n.hostname, n.paths),
            kind: "series",
            name: `${n.hostname}:${[...n.paths].sort().join(" ")}`,
            job: null,
            every: null,
            nextRun: null,
            lastRun: null,
            lastExitCode: null,
          },
          list,
          inp.defaultRpoMs,
          undefined,
          [],
        ),
      );
    }
  }
  return rows;
}

/** The snapshots of one source, oldest first. */
export function sourceSnapshots(
  row: Pick<SourceRow, "kind" | "job" | "host" | "paths">,
  snaps: SnapshotWithId[],
) {
  if (row.kind === "job") return snaps.filter((s) => s.tags.includes(jobTag(row.job!)));
  const key = seriesKey(row.host ?? "", row.paths);
  return snaps.filter(
    (s) => !s.tags.some((t) => t.startsWith("job:")) && seriesKey(s.hostname, s.paths) === key,
  );
}

const severity: Record<SourceState, number> = { failing: 0, late: 1, never: 2, protected: 3 };

export type SourceSort = "name" | "state" | "age" | "size" | "repo";

/** Search, sort and page rows on the server (the page never holds more than a page). */
export function pageSources(
  rows: SourceRow[],
  o: {
    q?: string;
    state?: SourceState;
    sort?: SourceSort;
    order?: "asc" | "desc";
    offset: number;
    limit: number;
  },
): { total: number; items: SourceRow[] } {
  const q = o.q?.toLowerCase();
  let out = rows.filter(
    (r) =>
      (!o.state || r.state === o.state) &&
      (!q ||
        r.name.toLowerCase().includes(q) ||
        (r.host ?? "").toLowerCase().includes(q) ||
        r.paths.some((p) => p.toLowerCase().includes(q))),
  );
  const by: Record<SourceSort, (a: SourceRow, b: SourceRow) => number> = {
    name: (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    state: (a, b) => severity[a.state] - severity[b.state],
    age: (a, b) => (a.newest?.ageSeconds ?? Infinity) - (b.newest?.ageSeconds ?? Infinity),
    size: (a, b) => a.logicalBytes - b.logicalBytes,
    repo: (a, b) => (a.repo < b.repo ? -1 : a.repo > b.repo ? 1 : 0),
  };
  const cmp = by[o.sort ?? "state"];
  const sign = o.order === "desc" ? -1 : 1;
  out = [...out].sort((a, b) => sign * cmp(a, b) || by.name(a, b));
  return { total: out.length, items: out.slice(o.offset, o.offset + o.limit) };
}

/** Logical bytes (the newest snapshot of each series, summed) and stored bytes over time. */
export function sizeHistory(snaps: SnapshotWithId[], points = 120): SizePoint[] {
  const latest = new Map<string, number>();
  let logical = 0;
  let stored = 0;
  const all: SizePoint[] = [];
  for (const s of snaps) {
    const k = seriesKey(s.hostname, s.paths);
    logical += (s.summary?.bytes ?? 0) - (latest.get(k) ?? 0);
    latest.set(k, s.summary?.bytes ?? 0);
    stored += s.summary?.bytesStored ?? 0;
    all.push({ time: s.time, logical, stored });
  }
  if (all.length <= points) return all;
  const step = all.length / points;
  const out: typeof all = [];
  for (let i = 0; i < points; i++) out.push(all[Math.min(all.length - 1, Math.round((i + 1) * step) - 1)]!);
  return out;
}
