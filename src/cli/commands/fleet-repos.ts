import { existsSync } from "node:fs";
import type { FleetDef } from "../../app/fleet/fleet-config.js";
import { type FleetRepos, GLOBAL_REPO, locateAccount, repoKeys } from "../../app/fleet/repos.js";
import type { FleetStore } from "../../app/fleet/store.js";
import { Repository } from "../../repo/repository.js";
import type { CliContext } from "../shell/context.js";
import { resolvePassword } from "../shell/password.js";

/**
 * A fleet's repositories as the CLI opens them: its own URLs (each with its `passwordFile`, else
 * the global password), or the global repository (-r, config, environment). Each is opened once.
 */
export function cliFleetRepos(c: CliContext, def: FleetDef | undefined): FleetRepos {
  const opened = new Map<string, Promise<Repository>>();
  const openOne = async (key: string): Promise<Repository> => {
    if (key === GLOBAL_REPO) return c.openRepo();
    const backend = await c.backend(key);
    if (!(await Repository.exists(backend))) throw Repository.notFound(backend);
    const ref = def?.repositories.find((r) => r.url === key);
    const password = ref?.passwordFile
      ? await resolvePassword({ passwordFile: ref.passwordFile })
      : await c.password();
    return Repository.open(backend, password);
  };
  return {
    keys: def ? repoKeys(def) : [GLOBAL_REPO],
    open(key) {
      let p = opened.get(key);
      if (!p) {
        p = openOne(key);
        opened.set(key, p);
        p.catch(() => opened.delete(key));
      }
      return p;
    },
    async close(keep) {
      for (const [k, p] of opened) {
        if (k === keep) continue;
        await p.then(
          (r) => r.close(),
          () => {},
        );
      }
      opened.clear();
    },
  };
}

/** The fleets an account command may mean: `--fleet NAME`'s, else the config file's. */
async function candidateFleets(c: CliContext, fleet: string | undefined): Promise<FleetDef[]> {
  const { selectFleets } = await import("../../app/fleet/select.js");
  return selectFleets(c.opts.config, fleet ? { name: fleet } : {}).catch(() => []);
}

/**
 * The repository holding a fleet account, for `snapshots/restore/drill/forget --account` and
 * `fleet erase`: the fleet's state says which one (several repositories: the account's recorded
 * placement); with no state left, each repository's catalogue is asked (one listing of the
 * account's folder each). An account no fleet knows is looked for in the global repository, as
 * before fleets had repositories of their own.
 */
export async function openAccountRepo(
  c: CliContext,
  account: string,
  fleet: string | undefined,
  defs?: FleetDef[],
): Promise<Repository> {
  const fleets = defs ?? (await candidateFleets(c, fleet));
  if (fleets.every((d) => d.repositories.length === 0)) return c.openRepo();
  const { openFleet } = await import("../../app/fleet/runtime.js");
  /** The located repository, open (the others closed); undefined when this fleet lacks the account. */
  const located = async (def: FleetDef, store: FleetStore | undefined) => {
    const repos = cliFleetRepos(c, def);
    let keep: string | undefined;
    try {
      const at = await locateAccount(def, store, repos, account);
      if (!at) return undefined;
      const repo = await repos.open(at.key);
      keep = at.key;
      return repo;
    } finally {
      await repos.close(keep);
    }
  };
  // The states first (no repository opened for a fleet that does not know the account), then
  // the catalogues.
  for (const def of fleets) {
    if (def.repositories.length === 0 || (!def.queue && !existsSync(def.statePath))) continue;
    const f = await openFleet(def).catch(() => undefined);
    if (!f) continue;
    try {
      if (await f.store.get(def.name, account)) {
        const repo = await located(def, f.store);
        if (repo) return repo;
      }
    } finally {
      await f.close();
    }
  }
  for (const def of fleets) {
    if (def.repositories.length === 0) continue;
    const repo = await located(def, undefined);
    if (repo) return repo;
  }
  return c.openRepo();
}
