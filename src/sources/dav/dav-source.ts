import type { TreeNode } from "../../repo/tree.js";
import type { ParentLookup, VirtualEntry, VirtualSource } from "../../snapshot/source.js";
import { SourceError } from "../child-stream.js";
import { type DavClient, type DavTarget, davSourceName, hrefKey, prop } from "./client.js";
import {
  COLLECTION_STATE_FILE,
  type CollectionItem,
  type CollectionState,
  collectionDirName,
  decodeCollectionState,
  encodeCollectionState,
  itemFileName,
  KIND_DIR,
  KIND_EXT,
} from "./collection-state.js";
import { type CollectionKind, type DavCollection, discover } from "./discover.js";
import { NS, xmlEscape } from "./xml.js";

export interface DavPullStats {
  collections: number;
  addressbooks: number;
  calendars: number;
  /** Collections not in the parent snapshot (or recreated under the same name). */
  collectionsNew: number;
  /** Collections whose sync-token (or ctag) equals the parent's: not listed, nothing fetched. */
  collectionsUnchanged: number;
  /** Collections brought up to date with an RFC 6578 sync-collection delta. */
  collectionsSynced: number;
  /** Collections listed in full (sync-collection from scratch or PROPFIND Depth 1 getetag). */
  collectionsListed: number;
  items: number;
  itemsFetched: number;
  itemsReused: number;
  /** Items in the parent snapshot that are gone from the server. */
  itemsRemoved: number;
  /** Items listed but deleted before they could be fetched (left out). */
  itemsVanished: number;
  bytesFetched: number;
  tls: boolean;
}

export interface DavSourceOptions {
  target: DavTarget;
  /** Reads a file of the parent snapshot (its `.collection.json`). */
  readParentFile: (node: TreeNode) => Promise<Buffer>;
  /** Hrefs per multiget REPORT (default 100). */
  batchSize?: number;
  onWarning?: (message: string) => void;
}

export interface Listed {
  /** Path on the server, as the server spells it (percent-encoded). */
  href: string;
  key: string;
  etag?: string;
}

export interface Fetched {
  key: string;
  href: string;
  data?: Buffer;
  etag?: string;
  mtime?: Date;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const nsToDate = (ns: string) => new Date(Number(BigInt(ns) / 1_000_000n));

const MULTIGET: Record<CollectionKind, { report: string; data: string }> = {
  addressbook: { report: "a:addressbook-multiget", data: "a:address-data" },
  calendar: { report: "c:calendar-multiget", data: "c:calendar-data" },
};

/**
 * A CardDAV/CalDAV account as a virtual source: every address book under
 * `addressbooks/<name>/` and every calendar under `calendars/<name>/`, one file per item holding
 * the bytes the server serves, plus `.collection.json`. Read-only on the server: the client
 * refuses any method but GET, PROPFIND, REPORT and OPTIONS.
 */
export class DavSource implements VirtualSource {
  readonly name: string;
  readonly type = "dav";
  readonly stats: DavPullStats;
  private readonly client: DavClient;
  private readonly o: DavSourceOptions;
  private principals: string[] = [];
  private readonly started = new Date();

  constructor(client: DavClient, o: DavSourceOptions) {
    this.client = client;
    this.o = o;
    this.name = davSourceName(o.target);
    this.stats = {
      collections: 0,
      addressbooks: 0,
      calendars: 0,
      collectionsNew: 0,
      collectionsUnchanged: 0,
      collectionsSynced: 0,
      collectionsListed: 0,
      items: 0,
      itemsFetched: 0,
      itemsReused: 0,
      itemsRemoved: 0,
      itemsVanished: 0,
      bytesFetched: 0,
      tls: o.target.secure,
    };
  }

  async *entries(parent: ParentLookup): AsyncIterable<VirtualEntry> {
    const d = await discover(this.client);
    this.principals = d.principals;
    const dirs = new Set<string>();
    const newest: Record<CollectionKind, number> = { addressbook: 0, calendar: 0 };
    for (const c of d.collections) {
      let dir = `${KIND_DIR[c.kind]}/${collectionDirName(c.url)}`;
      for (let i = 2; dirs.has(dir); i++) dir = `${KIND_DIR[c.kind]}/${collectionDirName(c.url)}~${i}`;
      dirs.add(dir);
      const mtime = yield* this.collection(c, dir, parent);
      newest[c.kind] = Math.max(newest[c.kind], mtime);
    }
    for (const kind of ["addressbook", "calendar"] as const)
      if (d.collections.some((c) => c.kind === kind))
        yield { kind: "dir", path: KIND_DIR[kind], mtime: new Date(newest[kind]) };
  }

