import { isLifeboatError } from "../../core/errors.js";
import { describeList, type ListedAccount, listAccounts } from "../../sources/accounts/list.js";
import { addAccount, changeAccount, type FleetAccount } from "./account.js";
import type { FleetDef } from "./fleet-config.js";
import { checkTimeZone } from "./parse.js";
import { placeRow } from "./repos.js";
import type { FleetStore, StoredAccount } from "./store.js";

export interface SyncResult {
  accounts: number;
  added: number;
  changed: number;
  /** One line per bad account (named with its source and the fix); the others go on. */
  problems: string[];
}

/** Checks listed accounts: one bad account is a problem line, never a stop for the rest. */
export function checkListed(
  def: FleetDef,
  listed: ListedAccount[],
): { ok: (FleetAccount & { fields: Record<string, string> })[]; problems: string[] } {
  const src = describeList(def.list);
  const problems: string[] = [];
  const seen = new Map<string, number>();
  for (const a of listed) seen.set(a.id, (seen.get(a.id) ?? 0) + 1);
  const ok: (FleetAccount & { fields: Record<string, string> })[] = [];
  const dupReported = new Set<string>();
  for (const a of listed) {
    if ((seen.get(a.id) ?? 0) > 1) {
      if (!dupReported.has(a.id))
        problems.push(
          `${src}: account id ${JSON.stringify(a.id)} appears ${seen.get(a.id)} times; none of them is backed up until each id is unique in the source`,
        );
      dupReported.add(a.id);
      continue;
    }
    const tz = a.timezone ?? def.timezone;
    if (!tz) {
      problems.push(
        `${src}: account ${a.id} has no timezone; give it a "timezone" field or set the fleet's "timezone" default`,
      );
      continue;
    }
    try {
      checkTimeZone(tz, a.id);
    } catch (e) {
      problems.push(
        `${src}: ${(e as Error).message}; ${isLifeboatError(e) ? e.hint : ""}`.replace(/; $/, ""),
      );
      continue;
    }
    if (def.kind === "folder" && !a.fields.path) {
      problems.push(
        `${src}: account ${a.id} has no "path" (its folder); add a path field, or use a glob source`,
      );
      continue;
    }
    ok.push({ id: a.id, timezone: tz, fields: a.fields });
  }
  return { ok, problems };
}

/**
 * Lists the fleet's accounts and brings the store in line: new accounts join (their first
 * window is the next one), an account whose timezone changed follows it (never two runs in one
 * night), fields are refreshed. Accounts gone from the source keep their rows and snapshots
 * (`fleet erase` forgets an account).
 */
export async function syncAccounts(def: FleetDef, store: FleetStore, now: number): Promise<SyncResult> {
  const listed = await listAccounts(def.list);
  const { ok, problems } = checkListed(def, listed);
  let added = 0;
  let changed = 0;
  // Read and write under the fleet's lock: a dispatcher on another host may be marking rows
  // running meanwhile, and a stale copy must never overwrite them.
  await store.tx(async () => {
    await store.lockFleet(def.name);
    const existing = new Map((await store.all(def.name)).map((r) => [r.state.account.id, r]));
    const writes: StoredAccount[] = [];
    for (const a of ok) {
      const account: FleetAccount = { id: a.id, timezone: a.timezone };
      const old = existing.get(a.id);
      // Several repositories: the account's placement is recorded once and never changes here
      // (a run corrects it only when the catalogues show the account elsewhere).
      if (!old) {
        const info = { fields: a.fields };
        const repository = placeRow(def, a.id, info);
        writes.push({
          state: addAccount(def.policy, account, now),
          info: repository !== undefined ? { ...info, repository } : info,
        });
        added++;
        continue;
      }
      const tzChanged = old.state.account.timezone !== a.timezone;
      const fieldsChanged = JSON.stringify(old.info.fields) !== JSON.stringify(a.fields);
      const repository = placeRow(def, a.id, old.info);
      const placed = repository !== undefined && repository !== old.info.repository;
      if (!tzChanged && !fieldsChanged && !placed) continue;
      const state = tzChanged ? changeAccount(def.policy, old.state, account, now).state : old.state;
      writes.push({
        state,
        info: { ...old.info, fields: a.fields, ...(repository !== undefined ? { repository } : {}) },
      });
      if (tzChanged || fieldsChanged) changed++;
    }
    if (writes.length > 0) await store.put(def.name, writes);
  });
  return { accounts: ok.length, added, changed, problems };
}
