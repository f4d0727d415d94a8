import { LifeboatError } from "../../core/errors.js";

/**
 * Names of the files PostgreSQL archives: WAL segments (`TTTTTTTTXXXXXXXXYYYYYYYY`: timeline,
 * then the segment number as two 32-bit halves), timeline history files (`TTTTTTTT.history`),
 * backup history files (`<segment>.<offset>.backup`) and partial segments (`<segment>.partial`).
 */
export type WalFileKind = "segment" | "history" | "backup" | "partial";

export interface WalName {
  name: string;
  kind: WalFileKind;
  timeline: number;
  /** For everything but history files: the segment's high and low 32-bit name parts. */
  log?: number;
  seg?: number;
}

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;
const HISTORY = /^([0-9A-F]{8})\.history$/;
const BACKUP = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.[0-9A-F]{8}\.backup$/;
const PARTIAL = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.partial$/;

const hex = (s: string) => Number.parseInt(s, 16);

/** Parses a WAL file name; undefined for anything PostgreSQL would not archive. */
export function parseWalName(name: string): WalName | undefined {
  let m = SEGMENT.exec(name);
  if (m) return { name, kind: "segment", timeline: hex(m[1]!), log: hex(m[2]!), seg: hex(m[3]!) };
  m = HISTORY.exec(name);
  if (m) return { name, kind: "history", timeline: hex(m[1]!) };
  m = BACKUP.exec(name);
  if (m) return { name, kind: "backup", timeline: hex(m[1]!), log: hex(m[2]!), seg: hex(m[3]!) };
  m = PARTIAL.exec(name);
  if (m) return { name, kind: "partial", timeline: hex(m[1]!), log: hex(m[2]!), seg: hex(m[3]!) };
  return undefined;
}

export function requireWalName(name: string): WalName {
  const w = parseWalName(name);
  if (!w)
    throw new LifeboatError(
      "USAGE",
      `${JSON.stringify(name)} is not the name of a WAL segment, .history, .backup or .partial file`,
      "archive_command passes %p (a path ending in such a name); restore_command passes %f",
    );
  return w;
}

/** Segments per 4 GiB "log id" for a segment size (256 for the default 16 MiB). */
export const segmentsPerId = (segSize: number): number => 0x1_0000_0000 / segSize;

/** A segment's sequence number (consecutive segments differ by one). */
export function segmentNumber(w: { log?: number; seg?: number }, segSize: number): number {
  return (w.log ?? 0) * segmentsPerId(segSize) + (w.seg ?? 0);
}

const h8 = (n: number) => n.toString(16).toUpperCase().padStart(8, "0");

/** The file name of segment number `n` on `timeline`. */
export function segmentName(timeline: number, n: number, segSize: number): string {
  const per = segmentsPerId(segSize);
  return `${h8(timeline)}${h8(Math.floor(n / per))}${h8(n % per)}`;
}

/** The segment holding an LSN written as `X/Y` (hex halves). */
export function segmentOfLsn(lsn: string, timeline: number, segSize: number): string {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!m) throw new LifeboatError("CORRUPTION", `${JSON.stringify(lsn)} is not an LSN`);
  const value = hex(m[1]!) * 0x1_0000_0000 + hex(m[2]!);
  return segmentName(timeline, Math.floor(value / segSize), segSize);
}
