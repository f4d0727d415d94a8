import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

/**
 * Names of lifeboat's file-system snapshots, and whether the process that made one still runs.
 * A name says who made it: `lifeboat-fs-<pid>-<start>-<random>-<n>`, where `start` is when that
 * process started (clock ticks since boot, /proc/PID/stat field 22), so a pid used again by
 * another process is not mistaken for the owner. Only names of this form are ever swept, and
 * only once their owner is gone; a snapshot kept for a guard's rollback is renamed
 * `lifeboat-guard-<snapshot>-<random>-<n>` and is removed only by `lifeboat ack`.
 */

export interface Owner {
  pid: number;
  /** Start time of the process (clock ticks since boot), "0" where /proc is not there. */
  start: string;
}

/** When process `pid` started, or undefined when it does not run (or /proc is not there). */
function startOf(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[19]; // field 22
}

let self: Owner | undefined;

/** This process. */
export function thisOwner(): Owner {
  self ??= { pid: process.pid, start: startOf(process.pid) ?? "0" };
  return self;
}

/** Whether the owner still runs. */
export function ownerAlive(o: Owner): boolean {
  if (o.start !== "0") return startOf(o.pid) === o.start;
  try {
    process.kill(o.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

const ACTIVE = /^lifeboat-fs-(\d+)-(\d+)-([0-9a-f]{8})$/;
const ACTIVE_PART = /^lifeboat-fs-(\d+)-(\d+)-([0-9a-f]{8})-(\d+)$/;
const KEPT_PART = /^lifeboat-guard-([0-9a-f]{8})-([0-9a-f]{8})-(\d+)$/;

/** A new name for the snapshots of one freeze (each snapshot adds `-<n>`). */
export function newFreezeName(): string {
  const o = thisOwner();
  return `lifeboat-fs-${o.pid}-${o.start}-${randomBytes(4).toString("hex")}`;
}

/** The owner a freeze name or snapshot name says made it; undefined for any other name. */
export function ownerOfName(name: string): Owner | undefined {
  const m = ACTIVE_PART.exec(name) ?? ACTIVE.exec(name);
  return m ? { pid: Number(m[1]), start: m[2]! } : undefined;
}

/** Whether `name` is the name of a snapshot lifeboat keeps for a guard's rollback. */
export const isKeptName = (name: string): boolean => KEPT_PART.test(name);

/** The name a kept snapshot gets: the guard's before snapshot id (8 hex digits) in it. */
export function keptName(active: string, snapshotId: string): string {
  const m = ACTIVE_PART.exec(active);
  if (!m) throw new Error(`not a lifeboat snapshot name: ${active}`);
  return `lifeboat-guard-${snapshotId.slice(0, 8)}-${m[3]}-${m[4]}`;
}
