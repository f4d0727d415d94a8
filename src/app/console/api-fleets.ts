import { promises as fs } from "node:fs";
import type { Hono } from "hono";
import { z } from "zod";
import { LifeboatError } from "../../core/errors.js";
import { accountSnapshots } from "../../snapshot/account-catalogue.js";
import { type AccountState, accountPage, accountState } from "../fleet/account-page.js";
import { backlogState } from "../fleet/index.js";
import { accountSnapshot } from "../fleet/restore-account.js";
import { priorityOrder, restoreAll } from "../fleet/restore-all.js";
import { accountRpo } from "../fleet/rpo.js";
import { accountStatus } from "../fleet/status.js";
import type { StoredAccount } from "../fleet/store.js";
import { cliLine, snapshotJson } from "./api-read.js";
import type {
  AccountDetail,
  AccountHistory,
  AccountPage,
  AccountRow,
  AccountStatus,
  FleetList,
  FleetSummary,
  RestoreAllPreview,
  RestoreAllResult,
  TaskView,
  TimelineSnapshot,
} from "./api-types.js";
import { audit, type ConsoleState, type Env, jsonBody, parse, requireRole } from "./context.js";
import { type ConsoleFleet, fleetByName } from "./fleets.js";
import { displayLocation } from "./repos.js";
import { accountDestination, restoreInto, restoreServer } from "./restore-destination.js";
import { checkTarget } from "./restore-roots.js";

/** Accounts per page at most: a bigger page is refused (400), not cut. */
const MAX_ACCOUNTS_PAGE = 1000;

const accountsQuery = z.object({
  offset: z.coerce.number().int().min(0).max(1e9).default(0),
  limit: z.coerce.number().int().min(1).max(MAX_ACCOUNTS_PAGE).default(50),
  q: z.string().max(200).optional(),
  state: z.enum(["protected", "late", "failing", "never"]).optional(),
  sort: z.enum(["state", "id", "age", "next"]).default("state"),
  order: z.enum(["asc", "desc"]).default("asc"),
});

const restoreAllSchema = z
  .object({
    /** Under TARGET/<account> instead of in place; a folder under a restore root. */
    target: z.string().max(4096).optional(),
    /** Each account's newest snapshot at or before this time. */
    at: z.string().datetime({ offset: true }).optional(),
    parallel: z.number().int().min(1).max(64).default(8),
    /** The restore run's name: the same name resumes it (accounts already back are skipped). */
    run: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, "letters, digits, . _ - (at most 64)")
      .default("default"),
  })
  .strict();

const iso = (t: number | undefined) =>
  t === undefined || !Number.isFinite(t) ? null : new Date(t).toISOString();

function accountRow(f: ConsoleFleet, r: StoredAccount, now: number): AccountRow {
  const s = r.state;
  const state: AccountState = accountState(s.newestGood, r.info.lastError, f.def.policy.rpoMs, now);
  return {
    id: s.account.id,
    timezone: s.account.timezone,
    state,
    rpo: accountRpo(f.def.policy, s, now),
    backlog: backlogState(s, now),
    newestGood: iso(s.newestGood),
    ageSeconds: s.newestGood === undefined ? null : Math.round((now - s.newestGood) / 1000),
    nextDue: iso(s.nextDue),
    window: s.current.key,
    lastSnapshot: r.info.lastSnapshot ?? null,
    lastError: r.info.lastError ?? null,
  };
}

async function knownAccount(f: ConsoleFleet, id: string): Promise<StoredAccount> {
  const row = await (await f.store()).get(f.def.name, id);
  if (!row)
    throw new LifeboatError(
      "NOT_FOUND",
      `fleet ${f.def.name} has no account ${JSON.stringify(id)}`,
      "accounts join at the fleet's next run",
    );
  return row;
}

const accountId = (raw: string) => {
  if (raw.length === 0 || raw.length > 512)
    throw new LifeboatError("USAGE", "an account id is 1-512 characters");
  return raw;
};

/**
 * The fleets (docs/api.md "Fleets"): figures per fleet, a page of accounts answered by the
 * fleet's state store, an account's history from the repository's per-account catalogue, and
 * the whole-service restore as a task. Restoring one account goes through `POST /api/restore`
 * with `source: "account:FLEET:ID"` (api-actions.ts).
 */
