import type { Repository } from "../../repo/repository.js";
import { latestAccountSnapshot } from "../../snapshot/account-catalogue.js";
import type { TreeSource, VirtualSource } from "../../snapshot/source.js";
import { takeSnapshot } from "../../snapshot/take.js";
import { folderAccountSource, folderFingerprint } from "../../sources/accounts/folder.js";
import { isMysqlUrl } from "../../sources/accounts/mysql-list.js";
import { openRemoteAccount } from "../../sources/accounts/remote.js";
import { connect, rowsAccountSource, rowsFingerprint } from "../../sources/accounts/rows.js";
import { mysqlRowsFingerprint, mysqlRowsSource } from "../../sources/accounts/rows-mysql.js";
import { readNode } from "../../sources/imap/mail-snapshot.js";
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

/** What a run needs of one account, by the fleet's kind: its change fingerprint and its source. */
interface Prepared {
  kind: string;
  /** Undefined: the kind cannot tell whether the account changed (it is backed up). */
  fingerprint(): Promise<string | undefined>;
  source(): Promise<TreeSource | VirtualSource>;
  close(): Promise<void>;
}

/** Opens what the fleet's kind needs for one account (a database connection, a login, ...). */
async function prepare(repo: Repository, def: FleetDef, id: string, info: AccountInfo): Promise<Prepared> {
  if (def.kind === "rows" && isMysqlUrl(def.rows!.url)) {
    const a = { url: def.rows!.url, tables: def.rows!.tables, account: id };
    return {
      kind: "rows",
      fingerprint: () => mysqlRowsFingerprint(a),
      source: async () => mysqlRowsSource(a),
      close: async () => {},
    };
  }
  if (def.kind === "rows") {
    // One connection for the rows account's check and export.
    const client = await connect(def.rows!.url);
    const a = { url: def.rows!.url, tables: def.rows!.tables, account: id };
    return {
      kind: "rows",
      fingerprint: () => rowsFingerprint(a, client),
      source: async () => rowsAccountSource(a, client),
      close: () => client.end().catch(() => {}),
    };
  }
  if (def.kind === "imap" || def.kind === "dav") {
    // One login for the change check and the pull.
    const s = await openRemoteAccount(def.kind, def.remote!, id, info.fields);
    return {
      kind: def.kind,
      fingerprint: () => s.fingerprint(),
      source: async () => s.source((node) => readNode(repo, node, node.name)),
      close: () => s.close(),
    };
  }
  const dir = info.fields.path!;
  return {
    kind: "folder",
    fingerprint: () => folderFingerprint(dir),
    source: () => folderAccountSource(dir, def.exclude),
    close: async () => {},
  };
}

/**
 * Backs up one account for one window, at most once: the account's catalogue is read first (a
 * snapshot for this window already there — a duplicate delivery — is the result, nothing is
 * written); then its change fingerprint (folder mtime tree, rows digest, IMAP folder status,
 * DAV sync-tokens/CTags, or the source's `updated_at`) is compared with the one stored with its
 * newest snapshot: unchanged means no new snapshot, and the check counts towards the RPO. A
 * fingerprint taken before the pull can only be older than what the snapshot holds, so a change
 * in between costs one more snapshot the next night, never a missed one. Otherwise a snapshot is
 * taken against the account's own parent (found in the catalogue, never by listing every
 * snapshot).
 */
export async function backupAccount(
  repo: Repository,
  def: FleetDef,
  id: string,
  info: AccountInfo,
  window: string,
  at: number,
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
  const p = await prepare(repo, def, id, info);
  try {
    return await backupWith(repo, def, id, window, at, latest, p);
  } finally {
    await p.close();
  }
}

async function backupWith(
  repo: Repository,
  def: FleetDef,
  id: string,
  window: string,
  at: number,
  latest: Awaited<ReturnType<typeof latestAccountSnapshot>>,
  p: Prepared,
): Promise<AccountRunResult> {
  const fingerprint = await p.fingerprint();
  if (latest && fingerprint !== undefined && latest.entry.fingerprint === fingerprint)
    return { outcome: "unchanged", snapshot: latest.snapshot.id, goodAt: at, fingerprint };
  const source = await p.source();
  const r = await takeSnapshot(repo, source, {
    host: def.name,
    parent: latest ? latest.snapshot.id : false,
    time: new Date(at),
    tags: [`fleet:${def.name}`],
    account: {
      fleet: def.name,
      id,
      window,
      kind: p.kind,
      ...(fingerprint !== undefined ? { fingerprint } : {}),
    },
  });
  return {
    outcome: "snapshot",
    snapshot: r.snapshotId,
    goodAt: at,
    fingerprint: fingerprint ?? "",
    ...(r.errors.length > 0 ? { errors: r.errors.length } : {}),
  };
}
