import { createHash } from "node:crypto";
import { LifeboatError } from "../../core/errors.js";
import type { Repository } from "../../repo/repository.js";
import { expandHome } from "../config.js";
import { fleetCounts } from "../fleet/account-page.js";
import { type FleetDef, fleetDef } from "../fleet/fleet-config.js";
import { formatWindow } from "../fleet/parse.js";
import { type FleetRepos, GLOBAL_REPO, locateAccount, repoKeys } from "../fleet/repos.js";
import { openFleet } from "../fleet/runtime.js";
import type { FleetStore } from "../fleet/store.js";
import type { FleetSummary } from "./api-types.js";
import type { ConsoleRepo, RepoSpec } from "./repos.js";

/**
 * The fleets a console shows (docs/fleet.md): those of the config file, or the ones a `fleet
 * run --ui` runs. Each is read through the fleet library: its state store (opened once, on first
 * use, or shared with the running fleet) answers the figures and pages; its repository is one
 * of the console's repositories.
 */
export interface FleetEntry {
  def: FleetDef;
  /** A store already open in this process (`fleet run --ui`); otherwise opened on first use. */
  store?: FleetStore;
}

/** A fleet's figures as the API answers them (api-types.ts). */
export type { FleetSummary } from "./api-types.js";

const SUMMARY_FRESH_MS = 3000;

export class ConsoleFleet {
  private opened: Promise<FleetStore> | undefined;
  private closeStore: (() => Promise<void>) | undefined;

  constructor(
    readonly def: FleetDef,
    readonly repo: ConsoleRepo,
    shared?: FleetStore,
    /** Several repositories: each one, by URL (`repo` is the first). */
    private readonly own: ConsoleRepo[] = [repo],
  ) {
    if (shared) this.opened = Promise.resolve(shared);
  }

  /** The fleet's repositories as the fleet library opens them (the console keeps them open). */
  repos(): FleetRepos {
    const byKey = (k: string) =>
      k === GLOBAL_REPO ? this.repo : (this.own.find((r) => r.spec.url === expandHome(k)) ?? this.repo);
    // Caught up once per use with the snapshots the fleet's workers wrote since it was opened.
    const caught = new Map<ConsoleRepo, Promise<Repository>>();
    return {
      keys: repoKeys(this.def),
      open: (k) => {
        const r = byKey(k);
        let p = caught.get(r);
        if (!p) {
          p = r.open().then(async (repo) => {
            await repo.catchUpIndex();
            return repo;
          });
          caught.set(r, p);
        }
        return p;
      },
      close: async () => {},
    };
  }

  /** The repository holding one account: the fleet state's placement, else the catalogues. */
  async repoFor(id: string): Promise<ConsoleRepo> {
    if (this.own.length < 2) return this.repo;
    const at = await locateAccount(this.def, await this.store(), this.repos(), id);
    return this.own.find((r) => at !== undefined && r.spec.url === expandHome(at.key)) ?? this.repo;
  }

  store(): Promise<FleetStore> {
    this.opened ??= openFleet(this.def).then(
      (f) => {
        this.closeStore = () => f.close();
        return f.store;
      },
      (e) => {
        this.opened = undefined; // a database that was down may be back next time
        throw e;
      },
    );
    return this.opened;
  }

  private cached: { at: number; summary: Promise<FleetSummary> } | undefined;

  /**
   * The fleet's figures, kept for a few seconds: every open Overview asks every 4 s, and for a
   * million accounts the counts are a pass over an index (docs/benchmarks.md).
   */
  summary(): Promise<FleetSummary> {
    if (!this.cached || Date.now() - this.cached.at > SUMMARY_FRESH_MS)
      this.cached = { at: Date.now(), summary: this.compute(Date.now()) };
    return this.cached.summary;
  }

  private async compute(now: number): Promise<FleetSummary> {
    const base = {
      name: this.def.name,
      kind: this.def.kind,
      repo: this.repo.spec.id,
      window: formatWindow(this.def.policy.window),
      rpoSeconds: Math.round(this.def.policy.rpoMs / 1000),
      queue: this.def.queue !== undefined,
    };
    try {
      const counts = await fleetCounts(await this.store(), this.def.name, now, this.def.policy.rpoMs);
      return {
        ...base,
        ...counts,
        proven30DaysFraction:
          counts.accounts === 0 ? 0 : Math.round((counts.proven30Days / counts.accounts) * 10_000) / 10_000,
        error: null,
      };
    } catch (e) {
      return {
        ...base,
        accounts: 0,
        states: { protected: 0, late: 0, failing: 0, never: 0 },
        backlog: { running: 0, failed: 0, due: 0, done: 0, missed: 0, new: 0 },
        proven30Days: 0,
        proven30DaysFraction: 0,
        error: e instanceof Error ? e.message : String(e),
      };
    }
  }

  /**
   * The account snapshots the fleet's workers wrote since a time, from its log of runs (the
   * console then never reads their documents: repos.ts), and the time of the newest run.
   */
  async accountSnapshotsSince(since: number): Promise<{ ids: string[]; newest: number }> {
    const runs = await (await this.store()).runs(this.def.name, since);
    const ids: string[] = [];
    let newest = 0;
    for (const r of runs) {
      newest = Math.max(newest, r.at);
      if (r.outcome === "snapshot" && r.snapshot) ids.push(r.snapshot);
    }
    return { ids, newest };
  }

  async close(): Promise<void> {
    await this.closeStore?.();
  }
}

/** The config file's fleets, each checked as every fleet command checks it. */
export function configFleets(raw: Record<string, unknown>[], file = "config"): FleetEntry[] {
  return raw.map((f, i) => ({ def: fleetDef(f, `${file}: fleets[${i}]`) }));
}

/** Specs for fleets' own repositories that no job writes to (the others are there already). */
export function fleetRepoSpecs(
  specs: RepoSpec[],
  fleets: FleetEntry[],
  mainPasswordFile: string | undefined,
): RepoSpec[] {
  const out = [...specs];
  for (const { def } of fleets)
    for (const ref of def.repositories) {
      const url = expandHome(ref.url);
      if (out.some((s) => s.url === url)) continue;
      out.push({
        id: createHash("sha256").update(url).digest("hex").slice(0, 10),
        url,
        passwordFile: ref.passwordFile ? expandHome(ref.passwordFile) : mainPasswordFile,
        jobs: [],
      });
    }
  return out;
}

export function makeFleets(fleets: FleetEntry[], repos: ConsoleRepo[]): ConsoleFleet[] {
  return fleets.map(({ def, store }) => {
    const url = def.repository ? expandHome(def.repository) : repos[0]!.spec.url;
    const own = def.repositories
      .map((ref) => repos.find((r) => r.spec.url === expandHome(ref.url)))
      .filter((r): r is ConsoleRepo => r !== undefined);
    const repo = repos.find((r) => r.spec.url === url) ?? repos[0]!;
    const fleet = new ConsoleFleet(def, repo, store, own.length > 0 ? own : [repo]);
    // Each of the fleet's repositories skips the account snapshots its runs name (an id from
    // another of them never shows up in this one's listing).
    for (const r of own.length > 0 ? own : [repo])
      r.addAccountFeed((since) => fleet.accountSnapshotsSince(since));
    return fleet;
  });
}

export function fleetByName(fleets: ConsoleFleet[], name: string): ConsoleFleet {
  const f = fleets.find((x) => x.def.name === name);
  if (!f) throw new LifeboatError("NOT_FOUND", `no fleet ${JSON.stringify(name)} in this console`);
  return f;
}
