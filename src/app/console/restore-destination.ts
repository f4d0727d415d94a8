import type { FleetDef } from "../fleet/fleet-config.js";
import type { RestoreInto } from "./api-types.js";
import { displayLocation } from "./repos.js";

/**
 * Where a whole-service restore puts a fleet's accounts (as `fleet restore --all` does,
 * fleet/restore-all.ts): under the target folder when one is given (folders as they were; rows,
 * mail and DAV accounts as files); otherwise folder accounts back into their own folders (which
 * must lie under a restore root), rows accounts into the fleet's shared tables, and mail and DAV
 * accounts back into each account on their server (nothing is written on this host).
 */
export type { RestoreInto } from "./api-types.js";

export function restoreInto(def: Pick<FleetDef, "kind">, target: string | undefined): RestoreInto {
  if (target) return "target";
  if (def.kind === "rows") return "shared-tables";
  if (def.kind === "imap" || def.kind === "dav") return "servers";
  return "own-folders";
}

/** The server mail or DAV accounts go back to (no password shown), or null. */
export function restoreServer(
  def: Pick<FleetDef, "kind" | "remote">,
  target: string | undefined,
): string | null {
  return !target && (def.kind === "imap" || def.kind === "dav") && def.remote
    ? displayLocation(def.remote.url)
    : null;
}

/**
 * Where one account's snapshot goes, and whether the console's restore roots allow it: only a
 * folder account restored in place writes outside the target, into its own folder.
 */
export function accountDestination(
  snap: { source?: string | undefined; paths: string[] },
  account: string,
  target: string | undefined,
  server: string | null,
): { where: string; inPlaceFolder: boolean } {
  if (target) return { where: `${target}/${encodeURIComponent(account)}`, inPlaceFolder: false };
  if (snap.source === "rows") return { where: "the shared tables", inPlaceFolder: false };
  if (snap.source === "imap" || snap.source === "dav")
    return { where: `the account ${account} on ${server ?? "its server"}`, inPlaceFolder: false };
  return { where: snap.paths[0]!, inPlaceFolder: true };
}
