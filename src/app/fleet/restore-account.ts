import { promises as fs } from "node:fs";
import path from "node:path";
import { LifeboatError } from "../../core/errors.js";
import { restore } from "../../ops/restore/restore.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { latestAccountSnapshot } from "../../snapshot/account-catalogue.js";
import { resolveSubpath } from "../../snapshot/subpath.js";
import { isMysqlUrl } from "../../sources/accounts/mysql-list.js";
import { pushRemoteAccount } from "../../sources/accounts/remote.js";
import { restoreRowsAccount } from "../../sources/accounts/rows.js";
import { restoreMysqlRowsAccount } from "../../sources/accounts/rows-mysql.js";
import type { FleetDef } from "./fleet-config.js";

/** An account's snapshot: the newest, or the newest at or before `at`; a clear error when none. */
export async function accountSnapshot(
  repo: Repository,
  id: string,
  options: { fleet?: string | undefined; at?: Date | undefined } = {},
): Promise<SnapshotWithId> {
  const found = await latestAccountSnapshot(repo, id, {
    ...(options.fleet ? { fleet: options.fleet } : {}),
    ...(options.at ? { at: options.at } : {}),
  });
  if (!found)
    throw new LifeboatError(
      "SNAPSHOT_NOT_FOUND",
      `account ${id} has no snapshot${options.at ? ` at or before ${options.at.toISOString()}` : ""}${options.fleet ? ` in fleet ${options.fleet}` : ""} in this repository`,
      "check the account id and the repository (`lifeboat fleet status --account ID` says which one holds it)",
    );
  return found.snapshot;
}

export interface AccountRestoreResult {
  account: string;
  snapshot: string;
  kind: "folder" | "rows" | "imap" | "dav";
  where: string;
  files?: number;
  bytes?: number;
  rows?: number;
  /** Mail and DAV accounts put back on their server: messages or items added, and those already there. */
  items?: number;
  skipped?: number;
  errors: number;
}

/**
 * Restores one account: a folder account into `target` (default: its own folder, the path it
 * was backed up from), a rows account into the fleet's shared tables for that account alone
 * (or, given `target`, its exported rows as files), a mail or DAV account back into the account
 * on its server (or, given `target`, its messages and items as files). Reads only the
 * account's own blobs.
 */
export async function restoreAccount(
  repo: Repository,
  snap: SnapshotWithId,
  def: FleetDef | undefined,
  options: { target?: string | undefined; intoSharedDb?: boolean },
): Promise<AccountRestoreResult> {
  const id = snap.account ?? "?";
  if (snap.source === "rows") {
    if (!options.target || options.intoSharedDb) {
      const meta = (snap.meta ?? {}) as {
        tables?: { table: string; owner?: string; query?: string; delete?: string }[];
      };
      const url = def?.rows?.url;
      if (!url)
        throw new LifeboatError(
          "USAGE",
          `account ${id} is a rows account and no shared database is known for fleet ${snap.fleet}`,
          "give the fleet (--config FILE with its rows.url), or restore its rows as files with --target DIR",
        );
      const a = { url, tables: def?.rows?.tables ?? meta.tables ?? [], account: id };
      const r = isMysqlUrl(url)
        ? await restoreMysqlRowsAccount(repo, snap, a)
        : await restoreRowsAccount(repo, snap, a);
      return {
        account: id,
        snapshot: snap.id,
        kind: "rows",
        where: url.replace(/:[^:@/]*@/, ":***@"),
        rows: Object.values(r.tables).reduce((a, b) => a + b, 0),
        errors: 0,
      };
    }
    const r = await restore(repo, snap, { target: options.target, subpath: "/" });
    return {
      account: id,
      snapshot: snap.id,
      kind: "rows",
      where: options.target,
      files: r.files,
      bytes: r.bytes,
      errors: r.errors.length,
    };
  }
  if (snap.source === "imap" || snap.source === "dav") {
    if (!options.target) {
      if (!def?.remote)
        throw new LifeboatError(
          "USAGE",
          `account ${id} is a ${snap.source === "imap" ? "mail" : "DAV"} account and fleet ${snap.fleet} is not known here, so there are no credentials to log in with`,
          "give the fleet (--config FILE with its server and passwordCommand), or restore the account's files with --target DIR",
        );
      const r = await pushRemoteAccount(repo, snap, def.remote, id);
      return {
        account: id,
        snapshot: snap.id,
        kind: snap.source,
        where: r.where,
        items: r.written,
        skipped: r.skipped,
        errors: 0,
      };
    }
    const r = await restore(repo, snap, { target: options.target, subpath: "/" });
    return {
      account: id,
      snapshot: snap.id,
      kind: snap.source,
      where: options.target,
      files: r.files,
      bytes: r.bytes,
      errors: r.errors.length,
    };
  }
  const orig = snap.paths[0]!;
  const target = options.target ?? orig;
  if (!path.isAbsolute(orig))
    throw new LifeboatError(
      "USAGE",
      `account ${id}'s snapshot has no absolute folder path`,
      "restore it with --target DIR",
    );
  const r = await restore(repo, snap, { target, subpath: orig });
  await setFolderMeta(repo, snap, orig, target);
  return {
    account: id,
    snapshot: snap.id,
    kind: "folder",
    where: target,
    files: r.files + r.filesSkipped,
    bytes: r.bytes,
    errors: r.errors.length,
  };
}

/**
 * The account folder itself gets its mode, owner and times back (restore sets them for what it
 * restores inside `target`; the folder restored into is the account's own root here).
 */
async function setFolderMeta(
  repo: Repository,
  snap: SnapshotWithId,
  orig: string,
  target: string,
): Promise<void> {
  const parent = await resolveSubpath(repo, snap, path.dirname(orig));
  if (parent.kind !== "dir") return;
  const node = (await repo.loadTree(parent.tree)).nodes.find((n) => n.name === path.basename(orig));
  if (!node || node.type !== "dir") return;
  await fs.chmod(target, node.mode);
  if (process.getuid?.() === 0) await fs.chown(target, node.uid, node.gid).catch(() => {});
  const sec = Number(BigInt(node.mtime) / 1_000_000n) / 1000;
  await fs.utimes(target, sec, sec);
}
