import { stableFraction } from "./hash.js";
import type { FleetPolicy } from "./policy.js";

/**
 * How long an account waits after its `failures`-th failure in a window: the retry base doubled
 * per failure, capped, then "equal jitter" (between half and all of that) so that accounts that
 * failed together (a flapping upstream) do not retry together. The jitter comes from a hash of
 * fleet, account, window and failure count: deterministic, so tests and simulations repeat.
 */
export function retryDelay(
  policy: FleetPolicy,
  accountId: string,
  windowKey: string,
  failures: number,
): number {
  const exp = Math.min(policy.retryCapMs, policy.retryBaseMs * 2 ** Math.min(Math.max(failures - 1, 0), 40));
  const jitter = stableFraction(policy.name, accountId, windowKey, String(failures));
  return Math.round(exp / 2 + (exp / 2) * jitter);
}
