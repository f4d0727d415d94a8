import type PgBoss from "pg-boss";
import { drillSample } from "./drills.js";
import type { FleetDef } from "./fleet-config.js";
import { dispatchToQueue, ensureQueue, startBoss, startWorkers } from "./queue.js";
import type { FleetRepos } from "./repos.js";
import {
  type AccountEvent,
  EmbeddedScheduler,
  expireLeases,
  type FleetRuntime,
  workerName,
} from "./scheduler.js";
import { FleetStore, type PgSql, pgPool } from "./store.js";
import { type SyncResult, syncAccounts } from "./sync.js";

/** An open fleet: its definition, its state store and, in queue mode, pg-boss. */
export interface OpenFleet {
  def: FleetDef;
  store: FleetStore;
  boss?: PgBoss;
  close(): Promise<void>;
}

/** Opens the fleet's state: the local SQLite file, or PostgreSQL when the fleet has a queue. */
export async function openFleet(def: FleetDef, o: { withQueue?: boolean } = {}): Promise<OpenFleet> {
  if (!def.queue) {
    const store = await FleetStore.sqlite(def.statePath);
    return { def, store, close: () => store.close() };
  }
  const pool = await pgPool(def.queue, def.concurrency * 2 + 4);
  const store = await FleetStore.postgres(pool, def.queue);
  let boss: PgBoss | undefined;
  if (o.withQueue) {
    boss = await startBoss(pool, def.leaseMs);
    await ensureQueue(boss, def.name, def.leaseMs);
  }
  return {
    def,
    store,
    ...(boss ? { boss } : {}),
    async close() {
      if (boss) await boss.stop({ graceful: true, wait: true, timeout: 30_000 }).catch(() => {});
      await store.close();
    },
  };
}

export interface RunOptions {
  /** A simulated instant: one tick at it (with `once`), snapshots stamped with it. */
  now?: number | undefined;
  /** Do what is due now and return (as from cron, or a test). */
  once: boolean;
  /** Drill the night's sample after the runs. */
  drills?: boolean;
  onEvent: (e: AccountEvent) => void;
  onSync?: (s: SyncResult) => void;
  signal?: AbortSignal | undefined;
  /** Daemon: how often to tick. */
  tickMs?: number;
}

export interface RunSummary {
  fleet: string;
  sync: SyncResult;
  counts: Record<AccountEvent["outcome"], number>;
  drills: { drilled: number; failed: number };
  seconds: number;
}

const RESYNC_MS = 5 * 60_000;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });

/** A fleet under a long-running scheduler (`fleet run`, the daemon's one tick loop). */
export interface FleetLoop {
  readonly def: FleetDef;
  /** Lists the accounts again when due, expires leases, drills once a day, starts what is due. */
  tick(): Promise<void>;
  /** Whether nothing of the fleet is due or running (queue mode: in the whole fleet). */
  idle(): Promise<boolean>;
  /** Stops starting runs, waits for the runs in hand and sums up. */
  finish(): Promise<RunSummary>;
}

/**
 * Lists the fleet's accounts and readies its scheduler. Embedded: runs start in this process,
 * `concurrency` at a time. Queue: this process both offers to dispatch (one dispatcher at a time
 * per fleet) and works on the queue.
 */
export async function startFleetLoop(f: OpenFleet, repos: FleetRepos, o: RunOptions): Promise<FleetLoop> {
  const started = Date.now();
  const counts: RunSummary["counts"] = { snapshot: 0, unchanged: 0, failed: 0, missed: 0, duplicate: 0 };
  const rt: FleetRuntime = {
    def: f.def,
    store: f.store,
    repos,
    now: () => o.now ?? Date.now(),
    simulated: o.now !== undefined,
    worker: workerName(),
    onEvent: (e) => {
      counts[e.outcome]++;
      o.onEvent(e);
    },
  };
  const sync = await syncAccounts(f.def, f.store, rt.now());
  o.onSync?.(sync);
  if (!o.now) await expireLeases(rt, Date.now() - f.def.leaseMs * 3);
  // A long-running scheduler lists its accounts again every few minutes and drills once a day.
  let lastSync = Date.now();
  let drillDay = "";
  let drillTried = Date.now();
  let drilling: Promise<void> | undefined;
  const housekeeping = async () => {
    if (o.once) return;
    if (Date.now() - lastSync > RESYNC_MS) {
      lastSync = Date.now();
      await syncAccounts(f.def, f.store, rt.now()).then(o.onSync, () => {});
      await expireLeases(rt, Date.now() - f.def.leaseMs * 3);
    }
    // The night's drills once a day, after there is something to drill (tried at most hourly).
    const day = new Date(rt.now()).toISOString().slice(0, 10);
    // In the background: the tick (and the daemon's jobs beside it) goes on meanwhile.
    if (o.drills !== false && !drilling && day !== drillDay && Date.now() - drillTried > 3_600_000) {
      drillTried = Date.now();
      drilling = drillSample(rt)
        .then(
          (d) => {
            if (d.drilled > 0) drillDay = day;
          },
          () => {},
        )
        .finally(() => {
          drilling = undefined;
        });
    }
  };
  const summary = async (): Promise<RunSummary> => {
    await drilling;
    const drills = o.drills === false || !o.once ? { drilled: 0, failed: 0 } : await drillSample(rt);
    return { fleet: f.def.name, sync, counts, drills, seconds: (Date.now() - started) / 1000 };
  };
  if (f.boss) {
    const boss = f.boss;
    const sql = f.store.sql as PgSql;
    const workers = await startWorkers(rt, boss, sql.pool, f.def.concurrency);
    return {
      def: f.def,
      async tick() {
        await housekeeping();
        await dispatchToQueue(rt, boss, sql);
      },
      async idle() {
        const running = await f.store.runningCount(f.def.name);
        return running === 0 && (await f.store.dueRows(f.def.name, rt.now(), 1)).length === 0;
      },
      async finish() {
        // Stop fetching, then let the jobs in hand finish and report before anything is closed.
        await boss.offWork(`lifeboat-fleet-${f.def.name}`).catch(() => {});
        await workers.idle();
        return summary();
      },
    };
  }
  const sched = new EmbeddedScheduler(rt);
  let lastStarted = 0;
  return {
    def: f.def,
    async tick() {
      await housekeeping();
      lastStarted = await sched.tick();
      // With `once`, wait for a run to end so the next tick has a free slot.
      if (o.once && sched.running > 0) await sched.next();
    },
    async idle() {
      return sched.running === 0 && lastStarted === 0;
    },
    async finish() {
      await sched.drain();
      return summary();
    },
  };
}

/**
 * `fleet run`: list the accounts, then run what is due; with `once` it returns when nothing of
 * the fleet is due or running.
 */
export async function runFleet(f: OpenFleet, repos: FleetRepos, o: RunOptions): Promise<RunSummary> {
  const loop = await startFleetLoop(f, repos, o);
  for (;;) {
    await loop.tick();
    if (o.signal?.aborted) break;
    if (o.once) {
      if (await loop.idle()) break;
      if (f.boss) await sleep(500, o.signal);
    } else await sleep(o.tickMs ?? 10_000, o.signal);
  }
  return loop.finish();
}
