import { LifeboatError } from "../../core/errors.js";
import { type DailyWindow, parseDuration, parseWindow } from "./parse.js";

/** What to do with an account whose window closed without a good run (after reporting it missed). */
export type CatchUp =
  /** Wait for its next window (the default: the window is there to spare the service by day). */
  | "next-window"
  /** Run it at once, flagged as a catch-up, while that is still well before its next window. */
  | "at-once";

/** How one fleet is scheduled. Build it with `fleetPolicy()`, which checks every field. */
export interface FleetPolicy {
  /** The fleet's name; with the account id it seeds each account's start time and jitter. */
  readonly name: string;
  /** The window in each account's local time, unless the account has its own. */
  readonly window: DailyWindow;
  /** Recovery point objective: an account whose newest good snapshot is older is over RPO. */
  readonly rpoMs: number;
  readonly catchUp: CatchUp;
  /** First retry delay after a failure; doubles per failure up to `retryCapMs`, with jitter. */
  readonly retryBaseMs: number;
  readonly retryCapMs: number;
}

export interface FleetPolicyOptions {
  name: string;
  /** Default `01:00-05:00`. */
  window?: string;
  /** Default `24h`. */
  rpo?: string;
  catchUp?: CatchUp;
  /** Default `5m`. */
  retryBase?: string;
  /** Default `1h`. */
  retryCap?: string;
}

export const DEFAULT_WINDOW = "01:00-05:00";
export const DEFAULT_RPO = "24h";

/** A fleet's policy from its settings as a user writes them; bad values are `LifeboatError`s. */
export function fleetPolicy(o: FleetPolicyOptions): FleetPolicy {
  if (!/^[A-Za-z0-9._-]+$/.test(o.name))
    throw new LifeboatError(
      "USAGE",
      `fleet name ${JSON.stringify(o.name)} is not allowed`,
      "name a fleet with letters, digits, . _ - (e.g. mail-eu)",
    );
  const base = o.retryBase ?? "5m";
  const cap = o.retryCap ?? "1h";
  const retryBaseMs = parseDuration(base, `fleet ${o.name} retry base`);
  const retryCapMs = parseDuration(cap, `fleet ${o.name} retry cap`);
  if (retryCapMs < retryBaseMs)
    throw new LifeboatError(
      "USAGE",
      `fleet ${o.name}: retry cap ${cap} is shorter than retry base ${base}`,
      "make the retry cap at least the retry base (defaults: 5m and 1h)",
    );
  if (o.catchUp !== undefined && o.catchUp !== "next-window" && o.catchUp !== "at-once")
    throw new LifeboatError(
      "USAGE",
      `fleet ${o.name}: catch-up ${JSON.stringify(o.catchUp)} is not known`,
      'use "next-window" or "at-once"',
    );
  return {
    name: o.name,
    window: parseWindow(o.window ?? DEFAULT_WINDOW, `fleet ${o.name} window`),
    rpoMs: parseDuration(o.rpo ?? DEFAULT_RPO, `fleet ${o.name} rpo`),
    catchUp: o.catchUp ?? "next-window",
    retryBaseMs,
    retryCapMs,
  };
}
