import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import { LifeboatError } from "../../core/errors.js";
import { summarizeDrill } from "../../ops/drill/status.js";
import { parseDuration } from "../../ops/forget/policy.js";
import { matchesFilter } from "../../repo/find-snapshot.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { forgetArgv } from "../jobs.js";
import type {
  ActivityData,
  AuditEntries,
  BacklogItem,
  DrillHistoryItem,
  FlagList,
  IntegrityData,
  OverviewData,
  PoliciesData,
  RepositoryList,
  SnapshotJson,
  SourceHistory,
  SourcePage,
  SourceRow,
  TaskList,
  TaskView,
  TimelineSnapshot,
} from "./api-types.js";
import {
  allSources,
  type ConsoleState,
  type Env,
  parse,
  repoById,
  requireRole,
  sourceById,
} from "./context.js";
import { repositoryCard } from "./overview.js";
import { displayLocation } from "./repos.js";
import { buildSources, pageSources, sourceSnapshots } from "./sources.js";

/** Largest page of sources, snapshots or audit entries served at once. */
export const MAX_PAGE = 1000;

const pageQuery = {
  offset: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(50),
};

/** A snapshot as `lifeboat snapshots --json` prints it. */
export function snapshotJson(s: SnapshotWithId, acked: Set<string>, pinned: Set<string>): SnapshotJson {
  return {
    ...s,
    short_id: s.id.slice(0, 8),
    flagged: (s.anomalies ?? []).length > 0,
    anomalies: s.anomalies ?? [],
    acknowledged: acked.has(s.id),
    pinned: pinned.has(s.id),
  };
}

