import type pg from "pg";

/** A workload running beside a backup: how many transactions committed so far, and stop. */
export interface Writer {
  readonly count: number;
  stop(): Promise<void>;
}

/**
 * Two connections moving money between `accounts` accounts of the `bank` database in
 * transactions, each transfer logged in `transfers`, until stopped: the invariant (total balance,
 * one log row per committed transfer) is what consistency tests check after a restore.
 */
export function startPgTransfers(connect: () => Promise<pg.Client>, accounts: number): Writer {
  let stop = false;
  let count = 0;
  const worker = async () => {
    const c = await connect();
    while (!stop) {
      const src = 1 + Math.floor(Math.random() * accounts);
      const dst = 1 + Math.floor(Math.random() * accounts);
      const amount = 1 + Math.floor(Math.random() * 50);
      await c.query("BEGIN");
      await c.query("UPDATE accounts SET balance = balance - $1 WHERE id = $2", [amount, src]);
      await c.query("UPDATE accounts SET balance = balance + $1 WHERE id = $2", [amount, dst]);
      await c.query("INSERT INTO transfers (src, dst, amount) VALUES ($1, $2, $3)", [src, dst, amount]);
      await c.query("COMMIT");
      count++;
    }
    await c.end();
  };
  const done = Promise.all([worker(), worker()]);
  return {
    get count() {
      return count;
    },
    async stop() {
      stop = true;
      await done;
    },
  };
}
