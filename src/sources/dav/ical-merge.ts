/**
 * Merging the VTIMEZONEs of many iCalendar objects into one VCALENDAR without changing any time.
 *
 * Outlook and Exchange name every zone they make up `Customized Time Zone`, with different rules
 * in different events. Keeping only the first VTIMEZONE per TZID would make every later event
 * with another definition of that TZID read its times in the wrong zone. So a VTIMEZONE whose
 * TZID is already taken by a different definition gets a TZID of its own (`NAME (2)`, ...), and
 * the TZID parameters of the components that came with it are rewritten to match.
 */
import { type CalendarComponent, type ContentLine, contentLines, escapeText, foldLine } from "./ical.js";

/** TEXT value unescaped (RFC 5545 3.3.11): a TZID parameter holds the zone's name unescaped. */
const unescapeText = (s: string) =>
  s.replace(/\\([\\;,nN])/g, (_, c: string) => (c === "n" || c === "N" ? "\n" : c));

/** Original TZID → TZID in the merged calendar, for the components of one item. */
export type TzidRenames = ReadonlyMap<string, string>;

interface Variant {
  /** Normalised content (see normaliseTimezone). */
  norm: string;
  lines: string[];
  /** TZID in the merged calendar (assigned by finish() for all but the first variant). */
  tzid: string;
}

/** Splits at `sep` outside double quotes. */
function splitUnquoted(s: string, sep: string): string[] {
  const out: string[] = [];
  let inQuote = false;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '"') inQuote = !inQuote;
    else if (ch === sep && !inQuote) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out;
}

/** The unfolded text of a logical line and the index of its first colon outside quotes (-1: none). */
function unfold(l: ContentLine): { text: string; colon: number } {
  const text = l.raw.map((r, i) => (i === 0 ? r : r.slice(1))).join("");
  let inQuote = false;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '"') inQuote = !inQuote;
    else if (text[i] === ":" && !inQuote) return { text, colon: i };
  }
  return { text, colon: -1 };
}

/**
 * The content that decides what a VTIMEZONE means, for comparing two of the same TZID:
 * unfolded lines, trailing blanks dropped, property names upper-cased, LAST-MODIFIED left out
 * (Exchange stamps it per copy) and the STANDARD/DAYLIGHT blocks in a fixed order. Anything
 * else that differs counts as different: renaming a zone that was in fact equal costs one extra
 * VTIMEZONE, merging two that differ shifts times.
 */
export function normaliseTimezone(lines: string[]): string {
  const top: string[] = [];
  const blocks: string[] = [];
  let block: string[] | undefined;
  let depth = 0;
  for (const l of contentLines(lines.join("\r\n"))) {
    if (l.name === "LAST-MODIFIED") continue;
    const { text, colon } = unfold(l);
    const head = colon < 0 ? text : text.slice(0, colon);
    const semi = head.indexOf(";");
    const name = semi < 0 ? head : head.slice(0, semi);
    const norm = `${name.trim().toUpperCase()}${head.slice(name.length)}${text.slice(head.length)}`.trimEnd();
    if (l.name === "BEGIN") depth++;
    if (depth >= 2) {
      block ??= [];
      block.push(norm);
    } else top.push(norm);
    if (l.name === "END") {
      depth--;
      if (depth === 1 && block) {
        blocks.push(block.join("\n"));
        block = undefined;
      }
    }
  }
  return [...top, ...blocks.sort()].join("\n");
}

/** A TZID parameter value, quoted when it holds a character that ends a parameter (RFC 5545 3.2). */
function paramValue(tzid: string, wasQuoted: boolean): string {
  return wasQuoted || /[;:,]/.test(tzid) ? `"${tzid}"` : tzid;
}

/**
 * Collects the VTIMEZONEs of a calendar's items (pass 1: `add` per item, then `finish`); pass 2
 * writes `timezones()` and each item's other components through `rewriteTzidParams` with what
 * `add` returned for it.
 */
export class TimezoneMerger {
  private readonly byTzid = new Map<string, Variant[]>();
  /** VTIMEZONEs without a TZID (invalid, but kept once per distinct content). */
  private readonly anonymous = new Map<string, string[]>();
  /** Per item whose zones are not all first variants: original TZID → variant, and its renames. */
  private readonly items: [Map<string, Variant>, Map<string, string>][] = [];
  /** VTIMEZONEs left out because an identical one of the same TZID is already there. */
  deduplicated = 0;
  /** VTIMEZONEs given a new TZID because another with the same TZID differs. */
  renamed = 0;

