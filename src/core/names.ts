/**
 * File names and paths are bytes on POSIX systems, and not every byte string is UTF-8: names
 * written by old Latin-1 systems, cut-short multi-byte sequences, names from old zip files.
 * lifeboat keeps every name exactly. In memory a name (or path) is a JS string in which valid
 * UTF-8 decodes as usual and each byte that is not part of valid UTF-8 becomes a lone low
 * surrogate U+DC80..U+DCFF ("surrogateescape", as Python does since PEP 383). Valid UTF-8
 * never decodes to a lone surrogate, so the mapping is lossless both ways, names stay unique
 * and comparable as strings, and only the edges convert: file system calls (`fsPath`), tree
 * encoding (`nameToBytes`), display (`displayName`) and JSON output.
 */

import { createHash } from "node:crypto";

const ESC_BASE = 0xdc00;

/** Whether a name holds bytes that are not valid UTF-8 (escaped as lone surrogates). */
export function isByteName(s: string): boolean {
  return !s.isWellFormed();
}

/** Length of the valid UTF-8 sequence starting at `i` (Unicode Table 3-7), or 0 if there is none. */
function validSequence(b: Uint8Array, i: number): number {
  const b0 = b[i]!;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => {
    const x = b[i + k];
    return x !== undefined && x >= lo && x <= hi;
  };
  if (b0 < 0x80) return 1;
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((b0 >= 0xe1 && b0 <= 0xec) || b0 === 0xee || b0 === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b0 === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (b0 === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** The in-memory form of a name's bytes (see the module comment). */
export function nameFromBytes(bytes: Uint8Array): string {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const s = b.toString("utf8");
  // No replacement character, or only genuine ones: the bytes were valid UTF-8.
  if (!s.includes("\uFFFD") || Buffer.from(s, "utf8").equals(b)) return s;
  let out = "";
  let run = 0;
  let i = 0;
  while (i < b.length) {
    const n = validSequence(b, i);
    if (n > 0) {
      i += n;
      continue;
    }
    out += b.toString("utf8", run, i) + String.fromCharCode(ESC_BASE + b[i]!);
    i++;
    run = i;
  }
  return out + b.toString("utf8", run, b.length);
}

/** The bytes of a name or path in its in-memory form. */
export function nameToBytes(s: string): Buffer {
  if (s.isWellFormed()) return Buffer.from(s, "utf8");
  const parts: Buffer[] = [];
  let run = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++; // a valid pair
        continue;
      }
    } else if (c < 0xdc00 || c > 0xdfff) continue;
    // A lone surrogate: an escaped byte (U+DC80..U+DCFF); any other cannot come from bytes and
    // is written as U+FFFD, as Node writes it.
    parts.push(Buffer.from(s.slice(run, i), "utf8"));
    parts.push(c >= 0xdc80 && c <= 0xdcff ? Buffer.of(c - ESC_BASE) : Buffer.from("\uFFFD", "utf8"));
    run = i + 1;
  }
  parts.push(Buffer.from(s.slice(run), "utf8"));
  return Buffer.concat(parts);
}

/** What to hand Node's fs functions: the string itself when it is UTF-8, else its bytes. */
export function fsPath(s: string): string | Buffer {
  return s.isWellFormed() ? s : nameToBytes(s);
}

/** The name as UTF-8 with each invalid sequence replaced by U+FFFD (WHATWG): readable, lossy. */
export function lossyName(s: string): string {
  return s.isWellFormed() ? s : nameToBytes(s).toString("utf8");
}

/** For people: each byte that is not UTF-8 shown as `\xHH` (`caf\xE9.txt`). */
export function displayName(s: string): string {
  if (s.isWellFormed()) return s;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        out += s[i]! + s[i + 1]!;
        i++;
        continue;
      }
    }
    if (c >= 0xdc80 && c <= 0xdcff) out += `\\x${(c - ESC_BASE).toString(16).toUpperCase().padStart(2, "0")}`;
    else if (c >= 0xd800 && c <= 0xdfff) out += "\uFFFD";
    else out += s[i]!;
  }
  return out;
}

