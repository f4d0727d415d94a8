import os from "node:os";
import type { AccountState } from "./account.js";
import { type AccountRunResult, backupAccount } from "./backup-account.js";
import { type DueRun, due } from "./due.js";
import { failed, succeeded } from "./events.js";
import type { FleetDef } from "./fleet-config.js";
import { type FleetRepos, findInCatalogues, GLOBAL_REPO, placeAccount, recordedRepo } from "./repos.js";
import type { FleetStore, StoredAccount } from "./store.js";

/** What happened to one account in a tick (for logs, `--json` and metrics). */
export interface AccountEvent {
  fleet: string;
  account: string;
  window: string;
  outcome: "snapshot" | "unchanged" | "failed" | "missed" | "duplicate";
  snapshot?: string | undefined;
  seconds?: number | undefined;
  error?: string | undefined;
  worker: string;
}

export interface FleetRuntime {
  def: FleetDef;
  store: FleetStore;
  /** The fleet's repositories (one, or several with each account in its own). */
  repos: FleetRepos;
  /** The scheduler's clock: real time, or a fixed simulated instant (`--now`). */
  now: () => number;
  /** Whether `now` is simulated: snapshots and reports are then stamped with it. */
  simulated: boolean;
  worker: string;
  onEvent: (e: AccountEvent) => void;
}

export const workerName = () => `${os.hostname()}:${process.pid}`;

/** Runs one account for its window; never throws (a failure is the result). */
export async function runAccount(
  rt: FleetRuntime,
  id: string,
  window: string,
  at: number,
): Promise<RunOutput> {
  const started = Date.now();
  try {
    const row = await rt.store.get(rt.def.name, id);
    if (!row) return { error: `account ${id} is no longer in the fleet's state`, seconds: 0 };
    // A second delivery of a run already reported (a queue redelivers after a lease ran out):
    // the row has moved on, so there is nothing to do.
    if (row.state.runningSince === undefined || row.state.current.key !== window)
      return { stale: true, seconds: 0 };
    const key = await runRepo(rt, id, row.info);
    const result = await backupAccount(await rt.repos.open(key), rt.def, id, row.info, window, at);
    return {
      result,
      ...(key !== GLOBAL_REPO && rt.repos.keys.length > 1 ? { repository: key } : {}),
      seconds: (Date.now() - started) / 1000,
    };
  } catch (e) {
    return { error: oneLine(e), seconds: (Date.now() - started) / 1000 };
  }
}

/**
 * The repository an account's run writes to: the one recorded in its row once it has a
 * snapshot there. An account with no snapshot known to the state (new, or a state rebuilt after
 * it was lost) is looked up in the catalogues first — one listing per repository — so a rebuilt
 * state never starts a second series in another repository.
 */
async function runRepo(rt: FleetRuntime, id: string, info: StoredAccount["info"]): Promise<string> {
  const recorded = recordedRepo(rt.def, info);
  if (rt.repos.keys.length === 1) return rt.repos.keys[0]!;
  if (recorded !== undefined && info.lastSnapshot !== undefined) return recorded;
  return (
    (await findInCatalogues(rt.repos, rt.def.name, id)) ??
    recorded ??
    placeAccount(rt.def.name, id, rt.repos.keys)
  );
}

export interface RunOutput {
  result?: AccountRunResult;
  /** Several repositories: the one the run used (recorded as the account's placement). */
  repository?: string;
  error?: string;
  /** The run was already reported (a duplicate delivery): nothing was done, nothing to report. */
  stale?: boolean;
  seconds: number;
}

const oneLine = (e: unknown) => ((e as Error)?.message ?? String(e)).split("\n")[0]!;

/**
 * Reports a run back into the account's row (one transaction): `succeeded` places its next
 * window, `failed` schedules a jittered retry inside the window; a report for another window
 * than the row's (a duplicate delivery) changes nothing but the newest good time.
 */
