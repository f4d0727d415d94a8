import type { FleetDef } from "./fleet-config.js";
import { formatWindow } from "./parse.js";
import { accountRpo, backlogState, type FleetFigures, fleetFigures } from "./rpo.js";
import type { FleetStore, RunEvent } from "./store.js";

const DAY = 86_400_000;
const iso = (t: number | undefined) =>
  t === undefined || !Number.isFinite(t) ? null : new Date(t).toISOString();

export interface FleetStatus {
  fleet: string;
  at: string;
  window: string;
  rpo_hours: number;
  accounts: number;
  protected: number;
  at_risk: number;
  over_rpo: number;
  never_backed_up: number;
  backlog: FleetFigures["backlog"];
  age_hours: { p50: number; p99: number; max: number };
  /** The last 24 h of runs: how long from first start to last report, and the counts. */
  last_window: {
    runs: number;
    snapshots: number;
    unchanged: number;
    failed: number;
    missed: number;
    seconds: number;
    first: string | null;
    last: string | null;
  };
  failures: { account: string; reason: string }[];
  drills: {
    proven_30d: number;
    fraction_30d: number;
    recent: { account: string; at: string; ok: boolean; error?: string }[];
  };
}

const hours = (ms: number) => Math.round((ms / 3_600_000) * 100) / 100;

export async function fleetStatus(def: FleetDef, store: FleetStore, now: number): Promise<FleetStatus> {
  const rows = await store.all(def.name);
  const f = fleetFigures(
    def.policy,
    rows.map((r) => r.state),
    now,
  );
  const runs = await store.runs(def.name, now - DAY);
  const count = (o: RunEvent["outcome"]) => runs.filter((r) => r.outcome === o).length;
  const worked = runs.filter((r) => r.outcome !== "missed");
  const first = worked.length ? Math.min(...worked.map((r) => r.at - (r.seconds ?? 0) * 1000)) : undefined;
  const last = worked.length ? Math.max(...worked.map((r) => r.at)) : undefined;
  const drills = await store.drills(def.name, now - 30 * DAY);
  const proven = new Set(drills.filter((d) => d.ok).map((d) => d.id));
  return {
    fleet: def.name,
    at: new Date(now).toISOString(),
    window: formatWindow(def.policy.window),
    rpo_hours: hours(def.policy.rpoMs),
    accounts: f.accounts,
    protected: f.rpo.protected,
    at_risk: f.rpo["at-risk"],
    over_rpo: f.rpo["over-rpo"],
    never_backed_up: f.rpo.never,
    backlog: f.backlog,
    age_hours: { p50: hours(f.age.p50), p99: hours(f.age.p99), max: hours(f.age.max) },
    last_window: {
      runs: worked.length,
      snapshots: count("snapshot"),
      unchanged: count("unchanged"),
      failed: count("failed"),
      missed: count("missed"),
      seconds: first !== undefined && last !== undefined ? Math.round((last - first) / 100) / 10 : 0,
      first: iso(first),
      last: iso(last),
    },
    failures: rows
      .filter((r) => r.info.lastError !== undefined)
      .map((r) => ({ account: r.state.account.id, reason: r.info.lastError! })),
    drills: {
      proven_30d: proven.size,
      fraction_30d: f.accounts === 0 ? 0 : Math.round((proven.size / f.accounts) * 10_000) / 10_000,
      recent: drills.slice(-10).map((d) => ({
        account: d.id,
        at: new Date(d.at).toISOString(),
        ok: d.ok,
        ...(d.error ? { error: d.error } : {}),
      })),
    },
  };
}

export async function accountStatus(def: FleetDef, store: FleetStore, id: string, now: number) {
  const row = await store.get(def.name, id);
  if (!row) return undefined;
  const s = row.state;
  const runs = await store.runs(def.name, 0, id);
  const drills = await store.accountDrills(def.name, id);
  return {
    fleet: def.name,
    account: id,
    timezone: s.account.timezone,
    rpo: accountRpo(def.policy, s, now),
    state: backlogState(s, now),
    newest_good: iso(s.newestGood),
    age_hours: s.newestGood === undefined ? null : hours(now - s.newestGood),
    window: s.current.key,
    window_opens: iso(s.current.opensAt),
    window_closes: iso(s.current.closesAt),
    starts_at: iso(s.startAt),
    next_due: iso(s.nextDue),
    failures_in_window: s.failures,
    last_error: row.info.lastError ?? null,
    last_snapshot: row.info.lastSnapshot ?? null,
    repository: row.info.repository ?? def.repository ?? null,
    fields: row.info.fields,
    runs: runs.slice(-20).map((r) => ({
      window: r.window,
      at: new Date(r.at).toISOString(),
      outcome: r.outcome,
      snapshot: r.snapshot ?? null,
      seconds: r.seconds ?? null,
      error: r.error ?? null,
      worker: r.worker ?? null,
    })),
    last_drill: drills.at(-1)
      ? {
          at: new Date(drills.at(-1)!.at).toISOString(),
          ok: drills.at(-1)!.ok,
          snapshot: drills.at(-1)!.snapshot,
        }
      : null,
  };
}
