/**
 * Just enough of vCard (RFC 6350) and iCalendar (RFC 5545) content lines for export and push:
 * unfolding, BEGIN/END structure, UID and TZID. Items are never rewritten: every component is
 * copied with its original physical lines.
 */

export interface ContentLine {
  /** Property name, upper-cased (`BEGIN`, `UID`, `X-FOO`). */
  name: string;
  /** The unfolded value after the first colon outside quotes. */
  value: string;
  /** The physical lines (without line ends) that make up this logical line. */
  raw: string[];
}

/** Splits a text into logical lines (a line starting with a space or tab continues the previous one). */
export function contentLines(text: string): ContentLine[] {
  const phys = text.split(/\r?\n/);
  if (phys.at(-1) === "") phys.pop();
  const out: ContentLine[] = [];
  let cur: string[] | undefined;
  const flush = () => {
    if (!cur) return;
    const unfolded = cur.map((l, i) => (i === 0 ? l : l.slice(1))).join("");
    let inQuote = false;
    let colon = -1;
    for (let i = 0; i < unfolded.length; i++) {
      const ch = unfolded[i];
      if (ch === '"') inQuote = !inQuote;
      else if (ch === ":" && !inQuote) {
        colon = i;
        break;
      }
    }
    const head = colon < 0 ? unfolded : unfolded.slice(0, colon);
    const name = (head.split(";")[0] ?? "").trim().toUpperCase();
    out.push({ name, value: colon < 0 ? "" : unfolded.slice(colon + 1), raw: cur });
  };
  for (const l of phys) {
    if ((l.startsWith(" ") || l.startsWith("\t")) && cur) cur.push(l);
    else {
      flush();
      cur = [l];
    }
  }
  flush();
  return out.filter((l) => l.raw.some((r) => r.trim() !== ""));
}

/** The first UID property's value (vCard or any iCalendar component), trimmed. */
export function uidOf(text: string): string | undefined {
  for (const l of contentLines(text)) if (l.name === "UID") return l.value.trim() || undefined;
  return undefined;
}

export interface CalendarComponent {
  /** VEVENT, VTODO, VJOURNAL, VFREEBUSY, VTIMEZONE, ... */
  type: string;
  /** TZID of a VTIMEZONE. */
  tzid?: string;
  /** The component's physical lines, BEGIN to END. */
  lines: string[];
}

/**
 * The components directly inside the VCALENDAR(s) of an iCalendar object, or an error message
 * when BEGIN/END do not balance or there is no VCALENDAR.
 */
export function calendarComponents(text: string): { components: CalendarComponent[] } | { error: string } {
  const stack: string[] = [];
  const components: CalendarComponent[] = [];
  let cur: CalendarComponent | undefined;
  let calendars = 0;
  for (const l of contentLines(text)) {
    if (l.name === "BEGIN") {
      const type = l.value.trim().toUpperCase();
      if (stack.length === 0 && type !== "VCALENDAR") return { error: `starts with BEGIN:${type}` };
      if (stack.length === 0) calendars++;
      stack.push(type);
      if (stack.length === 2) cur = { type, lines: [] };
    } else if (stack.length === 0) {
      return { error: `${l.name} outside BEGIN:VCALENDAR` };
    }
    if (cur) {
      // One push per line: spreading a logical line of 130,000 folded lines overflows the stack.
      for (const r of l.raw) cur.lines.push(r);
      if (stack.length === 2 && l.name === "TZID" && cur.type === "VTIMEZONE") cur.tzid = l.value.trim();
    }
    if (l.name === "END") {
      const type = l.value.trim().toUpperCase();
      const open = stack.pop();
      if (open !== type) return { error: `END:${type} closes BEGIN:${open ?? "(nothing)"}` };
      if (stack.length === 1 && cur) {
        components.push(cur);
        cur = undefined;
      }
    }
  }
  if (stack.length > 0) return { error: `BEGIN:${stack.at(-1)} is never closed` };
  if (calendars === 0) return { error: "no VCALENDAR" };
  return { components };
}

/** Escapes a TEXT value (RFC 5545 3.3.11). */
export function escapeText(s: string): string {
  return s.replace(/[\\;,]/g, (c) => `\\${c}`).replace(/\r?\n/g, "\\n");
}

/** Folds a content line at 75 octets without splitting a UTF-8 sequence (RFC 5545 3.1). */
export function foldLine(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let octets = 0;
  for (const ch of line) {
    const n = Buffer.byteLength(ch, "utf8");
    const limit = out.length === 0 ? 75 : 74;
    if (octets + n > limit) {
      out.push(out.length === 0 ? cur : ` ${cur}`);
      cur = "";
      octets = 0;
    }
    cur += ch;
    octets += n;
  }
  out.push(out.length === 0 ? cur : ` ${cur}`);
  return out;
}