export function registerFleets(app: Hono<Env>, st: ConsoleState): void {
  app.get("/api/fleets", async (c) =>
    c.json({ fleets: await Promise.all(st.fleets.map((f) => f.summary())) } satisfies FleetList),
  );

  app.get("/api/fleets/:fleet", async (c) =>
    c.json((await fleetByName(st.fleets, c.req.param("fleet")).summary()) satisfies FleetSummary),
  );

  app.get("/api/fleets/:fleet/accounts", async (c) => {
    const f = fleetByName(st.fleets, c.req.param("fleet"));
    const q = parse(accountsQuery, c.req.query());
    const now = Date.now();
    const page = await accountPage(await f.store(), f.def.name, { ...q, now, rpoMs: f.def.policy.rpoMs });
    return c.json({
      total: page.total,
      offset: q.offset,
      items: page.rows.map((r) => accountRow(f, r, now)),
    } satisfies AccountPage);
  });

  app.get("/api/fleets/:fleet/accounts/:id", async (c) => {
    const f = fleetByName(st.fleets, c.req.param("fleet"));
    const id = accountId(c.req.param("id"));
    const row = await knownAccount(f, id);
    const now = Date.now();
    const status: AccountStatus | undefined = await accountStatus(f.def, await f.store(), id, now);
    return c.json({
      ...accountRow(f, row, now),
      repo: (await f.repoFor(id)).spec.id,
      status,
    } satisfies AccountDetail);
  });

  app.get("/api/fleets/:fleet/accounts/:id/history", async (c) => {
    const f = fleetByName(st.fleets, c.req.param("fleet"));
    const id = accountId(c.req.param("id"));
    await knownAccount(f, id);
    const own = await f.repoFor(id);
    const repo = await own.open();
    const [snaps, marks, runs, drills] = await Promise.all([
      accountSnapshots(repo, id, f.def.name),
      own.acks(),
      f.store().then((s) => s.runs(f.def.name, 0, id)),
      f.store().then((s) => s.accountDrills(f.def.name, id)),
    ]);
    let prev: number | undefined;
    const timeline = snaps.map((s) => {
      const bytes = s.summary?.bytes ?? 0;
      const item: TimelineSnapshot = {
        ...snapshotJson(s, marks.acked, marks.pinned),
        deltaBytes: prev === undefined ? null : bytes - prev,
      };
      prev = bytes;
      return item;
    });
    return c.json({
      fleet: f.def.name,
      account: id,
      repo: own.spec.id,
      snapshots: timeline.reverse(),
      runs: runs
        .slice(-100)
        .reverse()
        .map((r) => ({
          window: r.window,
          at: new Date(r.at).toISOString(),
          outcome: r.outcome,
          snapshot: r.snapshot ?? null,
          seconds: r.seconds ?? null,
          error: r.error ?? null,
        })),
      drills: drills.reverse().map((d) => ({
        at: new Date(d.at).toISOString(),
        snapshot: d.snapshot,
        ok: d.ok,
        error: d.error ?? null,
      })),
    } satisfies AccountHistory);
  });

  /** What a whole-service restore would do; nothing is written. */
  const planRestoreAll = async (
    f: ConsoleFleet,
    b: z.infer<typeof restoreAllSchema>,
  ): Promise<RestoreAllPreview> => {
    const target = b.target ? await checkTarget(b.target, st.restoreRoots) : undefined;
    const store = await f.store();
    const rows = await store.all(f.def.name);
    const order = priorityOrder(
      rows.map((r) => r.state.account.id),
      f.def,
      new Map(rows.map((r) => [r.state.account.id, r.info.fields])),
    );
    const done = await store.restoreResults(f.def.name, b.run);
    const at = b.at ? new Date(b.at) : undefined;
    const server = restoreServer(f.def, target);
    const first = await Promise.all(
      order.slice(0, 10).map(async (account) => {
        try {
          const repo = await (await f.repoFor(account)).open();
          const snap = await accountSnapshot(repo, account, { fleet: f.def.name, at });
          const { where, inPlaceFolder } = accountDestination(snap, account, target, server);
          const allowed = inPlaceFolder
            ? await checkTarget(where, st.restoreRoots).then(
                () => true,
                () => false,
              )
            : true;
          return { account, snapshot: snap.id, time: snap.time, where, allowed, error: null };
        } catch (e) {
          return {
            account,
            snapshot: null,
            time: null,
            where: null,
            allowed: false,
            error: (e as Error).message,
          };
        }
      }),
    );
    const args = [
      "fleet",
      "restore",
      "--all",
      "--name",
      f.def.name,
      "--parallel",
      String(b.parallel),
      "--run",
      b.run,
    ];
    if (b.target) args.push("--target", b.target);
    if (b.at) args.push("--time", b.at);
    return {
      fleet: f.def.name,
      kind: f.def.kind,
      accounts: order.length,
      alreadyRestored: [...done.values()].filter((d) => d.ok).length,
      run: b.run,
      parallel: b.parallel,
      at: b.at ?? null,
      into: restoreInto(f.def, target),
      server,
      target: target
        ? {
            path: target,
            exists: await fs.stat(target).then(
              () => true,
              () => false,
            ),
          }
        : null,
      sharedDb: f.def.kind === "rows" && f.def.rows && !target ? displayLocation(f.def.rows.url) : null,
      first,
      command: cliLine(args),
    };
  };

  app.post("/api/fleets/:fleet/restore/preview", async (c) => {
    requireRole(c, "operator");
    const f = fleetByName(st.fleets, c.req.param("fleet"));
    const b = parse(restoreAllSchema, await jsonBody(c));
    return c.json(await planRestoreAll(f, b));
  });

  app.post("/api/fleets/:fleet/restore", async (c) => {
    const s = requireRole(c, "operator");
    const f = fleetByName(st.fleets, c.req.param("fleet"));
    const b = parse(restoreAllSchema, await jsonBody(c));
    const what = {
      fleet: f.def.name,
      run: b.run,
      ...(b.target ? { target: b.target } : {}),
      ...(b.at ? { at: b.at } : {}),
    };
    if (b.target) {
      try {
        await checkTarget(b.target, st.restoreRoots);
      } catch (e) {
        await audit(st, c, "restore-all", what, "refused", e instanceof Error ? e.message : String(e));
        throw e;
      }
    }
    await audit(st, c, "restore-all", what, "started");
    const task = st.tasks.start(
      {
        kind: "restore",
        title: `whole-service restore of fleet ${f.def.name}`,
        user: s.user,
        repo: f.repo.spec.id,
      },
      async (ctl) => {
        try {
          // Each account from its own repository; each is caught up with the snapshots the
          // fleet's workers wrote since the console opened it (FleetRepos.open).
          const store = await f.store();
          const total = (await store.count(f.def.name)) || null;
          let done = 0;
          let failed = 0;
          let shown = 0;
          ctl.phase("restoring accounts in priority order");
          ctl.accounts(0, total, 0);
          const r = await restoreAll(f.repos(), f.def, store, {
            target: b.target,
            parallel: b.parallel,
            run: b.run,
            at: b.at ? new Date(b.at) : undefined,
            signal: ctl.signal,
            checkInPlace: async (folder) => {
              await checkTarget(folder, st.restoreRoots);
            },
            onAccount: (a) => {
              done++;
              if (!a.ok) failed++;
              // At most a few events a second, whatever the fleet's size.
              if (Date.now() - shown > 200 || done === total) {
                shown = Date.now();
                ctl.accounts(done, total, failed);
              }
            },
          });
          ctl.accounts(done, r.accounts, failed);
          await audit(
            st,
            c,
            "restore-all",
            what,
            r.failed > 0 ? "failed" : "ok",
            `${r.restored} restored, ${r.skipped} already restored, ${r.failed} failed, of ${r.accounts}, in ${r.seconds.toFixed(1)}s`,
          );
          return { ...r, results: r.results.filter((x) => !x.ok).slice(0, 100) } satisfies RestoreAllResult;
        } catch (e) {
          await audit(
            st,
            c,
            "restore-all",
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
}