export async function reportRun(
  rt: FleetRuntime,
  id: string,
  window: string,
  run: RunOutput,
): Promise<AccountEvent> {
  const at = rt.now();
  if (run.stale) {
    const ev: AccountEvent = {
      fleet: rt.def.name,
      account: id,
      window,
      outcome: "duplicate",
      worker: rt.worker,
    };
    rt.onEvent(ev);
    return ev;
  }
  const ev: AccountEvent = {
    fleet: rt.def.name,
    account: id,
    window,
    outcome: run.result ? (run.result.duplicate ? "duplicate" : run.result.outcome) : "failed",
    snapshot: run.result?.snapshot,
    seconds: run.seconds,
    error: run.error,
    worker: rt.worker,
  };
  await rt.store.tx(async () => {
    const row = await rt.store.get(rt.def.name, id);
    if (!row) return;
    let state: AccountState;
    const info = { ...row.info };
    if (run.result) {
      state = succeeded(rt.def.policy, row.state, { key: window, at, goodAt: run.result.goodAt }).state;
      info.fingerprint = run.result.fingerprint;
      if (run.repository !== undefined) info.repository = run.repository;
      if (run.result.snapshot) info.lastSnapshot = run.result.snapshot;
      if (row.info.fields.updated_at !== undefined) info.updatedAt = row.info.fields.updated_at;
      delete info.lastError;
    } else {
      state = failed(rt.def.policy, row.state, { key: window, at }).state;
      info.lastError = run.error ?? "failed";
    }
    await rt.store.put(rt.def.name, [{ state, info }]);
    await rt.store.addRun({
      fleet: rt.def.name,
      id,
      window,
      at,
      outcome: run.result ? (run.result.outcome === "unchanged" ? "unchanged" : "snapshot") : "failed",
      snapshot: run.result?.snapshot,
      seconds: run.seconds,
      error: run.error,
      worker: rt.worker,
    });
  });
  rt.onEvent(ev);
  return ev;
}

/**
 * One dispatcher step: reads what is due (rows whose window chance ended, and the `capacity`
 * most urgent whose next due time has come), records missed windows, marks the chosen rows
 * running and returns them. `onStart` runs inside the same transaction (the queue enqueues
 * there, so a row is never marked running without its job, nor the reverse).
 */
export async function dispatch(
  rt: FleetRuntime,
  capacity: number,
  onStart?: (runs: readonly DueRun[]) => Promise<void>,
): Promise<DueRun[]> {
  const now = rt.now();
  return rt.store.tx(async () => {
    const rows = await rt.store.dueRows(rt.def.name, now, capacity);
    if (rows.length === 0) return [];
    const info = new Map(rows.map((r) => [r.state.account.id, r.info]));
    const tick = due(
      rt.def.policy,
      rows.map((r) => r.state),
      now,
      capacity,
    );
    const writes: StoredAccount[] = [];
    for (const s of tick.changed) writes.push({ state: s, info: info.get(s.account.id)! });
    for (const r of tick.start) writes.push({ state: r.state, info: info.get(r.state.account.id)! });
    await rt.store.put(rt.def.name, writes);
    for (const m of tick.missed) {
      await rt.store.addRun({
        fleet: rt.def.name,
        id: m.accountId,
        window: m.key,
        at: now,
        outcome: "missed",
        error:
          m.failures > 0 ? `${m.failures} failed attempt(s)` : "no capacity or no scheduler in the window",
      });
      rt.onEvent({
        fleet: rt.def.name,
        account: m.accountId,
        window: m.key,
        outcome: "missed",
        worker: rt.worker,
      });
    }
    if (onStart && tick.start.length > 0) await onStart(tick.start);
    return [...tick.start];
  });
}

/**
 * Rows still marked running from a process that is gone (their lease ran out): reported failed,
 * so they retry inside their window.
 */
export async function expireLeases(rt: FleetRuntime, before: number): Promise<number> {
  const stale = await rt.store.expiredRuns(rt.def.name, before);
  for (const r of stale)
    await reportRun(rt, r.state.account.id, r.state.current.key, {
      error: "the run's lease expired (its worker stopped)",
      seconds: 0,
    });
  return stale.length;
}

/**
 * The embedded scheduler: due accounts run in this process, at most `concurrency` at once.
 * `tick()` starts what is due and returns; `once()` keeps ticking at the same instant until
 * nothing is due and nothing runs (one `fleet run --once`).
 */
export class EmbeddedScheduler {
  private readonly inflight = new Set<Promise<void>>();

  constructor(private readonly rt: FleetRuntime) {}

  get running(): number {
    return this.inflight.size;
  }

  async tick(): Promise<number> {
    const free = this.rt.def.concurrency - this.inflight.size;
    if (free <= 0) return 0;
    const runs = await dispatch(this.rt, free);
    for (const r of runs) {
      const id = r.state.account.id;
      const at = this.rt.now();
      const p: Promise<void> = runAccount(this.rt, id, r.window.key, at)
        .then((res) => reportRun(this.rt, id, r.window.key, res))
        .then(
          () => {},
          () => {},
        )
        .finally(() => this.inflight.delete(p));
      this.inflight.add(p);
    }
    return runs.length;
  }

  async once(): Promise<void> {
    for (;;) {
      const started = await this.tick();
      if (this.inflight.size === 0 && started === 0) return;
      if (this.inflight.size > 0) await Promise.race(this.inflight);
    }
  }

  /** Waits for one of the runs in hand to end. */
  async next(): Promise<void> {
    if (this.inflight.size > 0) await Promise.race(this.inflight);
  }

  async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.race(this.inflight);
  }
}
