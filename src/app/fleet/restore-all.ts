import { readFileSync } from "node:fs";
import path from "node:path";
import { mapLimit } from "../../core/concurrency.js";
import { allAccountEntries } from "../../snapshot/account-catalogue.js";
import type { FleetDef } from "./fleet-config.js";
import { type FleetRepos, findInCatalogues, recordedRepo } from "./repos.js";
import { accountSnapshot, restoreAccount } from "./restore-account.js";
import type { AccountOutcome, RestoreAllResult } from "./restore-all-result.js";
import type { FleetStore } from "./store.js";

export interface RestoreAllOptions {
  /**
   * Restore folder accounts under TARGET/<id> (and rows, mail and DAV accounts as files) instead
   * of in place (folders, shared tables, the accounts on their servers).
   */
  target?: string | undefined;
  parallel: number;
  /** Name of the restore run; the same name resumes it (accounts already restored are skipped). */
  run: string;
  /** Newest snapshot at or before this time. */
  at?: Date | undefined;
  onAccount?: (r: AccountOutcome) => void;
  /**
   * Called with a folder account's own folder before it is restored in place (no `target`);
   * throwing fails that account alone (the console refuses folders outside its restore roots).
   */
  checkInPlace?: (folder: string) => Promise<void>;
  signal?: AbortSignal;
}

export type { AccountOutcome, RestoreAllResult };

/**
 * Priority order for a whole-service restore: a file of ids (first first) or an account field
 * (higher first); accounts not ranked follow in id order.
 */
export function priorityOrder(
  ids: string[],
  def: FleetDef | undefined,
  fields: Map<string, Record<string, string>>,
): string[] {
  const p = def?.priority;
  const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  if (!p) return [...ids].sort(byId);
  if (p.includes("/") || p.endsWith(".txt") || p.endsWith(".csv")) {
    const rank = new Map<string, number>();
    readFileSync(path.resolve(p), "utf8")
      .split(/\r?\n/)
      .map((l) => l.split(",")[0]!.trim())
      .filter(Boolean)
      .forEach((id, i) => {
        if (!rank.has(id)) rank.set(id, i);
      });
    return [...ids].sort((a, b) => (rank.get(a) ?? Infinity) - (rank.get(b) ?? Infinity) || byId(a, b));
  }
  const v = (id: string) => {
    const x = Number(fields.get(id)?.[p]);
    return Number.isFinite(x) ? x : -Infinity;
  };
  return [...ids].sort((a, b) => v(b) - v(a) || byId(a, b));
}

/**
 * Whole-service restore: every account of the fleet back from its newest snapshot, in priority
 * order, `parallel` at once, each result recorded in the fleet state as it lands so a crashed
 * or interrupted run resumes where it stopped. Accounts come from the fleet state or, when that
 * was lost too, from the repositories' account catalogues; each account is restored from its own
 * repository (the state's placement, else the catalogue that lists it).
 */
export async function restoreAll(
  repos: FleetRepos,
  def: FleetDef,
  store: FleetStore,
  o: RestoreAllOptions,
): Promise<RestoreAllResult> {
  const started = Date.now();
  const rows = await store.all(def.name);
  const fields = new Map(rows.map((r) => [r.state.account.id, r.info.fields]));
  const where = new Map<string, string>();
  for (const r of rows) {
    const k = recordedRepo(def, r.info);
    if (k !== undefined) where.set(r.state.account.id, k);
  }
  let ids = rows.map((r) => r.state.account.id);
  if (ids.length === 0)
    for (const k of repos.keys)
      for (const e of await allAccountEntries(await repos.open(k)))
        if (e.fleet === def.name && !where.has(e.account)) where.set(e.account, k);
  if (ids.length === 0) ids = [...where.keys()];
  const order = priorityOrder(ids, def, fields);
  const done = await store.restoreResults(def.name, o.run);
  const results = await mapLimit(order, Math.max(1, o.parallel), async (id): Promise<AccountOutcome> => {
    o.signal?.throwIfAborted();
    if (done.get(id)?.ok) {
      const r = { account: id, ok: true, skipped: true, seconds: 0 };
      o.onAccount?.(r);
      return r;
    }
    const t0 = Date.now();
    let out: AccountOutcome;
    try {
      const key = where.get(id) ?? (await findInCatalogues(repos, def.name, id)) ?? repos.keys[0]!;
      const repo = await repos.open(key);
      const snap = await accountSnapshot(repo, id, { fleet: def.name, at: o.at });
      const target = o.target ? path.join(o.target, encodeURIComponent(id)) : undefined;
      if (!target && !["rows", "imap", "dav"].includes(snap.source ?? "") && o.checkInPlace)
        await o.checkInPlace(snap.paths[0]!);
      const r = await restoreAccount(repo, snap, def, { target, intoSharedDb: !o.target });
      out = {
        account: id,
        ok: r.errors === 0,
        snapshot: snap.id,
        kind: r.kind,
        seconds: (Date.now() - t0) / 1000,
        ...(r.files !== undefined ? { files: r.files } : {}),
        ...(r.rows !== undefined ? { rows: r.rows } : {}),
        ...(r.items !== undefined ? { items: r.items } : {}),
        ...(r.errors > 0 ? { error: `${r.errors} path(s) could not be restored` } : {}),
      };
    } catch (e) {
      out = {
        account: id,
        ok: false,
        seconds: (Date.now() - t0) / 1000,
        error: (e as Error).message.split("\n")[0]!,
      };
    }
    await store.putRestore(def.name, o.run, id, out.ok, out.snapshot, out.seconds, out.error);
    o.onAccount?.(out);
    return out;
  });
  return {
    run: o.run,
    accounts: order.length,
    restored: results.filter((r) => r.ok && !r.skipped).length,
    skipped: results.filter((r) => r.skipped).length,
    failed: results.filter((r) => !r.ok).length,
    seconds: (Date.now() - started) / 1000,
    results,
  };
}
