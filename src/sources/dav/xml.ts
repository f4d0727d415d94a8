/**
 * A small namespace-aware XML reader for WebDAV multistatus documents. Element names are
 * resolved to (namespace URI, local name), so `d:href`, `D:href` and `href` under
 * `xmlns="DAV:"` are the same element. No DTD processing: a document type declaration is
 * skipped and only the five predefined entities and character references are expanded, so a
 * hostile server cannot make the client expand entities.
 *
 * One deliberate departure from XML 1.0: line ends inside text are NOT normalised (CRLF stays
 * CRLF). vCards and iCalendar objects use CRLF, servers send them raw inside
 * `<address-data>`/`<calendar-data>`, and keeping them makes the stored item byte-equal to what
 * a GET of the item returns.
 */

import { LifeboatError } from "../../core/errors.js";

export const NS = {
  dav: "DAV:",
  caldav: "urn:ietf:params:xml:ns:caldav",
  carddav: "urn:ietf:params:xml:ns:carddav",
  cs: "http://calendarserver.org/ns/",
  apple: "http://apple.com/ns/ical/",
} as const;

export interface XmlElement {
  ns: string;
  local: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** The concatenated text directly inside this element (CDATA included). */
  text: string;
}

/** A document that is not well-formed: what the server sent cannot be read. */
export class XmlError extends LifeboatError {
  constructor(message: string) {
    super("SOURCE_UNREADABLE", message, "the DAV server's answer is not well-formed XML; check the server");
  }
}

const PREDEFINED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decodeEntities(s: string, at: number): string {
  if (!s.includes("&")) return s;
  return s.replace(/&([^;&\s]{0,12});/g, (m, name: string) => {
    // Digits only (parseInt would take "-1" or "+5", and fromCodePoint throws a RangeError).
    const hex = /^#[xX]([0-9a-fA-F]+)$/.exec(name);
    const dec = /^#([0-9]+)$/.exec(name);
    if (hex || dec || name.startsWith("#")) {
      const cp = hex ? Number.parseInt(hex[1]!, 16) : dec ? Number.parseInt(dec[1]!, 10) : Number.NaN;
      if (Number.isNaN(cp) || cp > 0x10ffff) throw new XmlError(`bad character reference ${m} near ${at}`);
      return String.fromCodePoint(cp);
    }
    const v = PREDEFINED[name];
    if (v === undefined) throw new XmlError(`unknown entity ${m} near ${at}`);
    return v;
  });
}

const NAME = /[^\s/>=]+/y;
const SPACE = /\s*/y;

interface Open {
  el: XmlElement;
  qname: string;
  scope: Map<string, string>;
}

