import { type ItemError, LifeboatError } from "../core/errors.js";
import {
  type DrillOptions,
  type DrillRecord,
  type DrillResult,
  drillFiles,
  recordedFailures,
  recordHead,
  selectDrillSnapshot,
  storeDrill,
} from "../ops/drill/drill.js";
import type { Repository } from "../repo/repository.js";
import { type DumpEngine, dumpEngineOf } from "../sources/db-engine.js";
import { drillDatabase } from "./drill-database.js";

export interface FullDrillOptions extends DrillOptions {
  /**
   * Servers to restore dump snapshots into (`postgres://USER:PW@HOST:PORT/`,
   * `mysql://USER:PW@HOST:PORT/`), by engine. A drill of a dump snapshot needs the one for its engine.
   */
  scratchDb?: Partial<Record<DumpEngine, string>>;
}

/**
 * Runs a restore drill of any snapshot and records it: files and SQLite snapshots are restored
 * into a scratch folder (ops/drill), database dumps into a scratch database on a server the
 * operator names (drill-database.ts). Never throws for damaged data: the result says what
 * failed. Throws for what stops a drill from running at all (no such snapshot, storage or
 * scratch server unreachable).
 */
export async function drill(repo: Repository, options: FullDrillOptions = {}): Promise<DrillResult> {
  if (options.sample !== undefined && (!Number.isInteger(options.sample) || options.sample < 1)) {
    throw new LifeboatError("USAGE", `--sample ${options.sample}: give a whole number of files, at least 1`);
  }
  const snap = await selectDrillSnapshot(repo, options);
  const started = new Date();
  const engine = dumpEngineOf(snap.source);
  if (!engine) {
    const r = await drillFiles(repo, snap, options, started);
    return { ...r, ...(await storeDrill(repo, r.record, options)) };
  }
  if (options.sample !== undefined)
    throw new LifeboatError(
      "USAGE",
      `snapshot ${snap.id.slice(0, 8)} is a database dump: --sample applies to file snapshots`,
      "drill it without --sample (each database is restored whole)",
    );
  const d = await drillDatabase(repo, snap, engine, options.scratchDb ?? {}, {
    keepScratch: options.keepScratch === true,
  });
  const errors: ItemError[] = d.failures.map((f) => ({ path: f.path, code: "DAMAGED", message: f.reason }));
  if (d.engineCheck !== undefined && d.engineCheck !== "ok")
    errors.push({ path: "/", code: "ENGINE_CHECK", message: d.engineCheck });
  const record: DrillRecord = {
    ...recordHead(snap, started, snap.source ?? "files"),
    mode: "full",
    files: d.files,
    bytes: d.bytes,
    seconds: Math.round(d.seconds * 1000) / 1000,
    ok: errors.length === 0,
    ...recordedFailures(errors.filter((e) => e.code !== "ENGINE_CHECK")),
    ...(d.engineCheck !== undefined ? { engineCheck: d.engineCheck } : {}),
    databases: d.databases,
  };
  return {
    ...(await storeDrill(repo, record, options)),
    record,
    errors,
    snapshot: snap,
    scratch: d.kept.length > 0 ? d.kept.join(" ") : undefined,
    warnings: d.warnings,
  };
}
