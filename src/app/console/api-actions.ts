import { promises as fs } from "node:fs";
import type { Hono } from "hono";
import { z } from "zod";
import { LifeboatError } from "../../core/errors.js";
import { acknowledge } from "../../ops/acks/acks.js";
import { check, parseSubset } from "../../ops/check/check.js";
import { forget, groupSnapshots } from "../../ops/forget/forget.js";
import {
  applyPolicy,
  guardDecisions,
  isEmptyPolicy,
  type Policy,
  parseDuration,
} from "../../ops/forget/policy.js";
import { statInSnapshot } from "../../ops/inspect/browse.js";
import { restore } from "../../ops/restore/restore.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { walkTree } from "../../snapshot/walker.js";
import { parseDatabaseArg, restoreDatabase } from "../../sources/database.js";
import { restoreSqlite } from "../../sources/sqlite.js";
import { drill } from "../drill.js";
import { accountSnapshot } from "../fleet/restore-account.js";
import { JobStore } from "../jobs.js";
import { cliLine } from "./api-read.js";
import type {
  AckResult,
  PolicyApplied,
  PolicySimulation,
  RestoreFilesResult,
  RestorePreview,
  RestoreRoots,
  TaskView,
} from "./api-types.js";
import {
  audit,
  type CheckSummary,
  type ConsoleState,
  type Ctx,
  type Env,
  jobByName,
  jsonBody,
  parse,
  repoById,
  requireRole,
  sourceById,
} from "./context.js";
import { fleetByName } from "./fleets.js";
import { checkTarget, prepareFileTarget, prepareTarget } from "./restore-roots.js";
import { runJobNow } from "./run-job.js";
import { sourceSnapshots } from "./sources.js";

const snapshotId = z.string().regex(/^[0-9a-f]{64}$/, "a snapshot id (64 hex digits)");

const restoreSchema = z
  .object({
    repo: z.string().min(1),
    /** A snapshot, or a source and a time ("as it was at"). */
    snapshot: snapshotId.optional(),
    source: z.string().optional(),
    at: z.string().datetime({ offset: true }).optional(),
    path: z.string().max(4096).default("/"),
    /** Folder (or, for an SQLite snapshot, database file) on this host, under a restore root. */
    target: z.string().max(4096).optional(),
    /** A new database for a PostgreSQL or MariaDB/MySQL dump snapshot. */
    targetDb: z.string().max(2048).optional(),
    database: z.string().max(256).optional(),
    include: z.array(z.string().max(1024)).max(100).default([]),
    verify: z.boolean().default(true),
  })
  .strict()
  .refine((b) => (b.snapshot === undefined) !== (b.source === undefined || b.at === undefined), {
    message: "give a snapshot, or a source and a time (at)",
  })
  .refine((b) => (b.target === undefined) !== (b.targetDb === undefined), {
    message: "give a target folder or a targetDb, one of them",
  });
type RestoreBody = z.infer<typeof restoreSchema>;

const policySchema = z
  .object({
    last: z.number().int().positive(),
    hourly: z.number().int().positive(),
    daily: z.number().int().positive(),
    weekly: z.number().int().positive(),
    monthly: z.number().int().positive(),
    yearly: z.number().int().positive(),
    within: z.string().regex(/^(\d+[ymwdh])+$/, "a duration like 7d, 2w, 1y6m"),
    tags: z.array(z.string().min(1)).max(20),
  })
  .partial()
  .strict();

const retentionSchema = z
  .object({
    repo: z.string().min(1),
    job: z.string().optional(),
    tag: z.string().optional(),
    policy: policySchema,
  })
  .strict();

function toPolicy(p: z.infer<typeof policySchema>): Policy {
  const { within, ...rest } = p;
  return { ...rest, ...(within ? { within: parseDuration(within) } : {}) };
}

function forgetArgs(
  repoUrl: string | undefined,
  p: z.infer<typeof policySchema>,
  tag: string | undefined,
): string[] {
  const args = repoUrl ? ["-r", repoUrl, "forget"] : ["forget"];
  const add = (flag: string, v: number | string | undefined) => {
    if (v !== undefined) args.push(flag, String(v));
  };
  add("--keep-last", p.last);
  add("--keep-hourly", p.hourly);
  add("--keep-daily", p.daily);
  add("--keep-weekly", p.weekly);
  add("--keep-monthly", p.monthly);
  add("--keep-yearly", p.yearly);
  add("--keep-within", p.within);
  for (const t of p.tags ?? []) args.push("--keep-tag", t);
  if (tag) args.push("--tag", tag);
  return args;
}