/** Parses a whole document and returns its root element. */
export function parseXml(doc: string): XmlElement {
  let i = 0;
  const n = doc.length;
  const stack: Open[] = [];
  let root: XmlElement | undefined;
  const rootScope = new Map<string, string>([["xml", "http://www.w3.org/XML/1998/namespace"]]);

  const expect = (s: string) => {
    const j = doc.indexOf(s, i);
    if (j < 0) throw new XmlError(`unterminated construct near ${i} (expected ${s})`);
    return j;
  };
  const resolve = (qname: string, scope: Map<string, string>, isAttr: boolean): [string, string] => {
    const c = qname.indexOf(":");
    if (c < 0) return [isAttr ? "" : (scope.get("") ?? ""), qname];
    const prefix = qname.slice(0, c);
    const ns = scope.get(prefix);
    if (ns === undefined) throw new XmlError(`undeclared namespace prefix ${prefix} near ${i}`);
    return [ns, qname.slice(c + 1)];
  };

  while (i < n) {
    const lt = doc.indexOf("<", i);
    const textEnd = lt < 0 ? n : lt;
    if (textEnd > i) {
      const raw = doc.slice(i, textEnd);
      const top = stack.at(-1);
      if (top) top.el.text += decodeEntities(raw, i);
      else if (raw.trim() !== "") throw new XmlError(`text outside the root element near ${i}`);
      i = textEnd;
    }
    if (lt < 0) break;
    if (doc.startsWith("<?", i)) {
      i = expect("?>") + 2;
    } else if (doc.startsWith("<!--", i)) {
      i = expect("-->") + 3;
    } else if (doc.startsWith("<![CDATA[", i)) {
      const end = expect("]]>");
      const top = stack.at(-1);
      if (!top) throw new XmlError(`CDATA outside the root element near ${i}`);
      top.el.text += doc.slice(i + 9, end);
      i = end + 3;
    } else if (doc.startsWith("<!", i)) {
      // <!DOCTYPE ...>, possibly with an internal subset in brackets: skipped, never interpreted.
      let depth = 0;
      let j = i + 2;
      for (; j < n; j++) {
        const ch = doc[j];
        if (ch === "[") depth++;
        else if (ch === "]") depth--;
        else if (ch === ">" && depth <= 0) break;
      }
      if (j >= n) throw new XmlError(`unterminated declaration near ${i}`);
      i = j + 1;
    } else if (doc.startsWith("</", i)) {
      const end = expect(">");
      const qname = doc.slice(i + 2, end).trim();
      const top = stack.pop();
      if (!top || top.qname !== qname)
        throw new XmlError(`mismatched end tag </${qname}> near ${i}${top ? ` (open: <${top.qname}>)` : ""}`);
      i = end + 1;
    } else {
      i++;
      NAME.lastIndex = i;
      const m = NAME.exec(doc);
      if (!m) throw new XmlError(`bad start tag near ${i}`);
      const qname = m[0];
      i = NAME.lastIndex;
      const rawAttrs: [string, string][] = [];
      let selfClosing = false;
      for (;;) {
        SPACE.lastIndex = i;
        SPACE.exec(doc);
        i = SPACE.lastIndex;
        if (doc.startsWith("/>", i)) {
          selfClosing = true;
          i += 2;
          break;
        }
        if (doc[i] === ">") {
          i++;
          break;
        }
        NAME.lastIndex = i;
        const a = NAME.exec(doc);
        if (!a) throw new XmlError(`bad attribute in <${qname}> near ${i}`);
        i = NAME.lastIndex;
        SPACE.lastIndex = i;
        SPACE.exec(doc);
        i = SPACE.lastIndex;
        if (doc[i] !== "=") throw new XmlError(`attribute ${a[0]} without a value near ${i}`);
        i++;
        SPACE.lastIndex = i;
        SPACE.exec(doc);
        i = SPACE.lastIndex;
        const q = doc[i];
        if (q !== '"' && q !== "'") throw new XmlError(`unquoted attribute ${a[0]} near ${i}`);
        const end = doc.indexOf(q, i + 1);
        if (end < 0) throw new XmlError(`unterminated attribute ${a[0]} near ${i}`);
        rawAttrs.push([a[0], decodeEntities(doc.slice(i + 1, end), i)]);
        i = end + 1;
      }
      const parentScope = stack.at(-1)?.scope ?? rootScope;
      let scope = parentScope;
      for (const [k, v] of rawAttrs) {
        if (k === "xmlns" || k.startsWith("xmlns:")) {
          if (scope === parentScope) scope = new Map(parentScope);
          scope.set(k === "xmlns" ? "" : k.slice(6), v);
        }
      }
      const [ns, local] = resolve(qname, scope, false);
      const attrs: Record<string, string> = {};
      for (const [k, v] of rawAttrs) {
        if (k === "xmlns" || k.startsWith("xmlns:")) continue;
        const [ans, alocal] = resolve(k, scope, true);
        attrs[ans ? `{${ans}}${alocal}` : alocal] = v;
      }
      const el: XmlElement = { ns, local, attrs, children: [], text: "" };
      const parent = stack.at(-1);
      if (parent) parent.el.children.push(el);
      else if (root) throw new XmlError(`a second root element <${qname}> near ${i}`);
      else root = el;
      if (!selfClosing) stack.push({ el, qname, scope });
    }
  }
  if (stack.length > 0) throw new XmlError(`unclosed element <${stack.at(-1)!.qname}>`);
  if (!root) throw new XmlError("no root element");
  return root;
}

/** The first child element with this name, if any. */
export function child(el: XmlElement | undefined, ns: string, local: string): XmlElement | undefined {
  return el?.children.find((c) => c.ns === ns && c.local === local);
}

/** Every child element with this name. */
export function childrenOf(el: XmlElement | undefined, ns: string, local: string): XmlElement[] {
  return el ? el.children.filter((c) => c.ns === ns && c.local === local) : [];
}

/** Escapes text for an XML element or attribute value. */
export function xmlEscape(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!,
  );
}