/**
 * The name a user typed in the form `displayName` shows (`caf\xE9.txt`): each `\xHH` becomes
 * that byte. Command-line arguments reach Node as UTF-8, so this is how a user names a path
 * whose bytes are not UTF-8. Callers try the literal name first.
 */
export function parseDisplayName(s: string): string {
  if (!/\\x[0-9a-fA-F]{2}/.test(s)) return s;
  const parts: Buffer[] = [];
  let run = 0;
  const re = /\\x([0-9a-fA-F]{2})/g;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    parts.push(nameToBytes(s.slice(run, m.index)), Buffer.of(Number.parseInt(m[1]!, 16)));
    run = m.index + m[0].length;
  }
  parts.push(nameToBytes(s.slice(run)));
  return nameFromBytes(Buffer.concat(parts));
}

/** A path or name for JSON output: readable, plus its exact bytes (base64) when it is not UTF-8. */
export function jsonName(field: string, s: string): Record<string, string> {
  return isByteName(s)
    ? { [field]: displayName(s), [`${field}_bytes`]: nameToBytes(s).toString("base64") }
    : { [field]: s };
}

/** The longest name most file systems take (NAME_MAX), in bytes. */
export const NAME_MAX = 255;

/**
 * `name` as a file name of at most `max` bytes (default NAME_MAX): itself when it fits; else
 * cut at a character boundary, with `~` and 16 hex digits of the SHA-256 of the whole name
 * before `keep` (an extension kept at the end). Distinct long names stay distinct, and the same
 * name always gives the same result. For exports that make names from folder names.
 */
export function fitName(name: string, keep = "", max = NAME_MAX): string {
  const whole = `${name}${keep}`;
  if (nameToBytes(whole).length <= max) return whole;
  const hash = createHash("sha256").update(nameToBytes(whole)).digest("hex").slice(0, 16);
  const room = max - nameToBytes(`~${hash}${keep}`).length;
  let out = "";
  let used = 0;
  for (const ch of name) {
    const n = nameToBytes(ch).length;
    if (used + n > room) break;
    out += ch;
    used += n;
  }
  return `${out}~${hash}${keep}`;
}

/**
 * File names for things that have names of their own (mail folders, address books) in one
 * folder of an export: each fits NAME_MAX, and two different things never get the same file
 * name (the later one gets `~2`, `~3`, ... before `keep`), so one never overwrites the other.
 * The same things in the same order always get the same names.
 */
export class NameClaims {
  private readonly owners = new Map<string, string>();

  /** The file name for `name` (with `keep` at its end), owned by `owner`. */
  claim(name: string, owner: string, keep = ""): string {
    let n = fitName(name, keep);
    for (let i = 2; this.owners.has(n) && this.owners.get(n) !== owner; i++)
      n = fitName(`${name}~${i}`, keep);
    this.owners.set(n, owner);
    return n;
  }
}

/**
 * `dir/name`, for a folder path that is already normal (absolute, or relative without `.` or
 * `..` parts; no trailing slash but the root's) and one name that holds no `/` and is not `.` or
 * `..` (a listing's, or a tree's after `isSafeName`): what `path.join` gives, without its
 * normalisation, which was the largest allocation of a restore's and a backup's main thread
 * (80 MiB of short-lived strings for a mail store of 30,300 files).
 */
export function joinName(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

/**
 * `p` relative to `root` with `/` between names, when `p` is `root` or below it and both are
 * normal absolute paths (see `joinName`); "" for `root` itself; undefined otherwise (the caller
 * falls back to `path.relative`).
 */
export function relativeBelow(root: string, p: string): string | undefined {
  if (p === root) return "";
  const prefix = root.endsWith("/") ? root : `${root}/`;
  return p.startsWith(prefix) ? p.slice(prefix.length) : undefined;
}