  private async parentState(parent: ParentLookup, dir: string): Promise<CollectionState | undefined> {
    const node = await parent(`${dir}/${COLLECTION_STATE_FILE}`);
    if (!node || node.type !== "file") return undefined;
    try {
      return decodeCollectionState(await this.o.readParentFile(node), `${dir}/${COLLECTION_STATE_FILE}`);
    } catch (e) {
      this.o.onWarning?.(
        `cannot read the parent snapshot's state of ${dir} (${(e as Error).message}); fetching it in full`,
      );
      return undefined;
    }
  }

  /** Yields one collection's entries; returns its newest item time (ms). */
  private async *collection(
    c: DavCollection,
    dir: string,
    parent: ParentLookup,
  ): AsyncGenerator<VirtualEntry, number> {
    const prev = await this.parentState(parent, dir);
    const base =
      prev && prev.kind === c.kind && hrefKey(this.client.url(prev.href)) === c.key ? prev : undefined;
    this.stats.collections++;
    this.stats[c.kind === "addressbook" ? "addressbooks" : "calendars"]++;
    if (!base) this.stats.collectionsNew++;
    const baseByKey = new Map((base?.items ?? []).map((i) => [hrefKey(this.client.url(i.href)), i]));

    // 1. What is in the collection now, with ETags where the server gave them.
    let listing: Listed[] | undefined;
    let syncToken: string | undefined;
    if (
      base &&
      ((c.syncToken !== undefined && base.syncToken === c.syncToken) ||
        (c.syncToken === undefined && c.ctag !== undefined && base.ctag === c.ctag))
    ) {
      this.stats.collectionsUnchanged++;
      listing = base.items.map((i) => ({
        href: i.href,
        key: hrefKey(this.client.url(i.href)),
        etag: i.etag,
      }));
      syncToken = base.syncToken;
    } else if (base?.syncToken !== undefined && c.supportsSync) {
      const delta = await this.syncCollection(c, base.syncToken);
      if (delta) {
        this.stats.collectionsSynced++;
        const now = new Map<string, Listed>();
        for (const [k, i] of baseByKey) now.set(k, { href: i.href, key: k, etag: i.etag });
        for (const k of delta.removed) now.delete(k);
        for (const l of delta.changed) now.set(l.key, l);
        listing = [...now.values()];
        syncToken = delta.token;
      }
    }
    if (!listing) {
      this.stats.collectionsListed++;
      const full = c.supportsSync ? await this.syncCollection(c, "") : undefined;
      if (full) {
        listing = full.changed;
        syncToken = full.token;
      } else {
        listing = await this.listByPropfind(c);
        syncToken = c.syncToken;
      }
    }
    listing.sort((a, b) => cmp(a.key, b.key));

    // 2. Unchanged items (same href and ETag as in the parent) are reused; the rest is fetched.
    const taken = new Set<string>();
    const fileOf = new Map<string, string>();
    for (const l of listing) {
      const old = baseByKey.get(l.key);
      if (old) {
        fileOf.set(l.key, old.file);
        taken.add(old.file);
      }
    }
    const ext = KIND_EXT[c.kind];
    for (const l of listing)
      if (!fileOf.has(l.key)) {
        const f = itemFileName(l.key, ext, taken);
        fileOf.set(l.key, f);
        taken.add(f);
      }

    const items: CollectionItem[] = [];
    let newest = 0;
    const toFetch: Listed[] = [];
    for (const l of listing) {
      const old = baseByKey.get(l.key);
      const node =
        old && l.etag !== undefined && old.etag === l.etag ? await parent(`${dir}/${old.file}`) : undefined;
      if (!old || !node || node.type !== "file") {
        toFetch.push(l);
        continue;
      }
      const mtime = nsToDate(node.mtime);
      newest = Math.max(newest, mtime.getTime());
      items.push({ href: old.href, etag: old.etag, file: old.file });
      this.stats.itemsReused++;
      const url = this.client.url(l.href);
      yield {
        kind: "file",
        path: `${dir}/${old.file}`,
        mtime,
        reuse: node,
        read: () => this.fetchFallback(url),
      };
    }
    for await (const f of this.fetchItems(c, toFetch)) {
      if (!f.data) {
        this.stats.itemsVanished++;
        continue;
      }
      const file = fileOf.get(f.key)!;
      const data = f.data;
      const mtime = f.mtime ?? this.started;
      newest = Math.max(newest, mtime.getTime());
      items.push({ href: f.href, etag: f.etag ?? "", file });
      this.stats.itemsFetched++;
      this.stats.bytesFetched += data.length;
      yield {
        kind: "file",
        path: `${dir}/${file}`,
        mtime,
        read: async function* () {
          yield data;
        },
      };
    }
    const present = new Set(items.map((i) => hrefKey(this.client.url(i.href))));
    for (const k of baseByKey.keys()) if (!present.has(k)) this.stats.itemsRemoved++;
    this.stats.items += items.length;

    const state: CollectionState = {
      version: 1,
      kind: c.kind,
      href: new URL(c.url).pathname,
      ...(c.displayname !== undefined ? { displayname: c.displayname } : {}),
      ...(c.description !== undefined ? { description: c.description } : {}),
      ...(c.color !== undefined ? { color: c.color } : {}),
      ...(c.components !== undefined ? { components: c.components } : {}),
      ...(c.ctag !== undefined ? { ctag: c.ctag } : {}),
      ...(syncToken !== undefined ? { syncToken } : {}),
      items,
    };
    // A stable time (the newest item) keeps an unchanged collection's tree byte-identical.
    const mtime = new Date(newest);
    yield { kind: "dir", path: dir, mtime };
    const json = encodeCollectionState(state);
    yield {
      kind: "file",
      path: `${dir}/${COLLECTION_STATE_FILE}`,
      mtime,
      read: async function* () {
        yield json;
      },
    };
    return newest;
  }

