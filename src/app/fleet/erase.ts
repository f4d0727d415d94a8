import { prune } from "../../ops/prune/prune.js";
import type { Repository } from "../../repo/repository.js";
import { accountEntries, dropEntries } from "../../snapshot/account-catalogue.js";
import type { FleetStore } from "./store.js";

export interface ErasePlan {
  account: string;
  fleet: string | undefined;
  snapshots: { id: string; time: string }[];
}

export interface EraseResult extends ErasePlan {
  forgotten: number;
  packsDeleted: number;
  bytesFreed: number;
  /** Objects storage kept under retention (Object Lock): a later prune finishes the erasure. */
  retained: number;
  /** Prune plans still waiting (another backup was running): a later prune finishes them. */
  waiting: string[];
}

/** What `fleet erase` would forget: every snapshot of the account, from its catalogue. */
export async function planErase(repo: Repository, account: string, fleet?: string): Promise<ErasePlan> {
  const entries = await accountEntries(repo, account, fleet);
  return { account, fleet, snapshots: entries.map((e) => ({ id: e.snapshot, time: e.time })) };
}

/**
 * Forgets every snapshot of one account, drops its catalogue and its fleet state, then prunes:
 * data only this account referenced is deleted; blobs other accounts share (dedup) stay.
 */
export async function eraseAccount(
  repo: Repository,
  account: string,
  options: { fleet?: string | undefined; store?: FleetStore | undefined; onStep?: (m: string) => void } = {},
): Promise<EraseResult> {
  const entries = await accountEntries(repo, account, options.fleet);
  let forgotten = 0;
  for (const e of entries) {
    try {
      await repo.deleteSnapshot(e.snapshot);
      forgotten++;
    } catch (err) {
      if ((err as { code?: string }).code !== "NOT_FOUND") throw err;
    }
  }
  await dropEntries(repo, entries);
  if (options.store && options.fleet) await options.store.remove(options.fleet, account);
  const p = await prune(repo, { ...(options.onStep ? { onStep: options.onStep } : {}) });
  return {
    account,
    fleet: options.fleet,
    snapshots: entries.map((e) => ({ id: e.snapshot, time: e.time })),
    forgotten,
    packsDeleted: p.swept.reduce((a, s) => a + s.deletedPacks, 0),
    bytesFreed: p.swept.reduce((a, s) => a + s.bytesFreed, 0),
    retained: p.swept.reduce((a, s) => a + s.retained, 0),
    waiting: p.waiting.map((w) => `${w.plan.slice(0, 8)}: ${w.reason}`),
  };
}
