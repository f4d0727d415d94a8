import { existsSync } from "node:fs";
import { LifeboatError } from "../../core/errors.js";
import { loadConfig } from "../config.js";
import { defaultFleetStatePath } from "../local-state.js";
import { type FleetDef, fleetDef, stateDir } from "./fleet-config.js";
import { FleetStore } from "./store.js";

/** A fleet given by flags (`--name --accounts --window --rpo ...`), for a quick start and scripts. */
export interface FleetFlags {
  name?: string;
  accounts?: string;
  window?: string;
  rpo?: string;
  timezone?: string;
  kind?: string;
  state?: string;
  queue?: string;
  concurrency?: string;
  catchUp?: boolean;
  /** `--repository URL` (repeatable): the fleet's own repositories. */
  repository?: string[];
}

/**
 * The fleets a command works on: the one given by flags (`--accounts FILE`), else the config
 * file's `fleets` (only `--name`'s, when given), else — for a fleet known only by name — the
 * definition the last `fleet run` stored in the fleet's state.
 */
export async function selectFleets(configFile: string | undefined, f: FleetFlags): Promise<FleetDef[]> {
  const catchUp = f.catchUp ? { catchUp: "at-once" } : {};
  if (f.accounts) {
    if (!f.name)
      throw new LifeboatError(
        "USAGE",
        "--accounts needs --name (the fleet's name)",
        "e.g. --name mail --accounts accounts.jsonl",
      );
    return [
      fleetDef(
        {
          name: f.name,
          accounts: f.accounts.includes("*") ? { glob: f.accounts } : { file: f.accounts },
          ...(f.window ? { window: f.window } : {}),
          ...(f.rpo ? { rpo: f.rpo } : {}),
          ...(f.timezone ? { timezone: f.timezone } : {}),
          ...(f.kind ? { kind: f.kind } : {}),
          ...(f.state ? { state: f.state } : {}),
          ...(f.queue ? { queue: f.queue } : {}),
          ...(f.concurrency ? { concurrency: Number(f.concurrency) } : {}),
          ...(f.repository && f.repository.length > 0 ? { repositories: f.repository } : {}),
          ...catchUp,
        },
        `fleet ${f.name} (flags)`,
      ),
    ];
  }
  const { config, file } = loadConfig(configFile);
  const fleets = config.fleets.map((raw, i) =>
    fleetDef(
      { ...raw, ...catchUp, ...(f.state ? { state: f.state } : {}) },
      `${file ?? "config"}: fleets[${i}]`,
    ),
  );
  const names = new Set<string>();
  for (const d of fleets) {
    if (names.has(d.name))
      throw new LifeboatError(
        "USAGE",
        `${file}: two fleets are named ${d.name}`,
        "give each fleet its own name",
      );
    names.add(d.name);
  }
  if (f.name) {
    const d = fleets.find((x) => x.name === f.name);
    if (d) return [d];
    const stored = await storedDef(f.name, f.state);
    if (stored) return [stored];
    throw new LifeboatError(
      "USAGE",
      `no fleet named ${f.name}${file ? ` in ${file}` : ""} and no state of it in ${f.state ?? stateDir()}`,
      "give the fleet with --config FILE, or by flags (--name --accounts FILE), or run it once first",
    );
  }
  if (fleets.length === 0)
    throw new LifeboatError(
      "USAGE",
      "no fleet given",
      "give a config file with a `fleets` list (--config FILE), or a fleet by flags: --name NAME --accounts FILE",
    );
  return fleets;
}

/** The definition a previous `fleet run` stored with the fleet's embedded state. */
async function storedDef(name: string, state: string | undefined): Promise<FleetDef | undefined> {
  const file = state ?? defaultFleetStatePath(name);
  if (!existsSync(file)) return undefined;
  const store = await FleetStore.sqlite(file);
  try {
    const raw = await store.getMeta(name, "definition");
    return raw
      ? fleetDef({ ...(JSON.parse(raw) as object), state: file }, `fleet ${name} (stored)`)
      : undefined;
  } finally {
    await store.close();
  }
}

/** What `fleet run` stores so later commands can name the fleet alone. */
export function definitionToStore(def: FleetDef): string {
  const l = def.list;
  return JSON.stringify({
    name: def.name,
    accounts:
      l.kind === "glob"
        ? { glob: l.glob, ...(l.timezone ? { timezone: l.timezone } : {}) }
        : l.kind === "file"
          ? { file: l.file }
          : { sql: l.url, query: l.query },
    kind: def.kind,
    ...(def.rows ? { rows: def.rows } : {}),
    ...(def.remote && (def.kind === "imap" || def.kind === "dav") ? { [def.kind]: def.remote } : {}),
    ...(def.timezone ? { timezone: def.timezone } : {}),
    window: `${String(Math.floor(def.policy.window.start / 60)).padStart(2, "0")}:${String(def.policy.window.start % 60).padStart(2, "0")}-${String(Math.floor(def.policy.window.end / 60)).padStart(2, "0")}:${String(def.policy.window.end % 60).padStart(2, "0")}`,
    rpo: `${Math.round(def.policy.rpoMs / 60_000)}m`,
    ...(def.repositories.length > 0 ? { repositories: def.repositories } : {}),
    ...(def.queue ? { queue: def.queue } : {}),
  });
}