  /**
   * Registers one item's components. Returns the item's TZID renames for `rewriteTzidParams`,
   * filled in by `finish` (when every TZID of the calendar is known), or undefined when none of
   * the item's TZIDs can change.
   */
  add(components: CalendarComponent[]): TzidRenames | undefined {
    let mine: Map<string, Variant> | undefined;
    for (const comp of components) {
      if (comp.type !== "VTIMEZONE") continue;
      if (comp.tzid === undefined) {
        const key = comp.lines.join("\n");
        if (this.anonymous.has(key)) this.deduplicated++;
        else this.anonymous.set(key, comp.lines);
        continue;
      }
      const tzid = unescapeText(comp.tzid);
      const norm = normaliseTimezone(comp.lines);
      const variants = this.byTzid.get(tzid) ?? [];
      if (variants.length === 0) this.byTzid.set(tzid, variants);
      let v = variants.find((x) => x.norm === norm);
      if (v) this.deduplicated++;
      else {
        v = { norm, lines: comp.lines, tzid };
        variants.push(v);
      }
      if (v !== variants[0]) {
        mine ??= new Map();
        if (!mine.has(tzid)) mine.set(tzid, v);
      }
    }
    if (!mine) return undefined;
    const renames = new Map<string, string>();
    this.items.push([mine, renames]);
    return renames;
  }

  /** Gives every later variant of a TZID a name that no VTIMEZONE of the calendar uses. */
  finish(): void {
    const taken = new Set(this.byTzid.keys());
    for (const [tzid, variants] of this.byTzid) {
      let n = 2;
      for (const v of variants.slice(1)) {
        while (taken.has(`${tzid} (${n})`)) n++;
        v.tzid = `${tzid} (${n})`;
        taken.add(v.tzid);
        this.renamed++;
      }
    }
    for (const [variants, renames] of this.items) for (const [tzid, v] of variants) renames.set(tzid, v.tzid);
  }

  /** The VTIMEZONEs of the merged calendar, each as physical lines, with their final TZIDs. */
  *timezones(): Iterable<string[]> {
    for (const variants of this.byTzid.values())
      for (const [i, v] of variants.entries()) yield i === 0 ? v.lines : renameTimezone(v.lines, v.tzid);
    yield* this.anonymous.values();
  }
}

/** A VTIMEZONE's lines with its TZID property set to `tzid`. */
function renameTimezone(lines: string[], tzid: string): string[] {
  const out: string[] = [];
  let depth = 0;
  for (const l of contentLines(lines.join("\r\n"))) {
    if (l.name === "BEGIN") depth++;
    if (l.name === "END") depth--;
    if (l.name === "TZID" && depth === 1) {
      const { text, colon } = unfold(l);
      for (const f of foldLine(`${colon < 0 ? "TZID" : text.slice(0, colon)}:${escapeText(tzid)}`))
        out.push(f);
    } else for (const r of l.raw) out.push(r);
  }
  return out;
}

/**
 * A component's lines with every `TZID=` parameter (DTSTART, DTEND, DUE, RECURRENCE-ID, EXDATE,
 * RDATE, or any other property that carries one; quoted or not) renamed as `renames` says.
 * Lines that do not change keep their original bytes.
 */
export function rewriteTzidParams(lines: string[], renames: TzidRenames): string[] {
  if (renames.size === 0) return lines;
  const out: string[] = [];
  for (const l of contentLines(lines.join("\r\n"))) {
    const { text, colon } = unfold(l);
    const head = colon < 0 ? text : text.slice(0, colon);
    if (!/;\s*TZID\s*=/i.test(head)) {
      for (const r of l.raw) out.push(r);
      continue;
    }
    let changed = false;
    const params = splitUnquoted(head, ";").map((p, i) => {
      const eq = p.indexOf("=");
      if (i === 0 || eq < 0 || p.slice(0, eq).trim().toUpperCase() !== "TZID") return p;
      const raw = p.slice(eq + 1).trim();
      const quoted = raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"');
      const to = renames.get(quoted ? raw.slice(1, -1) : raw);
      if (to === undefined) return p;
      changed = true;
      return `${p.slice(0, eq + 1)}${paramValue(to, quoted)}`;
    });
    if (changed) for (const f of foldLine(`${params.join(";")}${text.slice(head.length)}`)) out.push(f);
    else for (const r of l.raw) out.push(r);
  }
  return out;
}
