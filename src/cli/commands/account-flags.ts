import type { FleetDef } from "../../app/fleet/fleet-config.js";
import { LifeboatError } from "../../core/errors.js";
import { acknowledgedIds, pinnedIds } from "../../ops/acks/acks.js";
import { applyPolicy, guardDecisions, isEmptyPolicy, type Policy } from "../../ops/forget/policy.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { accountEntries, dropEntries } from "../../snapshot/account-catalogue.js";
import type { CliContext } from "../shell/context.js";
import { bytes } from "../shell/format.js";

/**
 * `--account ID` for snapshots, restore, drill and forget: an account's snapshots come from its
 * catalogue (one listing of its own folder), never from a listing of every snapshot.
 */

// The fleet's modules load only when an account is restored or drilled: `snapshots` and
// `forget` (and every command that merely registers --account) start without them.
const fleetRestore = () => import("../../app/fleet/restore-account.js");

/** The fleet an account's snapshot belongs to, from the config file or the fleet's stored state. */
async function fleetOf(c: CliContext, name: string | undefined): Promise<FleetDef | undefined> {
  if (!name) return undefined;
  try {
    const { selectFleets } = await import("../../app/fleet/select.js");
    return (await selectFleets(c.opts.config, { name }))[0];
  } catch {
    return undefined;
  }
}

export async function restoreAccountCli(
  c: CliContext,
  repo: Repository,
  flags: { account: string; fleet?: string; time?: string; target?: string; intoSharedDb?: boolean },
): Promise<void> {
  let at: Date | undefined;
  if (flags.time !== undefined) {
    at = new Date(flags.time);
    if (Number.isNaN(at.getTime()))
      throw new LifeboatError(
        "USAGE",
        `--time ${JSON.stringify(flags.time)} is not a time like 2026-11-26T09:15:00Z`,
      );
  }
  const { accountSnapshot, restoreAccount } = await fleetRestore();
  const snap = await accountSnapshot(repo, flags.account, { fleet: flags.fleet, at });
  // A mail or DAV account goes back into the account on its server when no --target is given.
  const remote = snap.source === "imap" || snap.source === "dav";
  if (!flags.target && !flags.intoSharedDb && !remote)
    throw new LifeboatError(
      "USAGE",
      "restore --account needs --target DIR (or --into-shared-db for a rows account)",
      "e.g. lifeboat restore --account ann --target /tmp/ann",
    );
  if (flags.intoSharedDb && snap.source !== "rows")
    throw new LifeboatError(
      "USAGE",
      `account ${flags.account} is not a rows account (its snapshot is of ${snap.paths.join(" ")})`,
      "restore it with --target DIR",
    );
  const def = await fleetOf(c, snap.fleet);
  c.out.info(`restoring account ${flags.account}: snapshot ${snap.id.slice(0, 8)} (${snap.time})`);
  const started = Date.now();
  const r = await restoreAccount(repo, snap, def, {
    target: flags.intoSharedDb ? undefined : flags.target,
    intoSharedDb: flags.intoSharedDb === true,
  });
  const secs = (Date.now() - started) / 1000;
  c.out.info(
    r.rows !== undefined
      ? `restored ${r.rows} rows of account ${r.account} into ${r.where} in ${secs.toFixed(1)}s (other accounts' rows untouched)`
      : r.items !== undefined
        ? `restored account ${r.account} into ${r.where}: ${r.items} ${r.kind === "imap" ? "messages" : "items"} added, ${r.skipped ?? 0} already there, in ${secs.toFixed(1)}s (nothing on the server changed or deleted)`
        : `restored ${r.files} files (${bytes(r.bytes ?? 0)}) of account ${r.account} to ${r.where} in ${secs.toFixed(1)}s`,
  );
  c.out.emit({
    message_type: "summary",
    snapshot_id: snap.id,
    account: r.account,
    fleet: snap.fleet ?? null,
    kind: r.kind,
    where: r.where,
    files: r.files ?? null,
    rows: r.rows ?? null,
    items: r.items ?? null,
    skipped: r.skipped ?? null,
    errors: r.errors,
    seconds: secs,
  });
  if (r.errors > 0) process.exitCode = 1;
}

export async function accountSnapshotList(
  repo: Repository,
  account: string,
  fleet?: string,
): Promise<SnapshotWithId[]> {
  const { accountSnapshots } = await import("../../snapshot/account-catalogue.js");
  return accountSnapshots(repo, account, fleet);
}

export async function drillRef(repo: Repository, account: string, fleet?: string): Promise<string> {
  const { accountSnapshot } = await fleetRestore();
  return (await accountSnapshot(repo, account, { fleet })).id;
}

/** `forget --account ID` with a policy (or snapshot ids): within the account's own series. */
export async function forgetAccountCli(
  c: CliContext,
  repo: Repository,
  o: { account: string; fleet?: string; policy: Policy; ids: string[]; dryRun: boolean },
): Promise<string[]> {
  const entries = await accountEntries(repo, o.account, o.fleet);
  const snaps: SnapshotWithId[] = [];
  for (const e of entries) {
    try {
      snaps.push(await repo.loadSnapshot(e.snapshot));
    } catch {}
  }
  let remove: string[];
  if (o.ids.length > 0) {
    remove = snaps.filter((s) => o.ids.some((p) => s.id.startsWith(p))).map((s) => s.id);
  } else {
    if (isEmptyPolicy(o.policy))
      throw new LifeboatError(
        "USAGE",
        "no retention policy given, so nothing would be kept",
        "give --keep-daily, --keep-last, ... for the account's own series, or use `lifeboat fleet erase --account ID` to forget all of it",
      );
    // The same guards as a plain forget: flagged snapshots (and the good ones before them) and
    // pinned ones stay until acknowledged.
    const acked = await acknowledgedIds(repo);
    const pins = await pinnedIds(repo);
    remove = guardDecisions(
      applyPolicy(snaps, o.policy),
      (s) => (s.anomalies ?? []).length > 0 && !acked.has(s.id),
      (s) => pins.has(s.id),
    )
      .filter((d) => !d.keep)
      .map((d) => d.snapshot.id);
  }
  for (const id of remove)
    c.out.info(`${o.dryRun ? "would remove" : "removed"} snapshot ${id.slice(0, 8)} of account ${o.account}`);
  if (!o.dryRun) {
    for (const id of remove) await repo.deleteSnapshot(id);
    await dropEntries(
      repo,
      entries.filter((e) => remove.includes(e.snapshot)),
    );
  }
  c.out.emit({
    message_type: "summary",
    action: "forget",
    account: o.account,
    dry_run: o.dryRun,
    removed: remove,
  });
  return remove;
}