  private listByPropfind(c: DavCollection): Promise<Listed[]> {
    return listByPropfind(this.client, c.url);
  }

  /**
   * RFC 6578 sync-collection from `token` ("" for an initial sync): members changed since then
   * (with ETags), members removed, and the new token; following truncated answers (507).
   * Undefined when the server refuses (token expired or unknown, report not supported).
   */
  private async syncCollection(
    c: DavCollection,
    token: string,
  ): Promise<{ changed: Listed[]; removed: Set<string>; token: string | undefined } | undefined> {
    const changed = new Map<string, Listed>();
    const removed = new Set<string>();
    let current = token;
    for (let round = 0; round < 10_000; round++) {
      const body =
        `<d:sync-collection xmlns:d="DAV:"><d:sync-token>${xmlEscape(current)}</d:sync-token>` +
        "<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>";
      const r = await this.client.report(c.url, 0, body);
      if (!r.ok) {
        const st = r.result.status;
        if ((st >= 400 && st < 500) || st === 501) {
          if (token !== "")
            this.o.onWarning?.(
              `${c.key}: the server refused the sync-token of the parent snapshot (HTTP ${st}); listing every item`,
            );
          return undefined;
        }
        throw this.client.statusError("REPORT", r.result, "(sync-collection)");
      }
      let truncated = false;
      for (const resp of r.ms.responses) {
        const key = hrefKey(resp.url);
        if (key === c.key) {
          if (resp.status === 507) truncated = true;
          continue;
        }
        if (resp.url.endsWith("/")) continue;
        if (resp.status === 404) {
          removed.add(key);
          changed.delete(key);
          continue;
        }
        const etag = prop(resp, NS.dav, "getetag")?.text.trim();
        removed.delete(key);
        changed.set(key, { href: new URL(resp.url).pathname, key, ...(etag ? { etag } : {}) });
      }
      if (r.ms.syncToken === undefined) {
        if (truncated)
          throw new SourceError("SOURCE_UNREADABLE", `${c.key}: truncated sync-collection without a token`);
        return { changed: [...changed.values()], removed, token: undefined };
      }
      if (!truncated || r.ms.syncToken === current)
        return { changed: [...changed.values()], removed, token: r.ms.syncToken };
      current = r.ms.syncToken;
    }
    throw new SourceError("SOURCE_UNREADABLE", `${c.key}: sync-collection did not finish`);
  }

  /** Items in multiget batches, the next batch requested while the previous one is stored. */
  private async *fetchItems(c: DavCollection, items: Listed[]): AsyncIterable<Fetched> {
    const size = this.o.batchSize ?? 100;
    const batches: Listed[][] = [];
    for (let i = 0; i < items.length; i += size) batches.push(items.slice(i, i + size));
    let next = batches[0] ? this.multiget(c, batches[0]) : undefined;
    try {
      for (let i = 0; i < batches.length; i++) {
        const got = await next!;
        next = batches[i + 1] ? this.multiget(c, batches[i + 1]!) : undefined;
        yield* got;
      }
    } finally {
      await next?.catch(() => {});
    }
  }

  private multiget(c: DavCollection, batch: Listed[]): Promise<Fetched[]> {
    return multiget(this.client, c.kind, c.url, batch);
  }

