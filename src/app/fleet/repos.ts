import type { Repository } from "../../repo/repository.js";
import { accountEntries } from "../../snapshot/account-catalogue.js";
import type { FleetDef } from "./fleet-config.js";
import { stableFraction } from "./hash.js";
import type { AccountInfo, FleetStore } from "./store.js";

/**
 * A fleet over several repositories (docs/fleet.md "Repositories at this scale"): each account
 * is placed in one of them once and stays there — its placement is recorded in the fleet's
 * state (`info.repository`), so adding a repository later moves nobody. Commands find an
 * account's repository in the state; with no state left, in the repositories' per-account
 * catalogues (one listing of the account's folder per repository).
 */

/** The key of the global repository (-r, config, environment): a fleet without its own. */
export const GLOBAL_REPO = "";

/** The repositories a command or a run may open, by key (a URL of the fleet, or GLOBAL_REPO). */
export interface FleetRepos {
  /** The fleet's repositories in definition order: their URLs, or [GLOBAL_REPO]. */
  readonly keys: readonly string[];
  /** Opens one, once (later calls share it). A URL no longer listed opens with the global password. */
  open(key: string): Promise<Repository>;
  /** Closes what was opened, except `keep` (handed to a caller that closes it). */
  close(keep?: string): Promise<void>;
}

export const repoKeys = (def: FleetDef): string[] =>
  def.repositories.length > 0 ? def.repositories.map((r) => r.url) : [GLOBAL_REPO];

/**
 * Where a new account goes: rendezvous hashing (the key with the highest hash of fleet, account
 * and key). Every process computes it alone (no counts to share between dispatchers), and adding
 * a repository changes the choice for only about 1/n of the ids, so the catalogue lookup that
 * serves a lost state finds most accounts on its first probe.
 */
export function placeAccount(fleet: string, id: string, keys: readonly string[]): string {
  let best = keys[0]!;
  let top = -1;
  for (const k of keys) {
    const h = stableFraction("lifeboat placement", fleet, id, k);
    if (h > top) {
      top = h;
      best = k;
    }
  }
  return best;
}

/** The account's repository as the fleet's state records it; undefined when it does not say. */
export function recordedRepo(def: FleetDef, info: AccountInfo | undefined): string | undefined {
  const keys = repoKeys(def);
  if (keys.length === 1) return keys[0];
  return info?.repository;
}

/**
 * The repository whose catalogue holds the account (of this fleet), probing its placement
 * first, then the others in order: one listing per repository at most. Undefined: none has it.
 */
export async function findInCatalogues(
  repos: FleetRepos,
  fleet: string,
  id: string,
): Promise<string | undefined> {
  const first = placeAccount(fleet, id, repos.keys);
  for (const k of [first, ...repos.keys.filter((x) => x !== first)]) {
    const repo = await repos.open(k);
    if ((await accountEntries(repo, id, fleet)).length > 0) return k;
  }
  return undefined;
}

/**
 * Where the account lives: the fleet's state, else (no row, or a row from before the fleet had
 * several repositories) the catalogues. `how` says which answered.
 */
export async function locateAccount(
  def: FleetDef,
  store: FleetStore | undefined,
  repos: FleetRepos,
  id: string,
): Promise<{ key: string; how: "state" | "catalogue" } | undefined> {
  const row = store ? await store.get(def.name, id) : undefined;
  const recorded = row ? recordedRepo(def, row.info) : undefined;
  if (recorded !== undefined) return { key: recorded, how: "state" };
  const found = await findInCatalogues(repos, def.name, id);
  return found !== undefined ? { key: found, how: "catalogue" } : undefined;
}

/**
 * Placement for a row of the state that has none yet (`sync`): a new account by hash; an
 * account with snapshots from before the fleet listed several repositories stays in the first
 * one (the repository it had; docs/fleet.md says to list it first).
 */
export function placeRow(def: FleetDef, id: string, info: AccountInfo): string | undefined {
  const keys = repoKeys(def);
  if (keys.length === 1) return undefined;
  if (info.repository !== undefined) return info.repository;
  return info.lastSnapshot !== undefined ? keys[0] : placeAccount(def.name, id, keys);
}
