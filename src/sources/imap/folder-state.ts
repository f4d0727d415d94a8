import { CorruptionError } from "../../core/errors.js";

/**
 * Per-folder facts kept in the snapshot as `<folder dir>/.folder.json`. Flags and dates live
 * here and not in the message files, so a flag change rewrites one small JSON file and the
 * message bytes (`<uid>.eml`) stay identical and deduplicate.
 */
export interface FolderMessage {
  uid: number;
  /** IMAP flags and keywords, sorted; `\Recent` is session state and never stored. */
  flags: string[];
  /** INTERNALDATE as an ISO-8601 string. */
  date: string;
  /** RFC822.SIZE as the server reported it. */
  size: number;
}

export interface FolderState {
  version: 1;
  /** The IMAP mailbox name as the server lists it (UTF-8, modified UTF-7 decoded). */
  path: string;
  /** Hierarchy delimiter the server uses ("" when it has none). */
  delimiter: string;
  specialUse?: string;
  /** Decimal strings: these are unsigned 32-bit (UIDVALIDITY) and 63-bit (MODSEQ) numbers. */
  uidValidity: string;
  uidNext: number;
  highestModseq?: string;
  /** Sorted by UID. */
  messages: FolderMessage[];
}

export const FOLDER_STATE_FILE = ".folder.json";

/** Stable JSON (fixed key order, no timestamps): an unchanged folder encodes to the same bytes. */
export function encodeFolderState(s: FolderState): Buffer {
  const head = {
    version: 1,
    path: s.path,
    delimiter: s.delimiter,
    ...(s.specialUse ? { specialUse: s.specialUse } : {}),
    uidValidity: s.uidValidity,
    uidNext: s.uidNext,
    ...(s.highestModseq !== undefined ? { highestModseq: s.highestModseq } : {}),
  };
  const lines = [...s.messages]
    .sort((a, b) => a.uid - b.uid)
    .map((m) => JSON.stringify({ uid: m.uid, flags: [...m.flags].sort(), date: m.date, size: m.size }));
  // One message per line keeps the content-defined chunks of a large folder mostly unchanged
  // when a few flags change.
  const headJson = JSON.stringify(head);
  return Buffer.from(
    `${headJson.slice(0, -1)},"messages":[${lines.length ? "\n" : ""}${lines.join(",\n")}${lines.length ? "\n" : ""}]}\n`,
    "utf8",
  );
}

export function decodeFolderState(buf: Buffer, what: string): FolderState {
  let raw: unknown;
  try {
    raw = JSON.parse(buf.toString("utf8"));
  } catch {
    throw new CorruptionError(what, "folder state is not valid JSON");
  }
  const bad = (d: string) => new CorruptionError(what, `malformed folder state: ${d}`);
  if (typeof raw !== "object" || raw === null) throw bad("not an object");
  const r = raw as Record<string, unknown>;
  // JSON.stringify, not String(): a value like {"toString": null} cannot be made a string.
  if (r.version !== 1) throw bad(`unknown version ${JSON.stringify(r.version)?.slice(0, 40)}`);
  if (typeof r.path !== "string" || r.path === "") throw bad("path");
  if (typeof r.delimiter !== "string") throw bad("delimiter");
  if (typeof r.uidValidity !== "string" || !/^[0-9]+$/.test(r.uidValidity)) throw bad("uidValidity");
  if (typeof r.uidNext !== "number" || !Number.isInteger(r.uidNext)) throw bad("uidNext");
  if (
    r.highestModseq !== undefined &&
    (typeof r.highestModseq !== "string" || !/^[0-9]+$/.test(r.highestModseq))
  )
    throw bad("highestModseq");
  if (r.specialUse !== undefined && typeof r.specialUse !== "string") throw bad("specialUse");
  if (!Array.isArray(r.messages)) throw bad("messages");
  const messages: FolderMessage[] = [];
  for (const m of r.messages as unknown[]) {
    if (typeof m !== "object" || m === null) throw bad("message entry");
    const e = m as Record<string, unknown>;
    // IMAP UIDs are 32-bit (RFC 3501 nz-number); 2^53 and 2^53 + 1 would even name the same file.
    if (typeof e.uid !== "number" || !Number.isInteger(e.uid) || e.uid <= 0 || e.uid > 0xffffffff)
      throw bad("uid");
    if (!Array.isArray(e.flags) || !e.flags.every((f) => typeof f === "string"))
      throw bad(`flags of ${e.uid}`);
    if (typeof e.date !== "string" || Number.isNaN(Date.parse(e.date))) throw bad(`date of ${e.uid}`);
    if (typeof e.size !== "number") throw bad(`size of ${e.uid}`);
    messages.push({ uid: e.uid, flags: e.flags as string[], date: e.date, size: e.size });
  }
  return {
    version: 1,
    path: r.path,
    delimiter: r.delimiter,
    ...(r.specialUse !== undefined ? { specialUse: r.specialUse as string } : {}),
    uidValidity: r.uidValidity,
    uidNext: r.uidNext,
    ...(r.highestModseq !== undefined ? { highestModseq: r.highestModseq as string } : {}),
    messages,
  };
}

/** `<uid>.eml`: the file holding the raw RFC 822 bytes of one message. */
export const messageFileName = (uid: number) => `${uid}.eml`;
const MESSAGE_FILE = /^[1-9][0-9]*\.eml$/;
export function uidOfFileName(name: string): number | undefined {
  return MESSAGE_FILE.test(name) ? Number(name.slice(0, -4)) : undefined;
}

/**
 * One IMAP hierarchy level → one directory name. Percent-escapes what could not be a name or
 * could be mistaken for something else: `%`, `/`, NUL, a leading `.` (so no folder can be
 * `.folder.json`, `.` or `..`), and the `.` of a name that looks like a message file.
 * The empty name (possible with doubled delimiters) becomes `%`.
 */
export function encodeFolderComponent(name: string): string {
  if (name === "") return "%";
  let s = name.replace(/[%/\0]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0").toUpperCase()}`);
  if (s.startsWith(".")) s = `%2E${s.slice(1)}`;
  if (MESSAGE_FILE.test(s)) s = `${s.slice(0, -4)}%2Eeml`;
  return s;
}

/** The directory (relative, `/`-separated) that holds a folder in the snapshot. */
export function folderDir(path: string, delimiter: string): string {
  const parts = delimiter ? path.split(delimiter) : [path];
  return parts.map(encodeFolderComponent).join("/");
}

/** Maps IMAP system flags to Maildir info letters (sorted, as the Maildir spec asks). */
export function maildirFlags(flags: readonly string[]): string {
  const map: Record<string, string> = {
    "\\draft": "D",
    "\\flagged": "F",
    "\\answered": "R",
    "\\seen": "S",
    "\\deleted": "T",
  };
  const letters = new Set<string>();
  for (const f of flags) {
    const l = map[f.toLowerCase()];
    if (l) letters.add(l);
  }
  return [...letters].sort().join("");
}