export function registerActions(app: Hono<Env>, st: ConsoleState): void {
  /** The snapshot a restore request names, directly or as "the source at a time". */
  const resolveRestore = async (b: RestoreBody) => {
    const r = repoById(st, b.repo);
    let snap: SnapshotWithId;
    if (b.snapshot) snap = await r.snapshot(b.snapshot);
    else if (b.source!.startsWith("account:")) {
      // An account of a fleet as it was at a time: found through its catalogue, not a listing.
      const m = /^account:([^:]+):(.+)$/.exec(b.source!);
      if (!m) throw new LifeboatError("USAGE", "source: an account is named account:FLEET:ID");
      const f = fleetByName(st.fleets, m[1]!);
      if (f.repo !== r)
        throw new LifeboatError(
          "USAGE",
          `fleet ${f.def.name} keeps its accounts in repository ${f.repo.spec.id}`,
        );
      const repo = await r.open();
      snap = await accountSnapshot(repo, m[2]!, { fleet: f.def.name, at: new Date(b.at!) });
      // Written by the fleet's workers, maybe after this console read the index.
      await repo.catchUpIndex();
      // A folder account's snapshot holds its folder: restore the folder's contents by default.
      if (snap.source !== "rows" && (b.path === "/" || b.path === "")) b.path = snap.paths[0]!;
    } else {
      const src = await sourceById(st, b.source!);
      if (src.repo !== r.spec.id)
        throw new LifeboatError("USAGE", `source ${src.id} is not in repository ${b.repo}`);
      const t = Date.parse(b.at!);
      const found = sourceSnapshots(src, await r.snapshots())
        .filter((s) => Date.parse(s.time) <= t)
        .at(-1);
      if (!found)
        throw new LifeboatError(
          "SNAPSHOT_NOT_FOUND",
          `${src.name} has no snapshot as old as ${b.at}`,
          "pick a later time",
        );
      snap = found;
    }
    const kind: "files" | "sqlite" | "database" = b.targetDb
      ? "database"
      : snap.source === "sqlite" && (b.path === "/" || b.path === "")
        ? "sqlite"
        : "files";
    if (kind === "database" && snap.source !== "postgres" && snap.source !== "mysql")
      throw new LifeboatError(
        "USAGE",
        `snapshot ${snap.id.slice(0, 8)} is not a database dump: give a target folder`,
      );
    if (kind === "database" && !parseDatabaseArg(b.targetDb!))
      throw new LifeboatError("USAGE", "targetDb must be a postgres:// or mysql:// URL of a new database");
    return { r, snap, kind };
  };

  app.get("/api/restore/roots", (c) => c.json({ roots: st.restoreRoots } satisfies RestoreRoots));

  app.post("/api/restore/preview", async (c) => {
    requireRole(c, "operator");
    const b = parse(restoreSchema, await jsonBody(c));
    const { r, snap, kind } = await resolveRestore(b);
    const repo = await r.open();
    let files = 0;
    let bytes = 0;
    let dirs = 0;
    let path = "/";
    if (kind === "files") {
      const at = await statInSnapshot(repo, snap, b.path);
      path = at.path;
      if (at.tree)
        await walkTree(repo, at.tree, {
          node(n) {
            if (n.type === "file") {
              files++;
              bytes += n.size ?? 0;
            } else if (n.type === "dir") dirs++;
            return undefined;
          },
        });
      else if (at.node?.type === "file") {
        files = 1;
        bytes = at.node.size ?? 0;
      }
    } else bytes = snap.summary?.bytes ?? 0;
    let target: { path: string; exists: boolean; entries: number } | null = null;
    if (b.target) {
      const real = await checkTarget(b.target, st.restoreRoots);
      const stat = await fs.stat(real).catch(() => undefined);
      const entries = stat?.isDirectory() ? (await fs.readdir(real)).length : 0;
      target = { path: real, exists: stat !== undefined, entries };
    }
    return c.json({
      snapshot: {
        id: snap.id,
        time: snap.time,
        host: snap.hostname,
        paths: snap.paths,
        source: snap.source ?? "files",
      },
      kind,
      path,
      files,
      dirs,
      bytes,
      target,
      targetDb: b.targetDb ? b.targetDb.replace(/(\/\/[^:/@]+:)[^@/]*@/, "$1***@") : null,
    } satisfies RestorePreview);
  });

  app.post("/api/restore", async (c) => {
    const s = requireRole(c, "operator");
    const b = parse(restoreSchema, await jsonBody(c));
    const { r, snap, kind } = await resolveRestore(b);
    const what = {
      repo: r.spec.id,
      snapshot: snap.id,
      path: b.path,
      ...(b.target ? { target: b.target } : {}),
      ...(b.targetDb ? { targetDb: b.targetDb.replace(/(\/\/[^:/@]+:)[^@/]*@/, "$1***@") } : {}),
    };
    if (b.target) {
      try {
        await checkTarget(b.target, st.restoreRoots);
      } catch (e) {
        await audit(st, c, "restore", what, "refused", e instanceof Error ? e.message : String(e));
        throw e;
      }
    }
    await audit(st, c, "restore", what, "started");
    const task = st.tasks.start(
      {
        kind: "restore",
        title: `restore ${snap.id.slice(0, 8)}:${b.path} to ${b.target ?? "a new database"}`,
        user: s.user,
        repo: r.spec.id,
      },
      async (ctl) => {
        const repo = await r.open();
        try {
          if (kind === "database") {
            ctl.phase("restoring the dump into a new database");
            const res = await restoreDatabase(repo, snap, parseDatabaseArg(b.targetDb!)!, {
              ...(b.database ? { database: b.database } : {}),
            });
            await audit(st, c, "restore", what, "ok", `database ${res.database}, ${res.tables} tables`);
            return res;
          }
          if (kind === "sqlite") {
            ctl.phase("restoring the database file and checking it");
            const file = await prepareFileTarget(b.target!, st.restoreRoots);
            const res = await restoreSqlite(repo, snap, file);
            await audit(st, c, "restore", what, "ok");
            return res;
          }
          const target = await prepareTarget(b.target!, st.restoreRoots);
          ctl.phase("restoring");
          const res = await restore(repo, snap, {
            target,
            subpath: b.path,
            include: b.include,
            verify: b.verify,
            onProgress: (p) => ctl.progress(p),
            signal: ctl.signal,
          });
          await audit(
            st,
            c,
            "restore",
            what,
            res.errors.length > 0 ? "failed" : "ok",
            `${res.files} files, ${res.bytes} bytes, ${res.errors.length} errors`,
          );
          return { ...res, target, errors: res.errors.slice(0, 100) } satisfies RestoreFilesResult;
        } catch (e) {
          await audit(
            st,
            c,
            "restore",
            what,
            ctl.signal.aborted ? "cancelled" : "failed",
            e instanceof Error ? e.message : String(e),
          );
          throw e;
        }
      },
    );
    return c.json(task satisfies TaskView, 202);
  });

  app.post("/api/jobs/:name/run", async (c) => {
    const s = requireRole(c, "operator");
    const job = jobByName(st, c.req.param("name"));
    if (job.pull)
      throw new LifeboatError(
        "USAGE",
        `job ${job.name} pulls mail or calendars: the console runs backup jobs only`,
        `run it with \`lifeboat run ${job.name}\``,
      );
    const r = st.repos.find((x) => x.spec.jobs.includes(job.name))!;
    await audit(st, c, "backup", { job: job.name, repo: r.spec.id }, "queued");
    const task = st.tasks.start(
      { kind: "backup", title: `backup job ${job.name}`, user: s.user, repo: r.spec.id, exclusive: true },
      async (ctl) => {
        const started = new Date().toISOString();
        let code = 1;
        try {
          const res = await runJobNow(await r.open(), job, ctl, async (note) => {
            await audit(st, c, "forget", { job: job.name, repo: r.spec.id }, "ok", note);
          });
          code = res.exitCode;
          await audit(st, c, "backup", { job: job.name, repo: r.spec.id, snapshot: res.snapshotId }, "ok");
          return res;
        } catch (e) {
          await audit(
            st,
            c,
            "backup",
            { job: job.name, repo: r.spec.id },
            "failed",
            e instanceof Error ? e.message : String(e),
          );
          throw e;
        } finally {
          r.invalidate();
          // The same state store as `lifeboat run` and the daemon: they see this run.
          const jobs = await JobStore.open();
          try {
            await jobs.recordRun(job.name, started, code);
          } finally {
            jobs.close();
          }
        }
      },
    );
    return c.json(task satisfies TaskView, 202);
  });

  const drillSchema = z
    .object({
      repo: z.string().min(1),
      snapshot: snapshotId.optional(),
      source: z.string().optional(),
      sample: z.number().int().min(1).max(1_000_000).optional(),
    })
    .strict();
  app.post("/api/drills", async (c) => {
    const s = requireRole(c, "operator");
    const b = parse(drillSchema, await jsonBody(c));
    const r = repoById(st, b.repo);
    let snap: SnapshotWithId;
    if (b.snapshot) snap = await r.snapshot(b.snapshot);
    else if (b.source) {
      const src = await sourceById(st, b.source);
      const last = src.newest;
      if (!last || src.repo !== r.spec.id)
        throw new LifeboatError("SNAPSHOT_NOT_FOUND", `${src.name} has no snapshot to drill`);
      snap = await r.snapshot(last.id);
    } else throw new LifeboatError("USAGE", "give a snapshot or a source to drill");
    const what = { repo: r.spec.id, snapshot: snap.id, sample: b.sample ?? null };
    await audit(st, c, "drill", what, "started");
    const scratchDb: Record<string, string> = {};
    if (process.env.LIFEBOAT_DRILL_PG) scratchDb.postgres = process.env.LIFEBOAT_DRILL_PG;
    if (process.env.LIFEBOAT_DRILL_MYSQL) scratchDb.mysql = process.env.LIFEBOAT_DRILL_MYSQL;
    const task = st.tasks.start(
      {
        kind: "drill",
        title: `drill ${snap.id.slice(0, 8)} (${snap.paths.join(" ")})`,
        user: s.user,
        repo: r.spec.id,
      },
      async (ctl) => {
        ctl.phase("restoring into a scratch folder and verifying every byte");
        try {
          const res = await drill(await r.open(), {
            snapshot: snap.id,
            ...(b.sample ? { sample: b.sample } : {}),
            scratchDb,
            onProgress: (p) => ctl.progress(p),
            signal: ctl.signal,
          });
          await audit(st, c, "drill", what, res.record.ok ? "ok" : "failed", res.errors[0]?.message);
          return { id: res.id, record: res.record, errors: res.errors.slice(0, 20) };
        } finally {
          r.invalidate();
        }
      },
    );
    return c.json(task satisfies TaskView, 202);
  });

  const checkSchema = z
    .object({
      repo: z.string().min(1),
      /** Read this much of the stored data too: `all`, `N/M` or `X%`. */
      readData: z.string().max(20).optional(),
    })
    .strict();
  app.post("/api/checks", async (c) => {
    const s = requireRole(c, "operator");
    const b = parse(checkSchema, await jsonBody(c));
    const r = repoById(st, b.repo);
    const subset = b.readData && b.readData !== "all" ? parseSubset(b.readData) : undefined;
    const task = st.tasks.start(
      {
        kind: "check",
        title: `check ${r.spec.id}${b.readData ? ` (read data ${b.readData})` : ""}`,
        user: s.user,
        repo: r.spec.id,
      },
      async (ctl) => {
        ctl.phase(b.readData ? "checking structure and reading data" : "checking structure");
        const rep = await check(await r.open(), {
          readData: b.readData !== undefined,
          ...(subset ? { subset } : {}),
          onProgress: (p) => ctl.progress(p),
          signal: ctl.signal,
        });
        const summary: CheckSummary = {
          time: new Date().toISOString(),
          user: s.user,
          readData: b.readData ?? null,
          ok: rep.problems.length === 0,
          snapshots: rep.snapshots,
          packs: rep.packs,
          packsRead: rep.packsRead,
          bytesRead: rep.bytesRead,
          unindexedPacks: rep.unindexedPacks.length,
          problems: rep.problems.slice(0, 50).map((p) => ({
            kind: p.kind,
            object: p.object,
            message: p.message,
            affected: p.affected.length,
          })),
        };
        st.lastChecks.set(r.spec.id, summary);
        await st.saveChecks();
        return summary;
      },
    );
    return c.json(task satisfies TaskView, 202);
  });

  const ackSchema = z.object({ note: z.string().max(500).default("") }).strict();
  app.post("/api/repos/:repo/snapshots/:id/ack", async (c) => {
    const s = requireRole(c, "operator");
    const b = parse(ackSchema, await jsonBody(c));
    const r = repoById(st, c.req.param("repo"));
    const snap = await r.snapshot(c.req.param("id"));
    const ack = await acknowledge(
      await r.open(),
      snap.id,
      `console user ${s.user}${b.note ? `: ${b.note}` : ""}`,
    );
    r.invalidate();
    await audit(st, c, "ack", { repo: r.spec.id, snapshot: snap.id }, "ok", b.note || undefined);
    return c.json({ ...ack, command: cliLine(["ack", snap.id.slice(0, 8)]) } satisfies AckResult);
  });

  const retentionTarget = async (b: z.infer<typeof retentionSchema>) => {
    const r = repoById(st, b.repo);
    const tag = b.job ? `job:${jobByName(st, b.job).name}` : b.tag;
    const policy = toPolicy(b.policy);
    if (isEmptyPolicy(policy))
      throw new LifeboatError(
        "USAGE",
        "the policy keeps nothing",
        "set at least one of last, daily, weekly, ... within",
      );
    return { r, tag, policy };
  };

  // Which snapshots a policy would keep (with the guard's rules), and the CLI command that does it.
  app.post("/api/policies/simulate", async (c) => {
    const b = parse(retentionSchema, await jsonBody(c));
    const { r, tag, policy } = await retentionTarget(b);
    const snaps = (await r.snapshots()).filter((x) => !tag || x.tags.includes(tag));
    const marks = await r.acks();
    const groups = [...groupSnapshots(snaps, ["host", "paths"])].map(([key, list]) => ({
      key: JSON.parse(key) as Record<string, unknown>,
      decisions: guardDecisions(
        applyPolicy(list, policy),
        (x) => (x.anomalies ?? []).length > 0 && !marks.acked.has(x.id),
        (x) => marks.pinned.has(x.id),
      ).map((d) => ({ id: d.snapshot.id, time: d.snapshot.time, keep: d.keep, reasons: d.reasons })),
    }));
    const all = groups.flatMap((g) => g.decisions);
    const url = r.spec.id === "main" ? undefined : r.spec.url;
    return c.json({
      groups,
      kept: all.filter((d) => d.keep).length,
      removed: all.filter((d) => !d.keep).length,
      command: cliLine([...forgetArgs(url, b.policy, tag), "--dry-run"]),
      applyCommand: cliLine(forgetArgs(url, b.policy, tag)),
    } satisfies PolicySimulation);
  });

  app.post("/api/policies/apply", async (c) => {
    requireRole(c, "admin");
    const b = parse(retentionSchema, await jsonBody(c));
    const { r, tag, policy } = await retentionTarget(b);
    const what = { repo: r.spec.id, tag: tag ?? null, policy: b.policy };
    await audit(st, c, "forget", what, "started");
    try {
      const res = await forget(await r.open(), { policy, ...(tag ? { tags: [tag] } : {}) });
      r.invalidate();
      await audit(st, c, "forget", what, "ok", `${res.removed.length} snapshots removed`);
      return c.json({ removed: res.removed } satisfies PolicyApplied);
    } catch (e) {
      await audit(st, c, "forget", what, "failed", e instanceof Error ? e.message : String(e));
      throw e;
    }
  });

  app.post("/api/tasks/:id/cancel", async (c: Ctx) => {
    requireRole(c, "operator");
    const id = c.req.param("id") ?? "";
    const t = st.tasks.get(id);
    if (!t) throw new LifeboatError("NOT_FOUND", "no such task");
    const ok = st.tasks.cancel(id);
    await audit(st, c, "cancel", { task: id, title: t.title }, ok ? "ok" : "refused");
    if (!ok) throw new LifeboatError("USAGE", `task ${id} is ${t.state}: nothing to cancel`);
    return c.json(st.tasks.get(id) satisfies TaskView | undefined);
  });
}
