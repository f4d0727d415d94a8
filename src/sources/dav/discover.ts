import { LifeboatError } from "../../core/errors.js";
import { type DavClient, type DavResponse, hrefKey, prop } from "./client.js";
import { child, childrenOf, NS, type XmlElement } from "./xml.js";

export type CollectionKind = "addressbook" | "calendar";

/** An address book or calendar as the server describes it. */
export interface DavCollection {
  kind: CollectionKind;
  /** Absolute URL (always ends with `/`). */
  url: string;
  /** Its path, percent-decoded: how hrefs are compared. */
  key: string;
  displayname?: string;
  description?: string;
  color?: string;
  /** Calendars: the component types it accepts (VEVENT, VTODO, ...). */
  components?: string[];
  ctag?: string;
  syncToken?: string;
  /** The server lists sync-collection among its reports, or gives a sync-token. */
  supportsSync: boolean;
}

export interface Discovery {
  principals: string[];
  homes: Record<CollectionKind, string[]>;
  collections: DavCollection[];
}

/** Properties asked of a home's members (Depth 1) and of a single collection (Depth 0). */
export const COLLECTION_PROPS =
  "<d:resourcetype/><d:displayname/><cs:getctag/><d:sync-token/><d:supported-report-set/>" +
  "<c:supported-calendar-component-set/><c:calendar-description/><a:addressbook-description/><ic:calendar-color/>";

const hrefIn = (el: XmlElement | undefined, base: string): string[] =>
  childrenOf(el, NS.dav, "href")
    .map((h) => h.text.trim())
    .filter((h) => h !== "")
    .map((h) => {
      const u = new URL(h, base);
      if (!u.pathname.endsWith("/")) u.pathname += "/";
      return u.href;
    });

const textOf = (r: DavResponse, ns: string, local: string): string | undefined => {
  const t = prop(r, ns, local)?.text.trim();
  return t ? t : undefined;
};

/** Turns one member of a home (PROPFIND Depth 1) into a collection, if it is one. */
export function collectionOf(r: DavResponse): DavCollection | undefined {
  const rt = prop(r, NS.dav, "resourcetype");
  const kind: CollectionKind | undefined = child(rt, NS.carddav, "addressbook")
    ? "addressbook"
    : child(rt, NS.caldav, "calendar")
      ? "calendar"
      : undefined;
  if (!kind) return undefined;
  const u = new URL(r.url);
  if (!u.pathname.endsWith("/")) u.pathname += "/";
  const reports = prop(r, NS.dav, "supported-report-set");
  const sync = childrenOf(reports, NS.dav, "supported-report").some((sr) =>
    child(child(sr, NS.dav, "report"), NS.dav, "sync-collection"),
  );
  const syncToken = textOf(r, NS.dav, "sync-token");
  const comps = childrenOf(prop(r, NS.caldav, "supported-calendar-component-set"), NS.caldav, "comp")
    .map((c) => c.attrs.name)
    .filter((n): n is string => Boolean(n))
    .map((n) => n.toUpperCase())
    .sort();
  const description =
    kind === "calendar"
      ? textOf(r, NS.caldav, "calendar-description")
      : textOf(r, NS.carddav, "addressbook-description");
  const displayname = textOf(r, NS.dav, "displayname");
  const color = textOf(r, NS.apple, "calendar-color");
  const ctag = textOf(r, NS.cs, "getctag");
  return {
    kind,
    url: u.href,
    key: hrefKey(u.href),
    ...(displayname ? { displayname } : {}),
    ...(description ? { description } : {}),
    ...(color ? { color } : {}),
    ...(kind === "calendar" && comps.length > 0 ? { components: comps } : {}),
    ...(ctag ? { ctag } : {}),
    ...(syncToken ? { syncToken } : {}),
    supportsSync: sync || syncToken !== undefined,
  };
}

const PRINCIPAL_PROPS = "<d:current-user-principal/><c:calendar-home-set/><a:addressbook-home-set/>";

/**
 * RFC 6764 / 6352 / 4791 discovery: the URL's path (if any), else /.well-known/carddav and
 * /.well-known/caldav (redirects followed on the same host), else /; current-user-principal;
 * its addressbook-home-set and calendar-home-set; every member of each home whose
 * resourcetype is an address book or a calendar.
 */
export async function discover(client: DavClient): Promise<Discovery> {
  const t = client.target;
  const principals = new Set<string>();
  const homes: Record<CollectionKind, Set<string>> = { addressbook: new Set(), calendar: new Set() };
  const addHomes = (r: DavResponse, base: string) => {
    for (const h of hrefIn(prop(r, NS.carddav, "addressbook-home-set"), base)) homes.addressbook.add(h);
    for (const h of hrefIn(prop(r, NS.caldav, "calendar-home-set"), base)) homes.calendar.add(h);
  };
  const tryStart = async (start: string) => {
    const r = await client.propfind(start, 0, PRINCIPAL_PROPS);
    if (!r.ok) return;
    for (const resp of r.ms.responses) {
      for (const p of hrefIn(prop(resp, NS.dav, "current-user-principal"), r.url)) principals.add(p);
      addHomes(resp, r.url);
    }
  };
  const starts: string[][] = t.path !== "/" ? [[t.path]] : [];
  starts.push(["/.well-known/carddav", "/.well-known/caldav"], ["/"]);
  for (const group of starts) {
    for (const s of group) await tryStart(s);
    if (principals.size > 0 || homes.addressbook.size + homes.calendar.size > 0) break;
  }
  for (const p of principals) {
    const r = await client.propfind(p, 0, PRINCIPAL_PROPS);
    if (!r.ok) {
      if (r.result.status === 404 || r.result.status === 403) continue;
      throw client.statusError("PROPFIND", r.result, "(the principal)");
    }
    for (const resp of r.ms.responses) addHomes(resp, r.url);
  }
  if (homes.addressbook.size + homes.calendar.size === 0)
    throw new LifeboatError(
      "NOT_FOUND",
      `no CardDAV or CalDAV account found at ${t.host}:${t.port}${t.path} (no addressbook-home-set or calendar-home-set)`,
      "give the DAV root in the URL, e.g. davs://ann@cloud.example.org/remote.php/dav",
    );
  const collections = new Map<string, DavCollection>();
  for (const home of new Set([...homes.addressbook, ...homes.calendar])) {
    const r = await client.propfind(home, 1, COLLECTION_PROPS);
    if (!r.ok) throw client.statusError("PROPFIND", r.result, "(a collection home)");
    for (const resp of r.ms.responses) {
      const c = collectionOf(resp);
      if (c && !collections.has(c.key)) collections.set(c.key, c);
    }
  }
  return {
    principals: [...principals],
    homes: { addressbook: [...homes.addressbook], calendar: [...homes.calendar] },
    collections: [...collections.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
  };
}
