import { createHash } from "node:crypto";
import type pg from "pg";
import type PgBoss from "pg-boss";
import type { DueRun } from "./due.js";
import { dispatch, type FleetRuntime, reportRun, runAccount } from "./scheduler.js";
import type { PgSql } from "./store.js";

/**
 * Many hosts: the schedule table lives in PostgreSQL beside pg-boss, and one dispatcher at a
 * time (a transaction-scoped advisory lock per fleet) reads what is due and enqueues it in the
 * same transaction that marks the rows running. pg-boss delivers each job to one worker on any
 * host (SKIP LOCKED); a job whose worker dies stays active until its lease (`expireInSeconds`)
 * runs out and is then retried by another worker. Jobs are keyed per account and window
 * (`singletonKey`, queue policy `stately`: one queued and one active job per key), and the run
 * itself reads the account's catalogue before committing, so at-least-once delivery never
 * yields two snapshots for one window.
 */
export interface QueueJob {
  fleet: string;
  account: string;
  window: string;
  /** The dispatcher's clock (a simulated `--now` reaches the workers this way). */
  at: number;
}

export const queueName = (fleet: string) => `lifeboat-fleet-${fleet}`;

/** Higher for more RPO pressure (never backed up first); pg-boss fetches higher priorities first. */
const priorityOf = (r: DueRun) =>
  Number.isFinite(r.pressure) ? Math.min(999, Math.round(r.pressure * 100)) : 1000;

export interface QueueOptions {
  /** Most jobs one dispatcher step enqueues. */
  enqueueLimit?: number;
}

export async function startBoss(pool: pg.Pool, leaseMs: number): Promise<PgBoss> {
  const { default: PgBossClass } = await import("pg-boss");
  const leaseSeconds = Math.max(1, Math.round(leaseMs / 1000));
  const boss = new PgBossClass({
    db: { executeSql: (text: string, values: unknown[]) => pool.query(text, values) },
    schema: "lifeboat_pgboss",
    // Expired jobs (a killed worker's) are found by maintenance: look often enough for the lease.
    maintenanceIntervalSeconds: Math.max(1, Math.min(60, Math.floor(leaseSeconds / 2))),
    monitorStateIntervalSeconds: 60,
  });
  boss.on("error", () => {});
  await boss.start();
  return boss;
}

export async function ensureQueue(boss: PgBoss, fleet: string, leaseMs: number): Promise<void> {
  const name = queueName(fleet);
  if (!(await boss.getQueue(name)))
    await boss
      .createQueue(name, {
        name,
        policy: "stately",
        retryLimit: 5,
        retryDelay: 1,
        expireInSeconds: Math.max(1, Math.round(leaseMs / 1000)),
      })
      .catch(async (e) => {
        // Another worker created it at the same moment.
        if (!(await boss.getQueue(name))) throw e;
      });
}

/** One dispatcher step on PostgreSQL: returns how many runs were enqueued (0 when another dispatcher holds the lock). */
export async function dispatchToQueue(
  rt: FleetRuntime,
  boss: PgBoss,
  sql: PgSql,
  o: QueueOptions = {},
): Promise<number> {
  let n = 0;
  await sql.tx(async () => {
    if (!(await rt.store.tryLockFleet(rt.def.name))) return;
    const runs = await dispatch(rt, o.enqueueLimit ?? 10_000, async (start) => {
      const db = { executeSql: async (text: string, values: unknown[]) => sql.client.query(text, values) };
      for (const r of start) {
        const job: QueueJob = {
          fleet: rt.def.name,
          account: r.state.account.id,
          window: r.window.key,
          at: rt.now(),
        };
        await boss.send(queueName(rt.def.name), job, {
          singletonKey: `${rt.def.name}|${job.account}|${job.window}`,
          priority: priorityOf(r),
          db,
        });
      }
    });
    n = runs.length;
  });
  return n;
}

/** Holds PostgreSQL's session-level advisory lock of one account and window until released. */
async function lockAccount(pool: pg.Pool, d: QueueJob): Promise<() => Promise<void>> {
  const h = createHash("sha256").update(`lifeboat fleet run ${d.fleet}|${d.account}|${d.window}`).digest();
  const keys = [h.readInt32BE(0), h.readInt32BE(4)];
  const c = await pool.connect();
  try {
    await c.query("SELECT pg_advisory_lock($1, $2)", keys);
  } catch (e) {
    c.release(true);
    throw e;
  }
  return async () => {
    await c.query("SELECT pg_advisory_unlock($1, $2)", keys).catch(() => {});
    c.release();
  };
}

/** Workers on this process: their pg-boss ids, and a way to wait until no job is in hand. */
export interface Workers {
  ids: string[];
  /** Resolves once no job handler of this process is running. */
  idle(): Promise<void>;
}

/** Works on the fleet's queue with `concurrency` jobs at once. */
export async function startWorkers(
  rt: FleetRuntime,
  boss: PgBoss,
  pool: pg.Pool,
  concurrency: number,
): Promise<Workers> {
  const ids: string[] = [];
  const inHand = new Set<Promise<void>>();
  for (let i = 0; i < concurrency; i++) {
    ids.push(
      await boss.work<QueueJob>(
        queueName(rt.def.name),
        { batchSize: 1, pollingIntervalSeconds: 0.5, priority: true },
        async (jobs) => {
          const p = (async () => {
            for (const job of jobs) {
              const d = job.data;
              // pg-boss redelivers a job whose lease ran out even if its worker is alive but
              // slow: the account's session lock makes the second delivery wait for the first
              // (then find its snapshot in the catalogue); a dead worker's lock goes with its
              // connection, so a retry after SIGKILL proceeds at once.
              const unlock = await lockAccount(pool, d);
              try {
                const at = rt.simulated ? d.at : Date.now();
                const res = await runAccount(rt, d.account, d.window, at);
                await reportRun(rt, d.account, d.window, res);
              } finally {
                await unlock();
              }
            }
          })();
          inHand.add(p);
          try {
            await p;
          } finally {
            inHand.delete(p);
          }
        },
      ),
    );
  }
  return {
    ids,
    async idle() {
      while (inHand.size > 0) await Promise.allSettled([...inHand]);
    },
  };
}