  /** Fallback for a reused item whose blobs are no longer in the repository. */
  private async *fetchFallback(url: string): AsyncIterable<Buffer> {
    const r = await this.client.request("GET", url);
    if (r.status !== 200)
      throw new SourceError(
        "SOURCE_UNREADABLE",
        `${new URL(url).pathname} vanished from the server while it was backed up (HTTP ${r.status})`,
        "run the pull again",
      );
    this.stats.itemsReused--;
    this.stats.itemsFetched++;
    this.stats.bytesFetched += r.body.length;
    yield r.body;
  }

  meta(): Record<string, unknown> {
    return {
      dav: {
        host: this.o.target.host,
        port: this.o.target.port,
        user: this.o.target.user,
        tls: this.stats.tls,
        principals: this.principals.map((p) => new URL(p).pathname),
        addressbooks: this.stats.addressbooks,
        calendars: this.stats.calendars,
        items: this.stats.items,
      },
    };
  }
}

/** Members of a collection with their ETags (PROPFIND Depth 1 getetag), sub-collections left out. */
export async function listByPropfind(client: DavClient, collectionUrl: string): Promise<Listed[]> {
  const r = await client.propfind(collectionUrl, 1, "<d:resourcetype/><d:getetag/>");
  if (!r.ok) throw client.statusError("PROPFIND", r.result, "(listing a collection)");
  const self = hrefKey(collectionUrl);
  const out: Listed[] = [];
  for (const resp of r.ms.responses) {
    const key = hrefKey(resp.url);
    if (key === self || resp.url.endsWith("/")) continue;
    if (prop(resp, NS.dav, "resourcetype")?.children.some((x) => x.ns === NS.dav && x.local === "collection"))
      continue;
    const etag = prop(resp, NS.dav, "getetag")?.text.trim();
    out.push({ href: new URL(resp.url).pathname, key, ...(etag ? { etag } : {}) });
  }
  return out;
}

/**
 * One addressbook-multiget / calendar-multiget REPORT for a batch of items; anything it did
 * not deliver (report not supported, no data for an href) is fetched with a GET. An item that
 * is gone comes back without `data`.
 */
export async function multiget(
  client: DavClient,
  kind: CollectionKind,
  collectionUrl: string,
  batch: Listed[],
): Promise<Fetched[]> {
  const m = MULTIGET[kind];
  const hrefs = batch.map((l) => `<d:href>${xmlEscape(l.href)}</d:href>`).join("");
  const body =
    `<${m.report} xmlns:d="DAV:" xmlns:a="${NS.carddav}" xmlns:c="${NS.caldav}">` +
    `<d:prop><d:getetag/><d:getlastmodified/><${m.data}/></d:prop>${hrefs}</${m.report}>`;
  const r = await client.report(collectionUrl, 1, body);
  const byKey = new Map<string, Fetched>();
  if (r.ok) {
    const [dataNs, dataLocal] =
      kind === "addressbook" ? [NS.carddav, "address-data"] : [NS.caldav, "calendar-data"];
    for (const resp of r.ms.responses) {
      const el = prop(resp, dataNs, dataLocal);
      if (!el) continue;
      const etag = prop(resp, NS.dav, "getetag")?.text.trim();
      const lm = prop(resp, NS.dav, "getlastmodified")?.text.trim();
      const t = lm ? Date.parse(lm) : Number.NaN;
      const key = hrefKey(resp.url);
      byKey.set(key, {
        key,
        href: new URL(resp.url).pathname,
        data: Buffer.from(el.text, "utf8"),
        ...(etag ? { etag } : {}),
        ...(Number.isNaN(t) ? {} : { mtime: new Date(t) }),
      });
    }
  } else if (![400, 403, 405, 415, 422, 501].includes(r.result.status)) {
    throw client.statusError("REPORT", r.result, "(multiget)");
  }
  const out: Fetched[] = [];
  for (const l of batch) out.push(byKey.get(l.key) ?? (await getItem(client, l)));
  return out;
}

async function getItem(client: DavClient, l: Listed): Promise<Fetched> {
  const r = await client.request("GET", l.href);
  if (r.status === 404 || r.status === 410) return { key: l.key, href: l.href };
  if (r.status !== 200) throw client.statusError("GET", r);
  const etag = r.headers.get("etag") ?? l.etag;
  const lm = r.headers.get("last-modified");
  const t = lm ? Date.parse(lm) : Number.NaN;
  return {
    key: l.key,
    href: l.href,
    data: r.body,
    ...(etag ? { etag } : {}),
    ...(Number.isNaN(t) ? {} : { mtime: new Date(t) }),
  };
}
