import { LifeboatError } from "../../core/errors.js";
import type { Repository } from "../../repo/repository.js";
import type { Snapshot } from "../../repo/snapshot.js";
import { type DavClient, hrefKey } from "./client.js";
import { collectionName, KIND_DIR } from "./collection-state.js";
import { davCollections, readItem } from "./dav-snapshot.js";
import { listByPropfind, multiget } from "./dav-source.js";
import { type CollectionKind, type DavCollection, discover } from "./discover.js";
import { uidOf } from "./ical.js";
import { NS, xmlEscape } from "./xml.js";

export interface DavPushStats {
  collections: number;
  /** Collections that did not exist in the account and were made (MKCOL / MKCALENDAR). */
  collectionsCreated: number;
  /** Items written (PUT with If-None-Match: *). */
  itemsPut: number;
  /** Items skipped because an item with the same UID is already in the collection. */
  itemsSkipped: number;
  /** Items whose name is taken in the collection by an item with another UID (not overwritten). */
  itemsConflicting: number;
  bytes: number;
}

const CONTENT_TYPE: Record<CollectionKind, string> = {
  addressbook: "text/vcard; charset=utf-8",
  calendar: "text/calendar; charset=utf-8",
};

/** UIDs of every item in a collection (listed with PROPFIND, fetched with multiget). */
async function uidsIn(client: DavClient, c: DavCollection): Promise<Set<string>> {
  const uids = new Set<string>();
  const listed = await listByPropfind(client, c.url);
  for (let i = 0; i < listed.length; i += 100) {
    for (const f of await multiget(client, c.kind, c.url, listed.slice(i, i + 100))) {
      const uid = f.data ? uidOf(f.data.toString("utf8")) : undefined;
      if (uid) uids.add(uid);
    }
  }
  return uids;
}

async function createCollection(
  client: DavClient,
  kind: CollectionKind,
  url: string,
  s: { displayname?: string; description?: string; color?: string; components?: string[] },
): Promise<void> {
  const props: string[] = [];
  if (s.displayname !== undefined) props.push(`<d:displayname>${xmlEscape(s.displayname)}</d:displayname>`);
  let method: string;
  let body: string;
  if (kind === "addressbook") {
    if (s.description !== undefined)
      props.push(`<a:addressbook-description>${xmlEscape(s.description)}</a:addressbook-description>`);
    method = "MKCOL";
    body =
      `<d:mkcol xmlns:d="DAV:" xmlns:a="${NS.carddav}"><d:set><d:prop>` +
      `<d:resourcetype><d:collection/><a:addressbook/></d:resourcetype>${props.join("")}</d:prop></d:set></d:mkcol>`;
  } else {
    if (s.description !== undefined)
      props.push(`<c:calendar-description>${xmlEscape(s.description)}</c:calendar-description>`);
    if (s.color !== undefined) props.push(`<ic:calendar-color>${xmlEscape(s.color)}</ic:calendar-color>`);
    if (s.components?.length)
      props.push(
        `<c:supported-calendar-component-set>${s.components
          .map((n) => `<c:comp name="${xmlEscape(n)}"/>`)
          .join("")}</c:supported-calendar-component-set>`,
      );
    method = "MKCALENDAR";
    body =
      `<c:mkcalendar xmlns:d="DAV:" xmlns:c="${NS.caldav}" xmlns:ic="${NS.apple}"><d:set><d:prop>` +
      `${props.join("")}</d:prop></d:set></c:mkcalendar>`;
  }
  const r = await client.request(method, url, {
    headers: { "Content-Type": "application/xml; charset=utf-8" },
    body: `<?xml version="1.0" encoding="utf-8"?>\n${body}`,
  });
  if (r.status !== 201) throw client.statusError(method, r, "(creating a collection)");
}

/**
 * `push dav://... SNAPSHOT`: puts every item of a DAV snapshot into the account's collection of
 * the same name (created if missing). Nothing in the account is overwritten or deleted: every PUT
 * carries `If-None-Match: *`, and items whose UID is already in the collection are skipped, so
 * pushing twice changes nothing the second time.
 */
export async function pushDav(
  repo: Repository,
  snapshot: Snapshot & { id?: string },
  client: DavClient,
  onWarning?: (m: string) => void,
): Promise<DavPushStats> {
  const stats: DavPushStats = {
    collections: 0,
    collectionsCreated: 0,
    itemsPut: 0,
    itemsSkipped: 0,
    itemsConflicting: 0,
    bytes: 0,
  };
  const d = await discover(client);
  for (const kind of ["addressbook", "calendar"] as const) {
    const existing = new Map<string, DavCollection>();
    for (const c of d.collections) if (c.kind === kind) existing.set(collectionName(c.url), c);
    for await (const sc of davCollections(repo, snapshot, kind)) {
      stats.collections++;
      const name = collectionName(sc.state.href);
      let target = existing.get(name);
      let uids: Set<string>;
      if (target) {
        uids = await uidsIn(client, target);
      } else {
        const home = d.homes[kind][0];
        if (!home)
          throw new LifeboatError(
            "NOT_FOUND",
            `the account has no ${kind === "addressbook" ? "addressbook-home-set" : "calendar-home-set"}: cannot restore ${KIND_DIR[kind]}/${sc.name}`,
          );
        const url = new URL(`${encodeURIComponent(name)}/`, home).href;
        await createCollection(client, kind, url, sc.state);
        stats.collectionsCreated++;
        target = {
          kind,
          url,
          key: hrefKey(url),
          supportsSync: false,
        };
        existing.set(name, target);
        uids = new Set();
      }
      for (const item of sc.state.items) {
        const { data } = await readItem(repo, kind, sc, item);
        const uid = uidOf(data.toString("utf8"));
        if (uid && uids.has(uid)) {
          stats.itemsSkipped++;
          continue;
        }
        const url = new URL(encodeURIComponent(item.file), target.url).href;
        const r = await client.request("PUT", url, {
          headers: { "Content-Type": CONTENT_TYPE[kind], "If-None-Match": "*" },
          body: data,
        });
        if (r.status === 412) {
          stats.itemsConflicting++;
          onWarning?.(`${new URL(url).pathname} already exists with another UID; not overwritten`);
          continue;
        }
        if (r.status !== 201 && r.status !== 204 && r.status !== 200)
          throw client.statusError("PUT", r, `(${KIND_DIR[kind]}/${sc.name}/${item.file})`);
        if (uid) uids.add(uid);
        stats.itemsPut++;
        stats.bytes += data.length;
      }
    }
  }
  return stats;
}
