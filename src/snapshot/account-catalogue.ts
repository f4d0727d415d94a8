import { isLifeboatError } from "../core/errors.js";
import { type AccountEntry, accountEntryKind } from "../repo/records-account.js";
import type { Repository } from "../repo/repository.js";
import type { Snapshot, SnapshotWithId } from "../repo/snapshot.js";

/** What marks a snapshot as a fleet account's: fleet name, account id, and what it was for. */
export interface AccountTag {
  fleet: string;
  id: string;
  /** The scheduling window it was taken for. */
  window?: string;
  /** `folder`, `rows`, `imap`, `dav`. */
  kind: string;
  fingerprint?: string;
}

/** A catalogue entry with where it is stored. */
export interface CatalogueEntry extends AccountEntry {
  object: string;
}

/** Writes the catalogue entry of a new account snapshot (after the snapshot itself). */
export async function recordAccountSnapshot(
  repo: Repository,
  tag: AccountTag,
  snapshotId: string,
  snapshot: Snapshot,
): Promise<void> {
  const entry: AccountEntry = {
    version: 1,
    fleet: tag.fleet,
    account: tag.id,
    snapshot: snapshotId,
    time: snapshot.time,
    ...(tag.window ? { window: tag.window } : {}),
    kind: tag.kind,
    paths: snapshot.paths,
    ...(tag.fingerprint ? { fingerprint: tag.fingerprint } : {}),
  };
  await repo.records.write(accountEntryKind, entry, { label: tag.id });
}

/**
 * The catalogue entries of one account (of one fleet, when given), oldest first: one listing of
 * the account's own folder, whatever the number of snapshots in the repository.
 */
export async function accountEntries(
  repo: Repository,
  account: string,
  fleet?: string,
): Promise<CatalogueEntry[]> {
  const stored = await repo.records.list(accountEntryKind, { label: account });
  return stored
    .map((r) => ({ ...r.record, object: r.object }))
    .filter((e) => e.account === account && (fleet === undefined || e.fleet === fleet))
    .sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.snapshot < b.snapshot ? -1 : 1));
}

/** The account's snapshots, oldest first. Entries whose snapshot was forgotten are skipped. */
export async function accountSnapshots(
  repo: Repository,
  account: string,
  fleet?: string,
): Promise<SnapshotWithId[]> {
  const out: SnapshotWithId[] = [];
  for (const e of await accountEntries(repo, account, fleet)) {
    const s = await loadIfPresent(repo, e.snapshot);
    if (s) out.push(s);
  }
  return out;
}

/**
 * The account's newest snapshot (at or before `at`, when given), read from its catalogue: the
 * newest entry whose snapshot still exists. Undefined when it has none.
 */
export async function latestAccountSnapshot(
  repo: Repository,
  account: string,
  options: { fleet?: string; at?: Date } = {},
): Promise<{ snapshot: SnapshotWithId; entry: CatalogueEntry } | undefined> {
  const entries = await accountEntries(repo, account, options.fleet);
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    if (options.at && Date.parse(e.time) > options.at.getTime()) continue;
    const s = await loadIfPresent(repo, e.snapshot);
    if (s) return { snapshot: s, entry: e };
  }
  return undefined;
}

/** Every entry of the catalogue (a disaster restore with no fleet state left): lists the family. */
export async function allAccountEntries(repo: Repository): Promise<CatalogueEntry[]> {
  const stored = await repo.records.list(accountEntryKind);
  return stored.map((r) => ({ ...r.record, object: r.object }));
}

/** Removes catalogue entries (after their snapshots were forgotten). */
export async function dropEntries(repo: Repository, entries: readonly CatalogueEntry[]): Promise<void> {
  for (const e of entries) await repo.records.delete(e.object);
}

async function loadIfPresent(repo: Repository, id: string): Promise<SnapshotWithId | undefined> {
  try {
    return await repo.loadSnapshot(id);
  } catch (e) {
    if (isLifeboatError(e) && e.code === "NOT_FOUND") return undefined;
    throw e;
  }
}
