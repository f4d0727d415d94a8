import type pg from "pg";
import type { Repository } from "../../repo/repository.js";
import { latestAccountSnapshot } from "../../snapshot/account-catalogue.js";
import { takeSnapshot } from "../../snapshot/take.js";
import { folderAccountSource, folderFingerprint } from "../../sources/accounts/folder.js";
import { connect, rowsAccountSource, rowsFingerprint } from "../../sources/accounts/rows.js";
import type { FleetDef } from "./fleet-config.js";
import type { AccountInfo } from "./store.js";

export interface AccountRunResult {
  outcome: "snapshot" | "unchanged";
  /** The account's newest snapshot after the run (new, or the one still holding its data). */
  snapshot: string | undefined;
  /** When the data is from: RPO counts from here. */
  goodAt: number;
  fingerprint: string;
  /** A snapshot of this window already existed (an at-least-once queue ran the account twice). */
  duplicate?: boolean;
  /** Files or rows that could not be read (the snapshot is marked incomplete). */
  errors?: number;
}

/** The source and change fingerprint of one account, by the fleet's kind. */
async function prepare(def: FleetDef, id: string, info: AccountInfo, client?: pg.Client) {
  if (def.kind === "rows") {
    const a = { url: def.rows!.url, tables: def.rows!.tables, account: id };
    return {
      kind: "rows",
      fingerprint: () => rowsFingerprint(a, client),
      source: async () => rowsAccountSource(a, client),
    };
  }
  const dir = info.fields.path!;
  return {
    kind: "folder",
    fingerprint: () => folderFingerprint(dir),
    source: () => folderAccountSource(dir, def.exclude),
  };
}

/**
 * Backs up one account for one window, at most once: the account's catalogue is read first (a
 * snapshot for this window already there — a duplicate delivery — is the result, nothing is
 * written); then its change fingerprint (folder mtime tree, rows digest, or the source's
 * `updated_at`) is compared with the one stored with its newest snapshot: unchanged means no
 * new snapshot, and the check counts towards the RPO. Otherwise a snapshot is taken against the
 * account's own parent (found in the catalogue, never by listing every snapshot).
 */
export async function backupAccount(
  repo: Repository,
  def: FleetDef,
  id: string,
  info: AccountInfo,
  window: string,
  at: number,
): Promise<AccountRunResult> {
  if (def.kind !== "rows") return backupWith(repo, def, id, info, window, at, undefined);
  // One connection for the rows account's check and export.
  const client = await connect(def.rows!.url);
  try {
    return await backupWith(repo, def, id, info, window, at, client);
  } finally {
    await client.end().catch(() => {});
  }
}

async function backupWith(
  repo: Repository,
  def: FleetDef,
  id: string,
  info: AccountInfo,
  window: string,
  at: number,
  client: pg.Client | undefined,
): Promise<AccountRunResult> {
  const latest = await latestAccountSnapshot(repo, id, { fleet: def.name });
  if (latest && latest.entry.window === window)
    return {
      outcome: "snapshot",
      snapshot: latest.snapshot.id,
      goodAt: Date.parse(latest.snapshot.time),
      fingerprint: latest.entry.fingerprint ?? "",
      duplicate: true,
    };
  const p = await prepare(def, id, info, client);
  const updatedAt = info.fields.updated_at;
  if (
    latest &&
    updatedAt !== undefined &&
    info.updatedAt === updatedAt &&
    info.lastSnapshot === latest.snapshot.id
  )
    return {
      outcome: "unchanged",
      snapshot: latest.snapshot.id,
      goodAt: at,
      fingerprint: latest.entry.fingerprint ?? "",
    };
  const fingerprint = await p.fingerprint();
  if (latest && latest.entry.fingerprint === fingerprint)
    return { outcome: "unchanged", snapshot: latest.snapshot.id, goodAt: at, fingerprint };
  const source = await p.source();
  const r = await takeSnapshot(repo, source, {
    host: def.name,
    parent: latest ? latest.snapshot.id : false,
    time: new Date(at),
    tags: [`fleet:${def.name}`],
    account: { fleet: def.name, id, window, kind: p.kind, fingerprint },
  });
  return {
    outcome: "snapshot",
    snapshot: r.snapshotId,
    goodAt: at,
    fingerprint,
    ...(r.errors.length > 0 ? { errors: r.errors.length } : {}),
  };
}
