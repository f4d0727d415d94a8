import { createHash } from "node:crypto";
import { CorruptionError } from "../../core/errors.js";
import type { CollectionKind } from "./discover.js";

/** `<collection dir>/.collection.json`: what the next pull compares with, and what push recreates. */
export interface CollectionItem {
  /** The item's path on the server (as the server spells it). */
  href: string;
  etag: string;
  /** Its file name in the collection's directory. */
  file: string;
}

export interface CollectionState {
  version: 1;
  kind: CollectionKind;
  /** The collection's path on the server (ends with `/`). */
  href: string;
  displayname?: string;
  description?: string;
  color?: string;
  components?: string[];
  /** getctag and the RFC 6578 sync-token at the time of the pull (absent if the server has none). */
  ctag?: string;
  syncToken?: string;
  /** Sorted by href; exactly the items whose files are in the snapshot. */
  items: CollectionItem[];
}

export const COLLECTION_STATE_FILE = ".collection.json";
export const KIND_DIR: Record<CollectionKind, string> = {
  addressbook: "addressbooks",
  calendar: "calendars",
};
export const KIND_EXT: Record<CollectionKind, string> = { addressbook: ".vcf", calendar: ".ics" };

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Stable JSON (fixed key order, no pull time, one item per line): an unchanged collection encodes to the same bytes. */
export function encodeCollectionState(s: CollectionState): Buffer {
  const head = {
    version: 1,
    kind: s.kind,
    href: s.href,
    ...(s.displayname !== undefined ? { displayname: s.displayname } : {}),
    ...(s.description !== undefined ? { description: s.description } : {}),
    ...(s.color !== undefined ? { color: s.color } : {}),
    ...(s.components !== undefined ? { components: s.components } : {}),
    ...(s.ctag !== undefined ? { ctag: s.ctag } : {}),
    ...(s.syncToken !== undefined ? { syncToken: s.syncToken } : {}),
  };
  const lines = [...s.items]
    .sort((a, b) => cmp(a.href, b.href))
    .map((i) => JSON.stringify({ href: i.href, etag: i.etag, file: i.file }));
  const headJson = JSON.stringify(head);
  const nl = lines.length ? "\n" : "";
  return Buffer.from(`${headJson.slice(0, -1)},"items":[${nl}${lines.join(",\n")}${nl}]}\n`, "utf8");
}

export function decodeCollectionState(buf: Buffer, what: string): CollectionState {
  let raw: unknown;
  try {
    raw = JSON.parse(buf.toString("utf8"));
  } catch {
    throw new CorruptionError(what, "collection state is not valid JSON");
  }
  const bad = (d: string) => new CorruptionError(what, `malformed collection state: ${d}`);
  if (typeof raw !== "object" || raw === null) throw bad("not an object");
  const r = raw as Record<string, unknown>;
  // JSON.stringify, not String(): a value like {"toString": null} cannot be made a string.
  if (r.version !== 1) throw bad(`unknown version ${JSON.stringify(r.version)?.slice(0, 40)}`);
  if (r.kind !== "addressbook" && r.kind !== "calendar") throw bad("kind");
  if (typeof r.href !== "string" || !r.href.startsWith("/")) throw bad("href");
  for (const k of ["displayname", "description", "color", "ctag", "syncToken"] as const)
    if (r[k] !== undefined && typeof r[k] !== "string") throw bad(k);
  if (
    r.components !== undefined &&
    !(Array.isArray(r.components) && r.components.every((c) => typeof c === "string"))
  )
    throw bad("components");
  if (!Array.isArray(r.items)) throw bad("items");
  const items: CollectionItem[] = [];
  const files = new Set<string>();
  for (const x of r.items as unknown[]) {
    if (typeof x !== "object" || x === null) throw bad("item entry");
    const e = x as Record<string, unknown>;
    if (typeof e.href !== "string" || typeof e.etag !== "string" || typeof e.file !== "string")
      throw bad("item entry");
    if (!isItemFileName(e.file) || files.has(e.file)) throw bad(`file name ${JSON.stringify(e.file)}`);
    files.add(e.file);
    items.push({ href: e.href, etag: e.etag, file: e.file });
  }
  const opt = (k: "displayname" | "description" | "color" | "ctag" | "syncToken") =>
    r[k] !== undefined ? { [k]: r[k] as string } : {};
  return {
    version: 1,
    kind: r.kind,
    href: r.href,
    ...opt("displayname"),
    ...opt("description"),
    ...opt("color"),
    ...(r.components !== undefined ? { components: r.components as string[] } : {}),
    ...opt("ctag"),
    ...opt("syncToken"),
    items,
  };
}

/**
 * One path component → a file or directory name: `%`, `/`, `\` and NUL and other control
 * characters percent-escaped, a leading `.` written `%2E` (so nothing can be `.`, `..` or
 * `.collection.json`), the empty name written `%`.
 */
export function escapeName(name: string): string {
  if (name === "") return "%";
  let s = name.replace(
    /[%/\\\x00-\x1f\x7f]/g,
    (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0").toUpperCase()}`,
  );
  if (s.startsWith(".")) s = `%2E${s.slice(1)}`;
  return s;
}

function lastSegment(href: string): string {
  const parts = href.split("/").filter((p) => p !== "");
  const seg = parts.at(-1) ?? "";
  try {
    return decodeURIComponent(seg);
  } catch {
    return seg;
  }
}

/** The collection's name: the last segment of its path, decoded (push looks collections up by it). */
export const collectionName = (href: string) => lastSegment(href);

/** Directory name of a collection: its escaped name. */
export const collectionDirName = (href: string) => escapeName(lastSegment(href));

export function isItemFileName(f: string): boolean {
  return f !== "" && f !== COLLECTION_STATE_FILE && !f.startsWith(".") && !/[/\0]/.test(f) && f.length <= 255;
}

/**
 * A file name for a new item: the last segment of its href, escaped, with `.vcf`/`.ics` added
 * if it lacks it; a name already taken (or too long) gets a short hash of the href.
 */
export function itemFileName(href: string, ext: string, taken: Set<string>): string {
  let base = escapeName(lastSegment(href));
  if (base.toLowerCase().endsWith(ext)) base = base.slice(0, -ext.length);
  let name = `${base}${ext}`;
  if (taken.has(name) || name.length > 200 || !isItemFileName(name)) {
    const h = createHash("sha256").update(href).digest("hex").slice(0, 12);
    name = `${base.slice(0, 150)}~${h}${ext}`;
    for (let i = 2; taken.has(name); i++) name = `${base.slice(0, 150)}~${h}-${i}${ext}`;
  }
  return name;
}