const shellQuote = (a: string) => (/^[A-Za-z0-9_./:@%+=,-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);
export const cliLine = (args: string[]) => `lifeboat ${args.map(shellQuote).join(" ")}`;

export function registerReads(app: Hono<Env>, st: ConsoleState): void {
  app.get("/api/overview", async (c) => {
    const errors: { repo: string; message: string }[] = [];
    const rows = await buildSources({
      repos: st.repos,
      jobs: st.config.jobs,
      jobState: await st.jobState(),
      defaultRpoMs: parseDuration(st.config.console?.rpo ?? "2d"),
      onRepoError: (repo, e) => errors.push({ repo, message: e instanceof Error ? e.message : String(e) }),
    });
    const states = { protected: 0, late: 0, failing: 0, never: 0 };
    for (const r of rows) states[r.state]++;
    const repositories = await Promise.all(
      st.repos.map((r) => repositoryCard(r, rows, errors.find((e) => e.repo === r.spec.id)?.message)),
    );
    return c.json({
      time: new Date().toISOString(),
      states,
      flagged: rows.reduce((a, r) => a + r.flagged, 0),
      repositories,
      fleets: await Promise.all(st.fleets.map((f) => f.summary())),
    } satisfies OverviewData);
  });

  const sourcesQuery = z.object({
    ...pageQuery,
    q: z.string().max(200).optional(),
    state: z.enum(["protected", "late", "failing", "never"]).optional(),
    sort: z.enum(["name", "state", "age", "size", "repo"]).default("state"),
    order: z.enum(["asc", "desc"]).default("asc"),
  });
  app.get("/api/sources", async (c) => {
    const q = parse(sourcesQuery, c.req.query());
    return c.json(pageSources(await allSources(st), q) satisfies SourcePage);
  });

  app.get("/api/sources/:id", async (c) =>
    c.json((await sourceById(st, c.req.param("id"))) satisfies SourceRow),
  );

  app.get("/api/sources/:id/history", async (c) => {
    const src = await sourceById(st, c.req.param("id"));
    const r = repoById(st, src.repo);
    const [snaps, drills, marks] = await Promise.all([r.snapshots(), r.drillRecords(), r.acks()]);
    const mine = sourceSnapshots(src, snaps);
    let prevBytes: number | undefined;
    const timeline = mine.map((s) => {
      const bytes = s.summary?.bytes ?? 0;
      const item: TimelineSnapshot = {
        ...snapshotJson(s, marks.acked, marks.pinned),
        deltaBytes: prevBytes === undefined ? null : bytes - prevBytes,
      };
      prevBytes = bytes;
      return item;
    });
    const ids = new Set(mine.map((s) => s.id));
    const host = src.host;
    const key = JSON.stringify([...src.paths].sort());
    const myDrills = drills
      .filter((d) => ids.has(d.snapshot) || (d.host === host && JSON.stringify([...d.paths].sort()) === key))
      .map(
        (d): DrillHistoryItem => ({
          ...summarizeDrill(d),
          snapshotTime: d.snapshotTime ?? null,
          failures: d.failures.slice(0, 10),
        }),
      );
    return c.json({
      source: src,
      snapshots: timeline.reverse(),
      drills: myDrills.reverse(),
    } satisfies SourceHistory);
  });

  app.get("/api/repositories", (c) =>
    c.json({
      repositories: st.repos.map((r) => ({
        id: r.spec.id,
        location: displayLocation(r.spec.url),
        jobs: r.spec.jobs,
      })),
    } satisfies RepositoryList),
  );

  const snapsQuery = z.object({
    host: z.string().optional(),
    tag: z.union([z.string(), z.array(z.string())]).optional(),
    path: z.union([z.string(), z.array(z.string())]).optional(),
  });
  app.get("/api/repos/:repo/snapshots", async (c) => {
    const r = repoById(st, c.req.param("repo"));
    const q = parse(snapsQuery, { ...c.req.query(), tag: c.req.queries("tag"), path: c.req.queries("path") });
    const list = (x: string | string[] | undefined) =>
      x === undefined ? undefined : Array.isArray(x) ? x : [x];
    const [snaps, marks] = await Promise.all([r.snapshots(), r.acks()]);
    return c.json(
      snaps
        .filter((s) => matchesFilter(s, { host: q.host, tags: list(q.tag), paths: list(q.path) }))
        .map((s) => snapshotJson(s, marks.acked, marks.pinned)) satisfies SnapshotJson[],
    );
  });

  app.get("/api/repos/:repo/snapshots/:id", async (c) => {
    const r = repoById(st, c.req.param("repo"));
    const s = await r.snapshot(c.req.param("id"));
    const marks = await r.acks();
    return c.json(snapshotJson(s, marks.acked, marks.pinned) satisfies SnapshotJson);
  });

  app.get("/api/flags", async (c) => {
    const out: FlagList["flagged"] = [];
    for (const r of st.repos) {
      const [snaps, marks] = await Promise.all([r.snapshots(), r.acks()]);
      for (const s of snaps)
        if ((s.anomalies?.length ?? 0) > 0 || marks.pinned.has(s.id))
          out.push({ repo: r.spec.id, ...snapshotJson(s, marks.acked, marks.pinned) });
    }
    return c.json({ flagged: out.reverse() } satisfies FlagList);
  });

  app.get("/api/integrity", async (c) => {
    const rows = await allSources(st);
    const month = 30 * 86400;
    const items = rows.map((r): IntegrityData["sources"][number] => ({
      id: r.id,
      name: r.name,
      repo: r.repo,
      state: r.state,
      newest: r.newest,
      lastDrill: r.lastDrill,
      lastProvenRestorable: r.lastOkDrill,
      provenLast30Days: r.lastOkDrill !== null && r.lastOkDrill.ageSeconds <= month,
    }));
    const withSnapshots = items.filter((i) => i.newest !== null);
    return c.json({
      sources: items,
      proven30Days: {
        proven: withSnapshots.filter((i) => i.provenLast30Days).length,
        of: withSnapshots.length,
      },
      fleets: await Promise.all(
        st.fleets.map(async (f) => {
          const s = await f.summary();
          return {
            fleet: s.name,
            accounts: s.accounts,
            proven: s.proven30Days,
            fraction: s.proven30DaysFraction,
            error: s.error,
          };
        }),
      ),
      checks: st.repos.map((r) => ({
        repo: r.spec.id,
        location: displayLocation(r.spec.url),
        last: st.lastChecks.get(r.spec.id) ?? null,
      })),
    } satisfies IntegrityData);
  });

  app.get("/api/policies", async (c) => {
    const state = await st.jobState();
    const now = Date.now();
    return c.json({
      objectLock: st.config.retention ?? null,
      jobs: st.config.jobs.map((j) => {
        const s = state[j.name];
        const period = parseDuration(j.every);
        const forget = forgetArgv(j);
        return {
          name: j.name,
          repo: st.repos.find((r) => r.spec.jobs.includes(j.name))?.spec.id ?? "main",
          every: j.every,
          lastRun: s?.lastRun ?? null,
          lastSuccess: s?.lastSuccess ?? null,
          nextRun: new Date(s?.lastRun ? Math.max(now, Date.parse(s.lastRun) + period) : now).toISOString(),
          keep: j.keep ?? null,
          prune: j.prune,
          forgetCommand: forget ? cliLine(forget) : null,
        };
      }),
    } satisfies PoliciesData);
  });

  app.get("/api/activity", async (c) => {
    const tasks = st.tasks.list();
    const state = await st.jobState();
    const now = Date.now();
    const running = (name: string) =>
      tasks.find(
        (t) =>
          (t.kind === "backup" || t.kind === "job") &&
          t.title === `backup job ${name}` &&
          t.state === "running",
      );
    const queued = (name: string) =>
      tasks.find(
        (t) =>
          (t.kind === "backup" || t.kind === "job") &&
          t.title === `backup job ${name}` &&
          t.state === "queued",
      );
    const backlog = st.config.jobs.map((j): BacklogItem => {
      const s = state[j.name];
      const next = s?.lastRun ? Date.parse(s.lastRun) + parseDuration(j.every) : now;
      const q = queued(j.name);
      let status: BacklogItem["status"];
      let why: string;
      if (running(j.name)) {
        status = "running";
        why = "running now";
      } else if (q) {
        status = "queued";
        why = q.waiting ?? "starting";
      } else if (next <= now) {
        status = "due";
        why = st.daemon
          ? "due: the daemon starts it at its next tick (one job at a time)"
          : "due, but no daemon runs in this console: start `lifeboat daemon` or press Run now";
      } else {
        status = "scheduled";
        why = `not due until ${new Date(next).toISOString()} (every ${j.every})`;
      }
      return { job: j.name, status, reason: why, nextRun: new Date(Math.max(now, next)).toISOString() };
    });
    return c.json({ tasks, backlog } satisfies ActivityData);
  });

  app.get("/api/audit", async (c) => {
    requireRole(c, "admin");
    const q = parse(z.object({ limit: pageQuery.limit }), c.req.query());
    return c.json({ entries: await st.audit.recent(q.limit) } satisfies AuditEntries);
  });

  app.get("/api/tasks", (c) => c.json({ tasks: st.tasks.list() } satisfies TaskList));

  app.get("/api/tasks/:id", (c) => {
    const t = st.tasks.get(c.req.param("id"));
    if (!t) throw new LifeboatError("NOT_FOUND", "no such task");
    return c.json(t satisfies TaskView);
  });

  // Progress of one task as server-sent events: `task` events with the task, until it ends.
  app.get("/api/tasks/:id/events", (c) => {
    const id = c.req.param("id");
    const first = st.tasks.get(id);
    if (!first) throw new LifeboatError("NOT_FOUND", "no such task");
    return streamSSE(c, async (stream) => {
      const finished = (t: TaskView) => t.state === "done" || t.state === "failed" || t.state === "cancelled";
      await stream.writeSSE({ event: "task", data: JSON.stringify(first) });
      if (finished(first)) return;
      await new Promise<void>((resolve) => {
        let writing = Promise.resolve();
        const stop = st.tasks.follow(id, (t) => {
          writing = writing.then(() => stream.writeSSE({ event: "task", data: JSON.stringify(t) }));
          if (finished(t)) {
            stop();
            void writing.then(() => resolve());
          }
        });
        stream.onAbort(() => {
          stop();
          resolve();
        });
      });
    });
  });
}
